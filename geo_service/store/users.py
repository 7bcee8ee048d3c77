"""Users (``users``, migration 0013): adding a user, finding one by name, changing the stored
password hash, disabling, listing (never the hash).

Only argon2 hashes are stored or read here; hashing, verifying and the rules of who may sign
in are :mod:`geo_service.accounts`' business.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from geo_service.db.schema import users


def insert_user(
    conn: Connection, username: str, password_hash: str, role: str, scope: str | None
) -> int:
    """Store a new user (name, hash, role, area scope); its id."""
    return int(
        conn.execute(
            insert(users)
            .values(
                username=username, password_hash=password_hash, role=role, scope_area_code=scope
            )
            .returning(users.c.id)
        ).scalar_one()
    )


def exists(conn: Connection, username: str) -> bool:
    """Whether a user of this name exists (disabled or not)."""
    found = conn.execute(select(users.c.id).where(users.c.username == username)).first()
    return found is not None


def by_name(conn: Connection, username: str) -> Any | None:
    """The user of this name (``id``, ``username``, ``password_hash``, ``role``,
    ``scope_area_code``, ``disabled_at``), or None."""
    return conn.execute(
        select(
            users.c.id,
            users.c.username,
            users.c.password_hash,
            users.c.role,
            users.c.scope_area_code,
            users.c.disabled_at,
        ).where(users.c.username == username)
    ).one_or_none()


def set_hash(conn: Connection, user_id: int, password_hash: str) -> None:
    """Replace a user's stored password hash (a rehash with today's parameters)."""
    conn.execute(update(users).where(users.c.id == user_id).values(password_hash=password_hash))


def disable(conn: Connection, username: str) -> Any | None:
    """Mark the user disabled now; its ``id`` and ``role``, or None when no enabled user has
    this name."""
    return conn.execute(
        update(users)
        .where(users.c.username == username, users.c.disabled_at.is_(None))
        .values(disabled_at=func.now())
        .returning(users.c.id, users.c.role)
    ).one_or_none()


def all_users(conn: Connection) -> Sequence[Any]:
    """Every user, oldest first: ``id``, ``username``, ``role``, ``scope_area_code``,
    ``created_at``, ``disabled_at`` (never the hash)."""
    return conn.execute(
        select(
            users.c.id,
            users.c.username,
            users.c.role,
            users.c.scope_area_code,
            users.c.created_at,
            users.c.disabled_at,
        ).order_by(users.c.id)
    ).all()
