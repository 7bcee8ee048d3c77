"""Browser sessions (``user_sessions``) and the sign-in throttle (``login_throttle``), migration
0013: storing a session's token hash, finding the live session a hash belongs to, ending
sessions, and counting failed sign-ins per user name and per address.

Times are the database's (``now()``), so every worker agrees on expiry. Only token hashes are
stored; making tokens and the expiry rules are :mod:`geo_service.accounts`' business.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, and_, case, delete, extract, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.sql.elements import ColumnElement

from geo_service.db.schema import login_throttle, user_sessions, users


def _seconds(value: float) -> ColumnElement[Any]:
    """An interval of ``value`` seconds (bound, never formatted into the SQL)."""
    return func.make_interval(0, 0, 0, 0, 0, 0, value)


# --- sessions ------------------------------------------------------------------------------


def insert_session(
    conn: Connection, token_hash: str, user_id: int, csrf: str, absolute_s: float
) -> int:
    """Store a new session of ``user_id`` ending ``absolute_s`` from now at the latest; its id."""
    return int(
        conn.execute(
            insert(user_sessions)
            .values(
                token_hash=token_hash,
                user_id=user_id,
                csrf_token=csrf,
                expires_at=func.now() + _seconds(absolute_s),
            )
            .returning(user_sessions.c.id)
        ).scalar_one()
    )


def live(conn: Connection, token_hash: str, idle_s: float) -> Any | None:
    """The unexpired session of this hash whose user is enabled: ``id``, ``csrf_token``,
    ``idle_for`` (seconds since its last request), ``user_id``, ``username``, ``role``,
    ``scope_area_code``; None otherwise."""
    s = user_sessions.c
    return conn.execute(
        select(
            s.id,
            s.csrf_token,
            extract("epoch", func.now() - s.last_seen_at).label("idle_for"),
            users.c.id.label("user_id"),
            users.c.username,
            users.c.role,
            users.c.scope_area_code,
        )
        .join(users, users.c.id == s.user_id)
        .where(
            s.token_hash == token_hash,
            s.expires_at > func.now(),
            s.last_seen_at > func.now() - _seconds(idle_s),
            users.c.disabled_at.is_(None),
        )
    ).one_or_none()


def touch(conn: Connection, session_id: int) -> None:
    """Record a request of the session now (its idle expiry starts again)."""
    conn.execute(
        update(user_sessions)
        .where(user_sessions.c.id == session_id)
        .values(last_seen_at=func.now())
    )


def end(conn: Connection, session_id: int) -> int:
    """Delete session ``session_id``; how many were deleted (0 or 1)."""
    return conn.execute(delete(user_sessions).where(user_sessions.c.id == session_id)).rowcount


def end_all(conn: Connection, user_id: int) -> int:
    """Delete every session of ``user_id``; how many."""
    return conn.execute(delete(user_sessions).where(user_sessions.c.user_id == user_id)).rowcount


def purge_expired(conn: Connection, idle_s: float) -> int:
    """Delete sessions past their absolute or idle expiry; how many."""
    s = user_sessions.c
    return conn.execute(
        delete(user_sessions).where(
            or_(s.expires_at <= func.now(), s.last_seen_at <= func.now() - _seconds(idle_s))
        )
    ).rowcount


def of_user(conn: Connection, user_id: int) -> Sequence[Any]:
    """The sessions of ``user_id`` (``id``, ``created_at``, ``last_seen_at``, ``expires_at``)."""
    s = user_sessions.c
    return conn.execute(
        select(s.id, s.created_at, s.last_seen_at, s.expires_at)
        .where(s.user_id == user_id)
        .order_by(s.id)
    ).all()


# --- sign-in throttle ------------------------------------------------------------------------


def wait_s(conn: Connection, keys: Sequence[str]) -> float:
    """How many seconds until every one of ``keys`` may try again (0 when none is locked)."""
    t = login_throttle.c
    left = conn.execute(
        select(func.max(extract("epoch", t.locked_until - func.now()))).where(
            t.key.in_(list(keys)), t.locked_until > func.now()
        )
    ).scalar_one()
    return float(left) if left is not None else 0.0


def count_failure(conn: Connection, key: str, window_s: float) -> int:
    """Count one failed sign-in for ``key`` (failures older than ``window_s`` forgotten); the
    failures counted now."""
    t = login_throttle.c
    stmt = pg_insert(login_throttle).values(key=key, failures=1, last_failure_at=func.now())
    stmt = stmt.on_conflict_do_update(
        index_elements=[login_throttle.c.key],
        set_={
            "failures": case(
                (t.last_failure_at < func.now() - _seconds(window_s), 1),
                else_=t.failures + 1,
            ),
            "last_failure_at": func.now(),
        },
    )
    return int(conn.execute(stmt.returning(login_throttle.c.failures)).scalar_one())


def lock(conn: Connection, key: str, wait: float) -> None:
    """Refuse further attempts for ``key`` for ``wait`` seconds from now."""
    conn.execute(
        update(login_throttle)
        .where(login_throttle.c.key == key)
        .values(locked_until=func.now() + _seconds(wait))
    )


def clear(conn: Connection, key: str) -> None:
    """Forget the failures of ``key`` (a successful sign-in)."""
    conn.execute(delete(login_throttle).where(login_throttle.c.key == key))


def purge_throttle(conn: Connection, window_s: float) -> int:
    """Forget keys whose last failure is older than ``window_s`` and that are not locked."""
    t = login_throttle.c
    return conn.execute(
        delete(login_throttle).where(
            and_(
                t.last_failure_at < func.now() - _seconds(window_s),
                or_(t.locked_until.is_(None), t.locked_until <= func.now()),
            )
        )
    ).rowcount
