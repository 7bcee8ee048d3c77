"""Accounts and browser sessions: users with argon2 passwords, signing in and out, and the
slow-down of repeated failed sign-ins.

* Passwords are hashed with argon2id (argon2-cffi's :class:`PasswordHasher`, its default
  parameters); a hash made with other parameters is replaced at the next good sign-in.
* A session is a random 256-bit token in the ``gs_session`` cookie; the database keeps only its
  SHA-256, the page's CSRF token, the last request (idle expiry, ``GEO_SESSION_IDLE_S``) and the
  absolute expiry (``GEO_SESSION_ABSOLUTE_S``). Disabling a user deletes its sessions in the
  same transaction, and a session of a disabled user is never answered.
* Failed sign-ins are counted per submitted user name and per client address; after
  ``GEO_SESSION_USER_FREE_FAILURES`` (per name) or ``…_ADDRESS_FREE_FAILURES`` (per address)
  each further attempt waits ``GEO_SESSION_DELAY_S`` doubled per failure, at most
  ``GEO_SESSION_MAX_DELAY_S`` (429 with Retry-After, the password not even checked). Names
  that do not exist are counted the same way, and every refusal says the same thing, so the
  answers never tell whether a user name exists.

User changes and sign-ins are audited (:mod:`geo_service.audit`, target type ``user``).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from contextlib import suppress
from dataclasses import dataclass
from functools import cache
from typing import Any, Final
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, Engine

from geo_service import audit
from geo_service.auth import Principal, check_role_scope
from geo_service.errors import Conflict, InvalidInput, NotFound, RateLimited, Unauthorized
from geo_service.settings import SessionSettings
from geo_service.store import sessions, users

SESSION_COOKIE: Final = "gs_session"
CSRF_HEADER: Final = "X-CSRF-Token"
HASHER: Final = PasswordHasher()  # argon2id, the library's current parameters
USERNAME: Final = re.compile(r"^[\w.@-]{1,64}$")  # letters (any script), digits, . @ _ -
PASSWORD_MAX: Final = 1024  # characters: bounds the hashing work one request can ask for
REFUSED: Final = "wrong user name or password"


@cache
def _dummy_hash() -> str:
    """A hash to verify against when the user name is unknown or disabled, so that answer
    takes as long as a wrong password does."""
    return HASHER.hash(secrets.token_urlsafe(16))


def hash_token(token: str) -> str:
    """The SHA-256 hex digest of a session token: what is stored and looked up."""
    return hashlib.sha256(token.encode()).hexdigest()


def check_username(name: str) -> str:
    """``name`` stripped, when it is 1 to 64 letters, digits or ``. @ _ -`` (422 otherwise)."""
    name = name.strip()
    if not USERNAME.fullmatch(name):
        raise InvalidInput(
            f"user name {name!r} must be 1 to 64 letters, digits or . @ _ - (no spaces)"
        )
    return name


# --- users -----------------------------------------------------------------------------------


def create_user(
    conn: Connection,
    username: str,
    role: str,
    password: str,
    scope: str | None = None,
    *,
    principal: Principal | None = None,
) -> int:
    """Add a user with an argon2 hash of ``password``; its id. 422 for an unknown role, a
    grid worker without scope, a scope on another role or an empty password, 409 when the
    name is taken; audited."""
    username = check_username(username)
    check_role_scope(role, scope, "user")
    if not password or not password.strip():
        raise InvalidInput("the password is empty")
    if len(password) > PASSWORD_MAX:
        raise InvalidInput(f"the password is longer than {PASSWORD_MAX} characters")
    if users.exists(conn, username):
        raise Conflict(f"a user named {username!r} exists already")
    user_id = users.insert_user(conn, username, HASHER.hash(password), role, scope)
    details = {"username": username, "role": role, "scope": scope}
    audit.record(conn, "user.create", "user", user_id, principal, details)
    return user_id


def disable_user(conn: Connection, username: str, *, principal: Principal | None = None) -> Any:
    """Disable the user and end all its sessions at once (same transaction), audited; its row
    (``id``, ``role``). 404 when no enabled user has this name."""
    row = users.disable(conn, username.strip())
    if row is None:
        found = users.by_name(conn, username.strip())
        if found is None:
            raise NotFound(f"no user named {username!r}")
        raise Conflict(f"the user {username!r} is disabled already")
    ended = sessions.end_all(conn, row.id)
    details = {"username": username.strip(), "role": row.role, "sessions_ended": ended}
    audit.record(conn, "user.disable", "user", row.id, principal, details)
    return row


def set_password(
    conn: Connection, username: str, password: str, *, principal: Principal | None = None
) -> int:
    """Replace a user's password (argon2, today's parameters) and end its sessions, audited;
    its id. 404 when there is no such user, 422 for an empty password."""
    if not password or not password.strip():
        raise InvalidInput("the password is empty")
    if len(password) > PASSWORD_MAX:
        raise InvalidInput(f"the password is longer than {PASSWORD_MAX} characters")
    row = users.by_name(conn, username.strip())
    if row is None:
        raise NotFound(f"no user named {username!r}")
    users.set_hash(conn, row.id, HASHER.hash(password))
    ended = sessions.end_all(conn, row.id)
    details = {"username": row.username, "sessions_ended": ended}
    audit.record(conn, "user.password", "user", row.id, principal, details)
    return int(row.id)


DEMO_ACCOUNTS: Final = ("operator", "planner", "admin")
"""The demo's accounts: each user is named after its role."""


def demo_accounts(conn: Connection, password: str | None) -> dict[str, str]:
    """Make sure the demo accounts exist, enabled, with ``password`` (GEO_DEMO_PASSWORD) or a
    fresh random one each; their names and passwords, to print."""
    out = {}
    for name in DEMO_ACCOUNTS:
        secret = password or secrets.token_urlsafe(9)
        row = users.by_name(conn, name)
        if row is None:
            create_user(conn, name, name, secret)
        else:
            if row.disabled_at is not None or row.role != name:
                raise Conflict(
                    f"a user named {name!r} exists with role {row.role!r}"
                    + (" and is disabled" if row.disabled_at is not None else "")
                    + ": the demo will not take it over"
                )
            set_password(conn, name, secret)
        out[name] = secret
    return out


def list_users(conn: Connection) -> list[dict[str, Any]]:
    """Every user (``id``, ``username``, ``role``, ``scope``, ``created_at``, ``disabled_at``),
    never a hash."""
    return [
        {
            "id": r.id,
            "username": r.username,
            "role": r.role,
            "scope": r.scope_area_code,
            "created_at": r.created_at,
            "disabled_at": r.disabled_at,
        }
        for r in users.all_users(conn)
    ]


# --- sessions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Session:
    """A live browser session: who it is, its CSRF token, and the token itself when it was
    just made (to set the cookie; None when looked up)."""

    principal: Principal
    csrf: str
    session_id: int
    token: str | None = None


def _throttle_keys(username: str, address: str) -> list[str]:
    return [f"user:{username.strip().casefold()}", f"addr:{address}"]


def _check_password(row: Any | None, password: str) -> bool:
    """Whether ``password`` is the enabled user's; the same argon2 work when there is no such
    user (or it is disabled), so the time taken does not tell."""
    if row is None or row.disabled_at is not None or len(password) > PASSWORD_MAX:
        with suppress(VerificationError):
            HASHER.verify(_dummy_hash(), password[:PASSWORD_MAX])
        return False
    try:
        return HASHER.verify(row.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def sign_in(
    engine: Engine, username: str, password: str, address: str, settings: SessionSettings
) -> Session:
    """Check the password and open a session. 429 (Retry-After) while the name or the address
    is slowed down, 401 with the same message for any wrong name, password or disabled user."""
    keys = _throttle_keys(username, address)
    with engine.connect() as conn:
        wait = sessions.wait_s(conn, keys)
        row = users.by_name(conn, username.strip()) if wait <= 0 else None
    if wait > 0:
        raise RateLimited(
            f"too many failed sign-ins: try again in {max(1, round(wait))} s",
            retry_after_s=wait,
        )
    if not _check_password(row, password):
        _count_failure(engine, keys, settings)
        raise Unauthorized(REFUSED)
    assert row is not None
    principal = Principal(None, row.role, row.scope_area_code, row.id, row.username)
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    with engine.begin() as conn:
        if HASHER.check_needs_rehash(row.password_hash):
            users.set_hash(conn, row.id, HASHER.hash(password))
        sessions.clear(conn, keys[0])
        sessions.purge_expired(conn, settings.idle_s)
        session_id = sessions.insert_session(
            conn, hash_token(token), row.id, csrf, settings.absolute_s
        )
        audit.record(conn, "user.sign_in", "user", row.id, principal, {"username": row.username})
    return Session(principal, csrf, session_id, token)


def _count_failure(engine: Engine, keys: list[str], settings: SessionSettings) -> None:
    """Count a failed sign-in for the name and the address; lock a key once it has had its
    free failures (the wait doubling with each further failure)."""
    frees = (settings.user_free_failures, settings.address_free_failures)
    with engine.begin() as conn:
        for key, free in zip(keys, frees, strict=True):
            failures = sessions.count_failure(conn, key, settings.failure_window_s)
            if failures >= free:
                wait = settings.delay_s * 2 ** min(failures - free, 30)
                sessions.lock(conn, key, min(wait, settings.max_delay_s))
        sessions.purge_throttle(conn, settings.failure_window_s)


def session_of(engine: Engine, token: str, settings: SessionSettings) -> Session | None:
    """The live session of a cookie's token (None when unknown, expired or its user is
    disabled); its last request is recorded at most every ``GEO_SESSION_TOUCH_S``."""
    if not token or len(token) > 128:
        return None
    with engine.connect() as conn:
        row = sessions.live(conn, hash_token(token), settings.idle_s)
        if row is None:
            return None
        if float(row.idle_for) >= settings.touch_s:
            sessions.touch(conn, row.id)
            conn.commit()
    principal = Principal(None, row.role, row.scope_area_code, row.user_id, row.username)
    return Session(principal, row.csrf_token, row.id)


def sign_out(engine: Engine, session: Session) -> bool:
    """End a session (server-side: its token stops working at once), audited; whether it was
    still there."""
    who = session.principal
    with engine.begin() as conn:
        if not sessions.end(conn, session.session_id):
            return False
        audit.record(conn, "user.sign_out", "user", who.user_id, who, {"username": who.username})
    return True


def csrf_matches(session: Session, sent: str | None) -> bool:
    """Whether ``sent`` is the session's CSRF token (compared in constant time)."""
    return bool(sent) and secrets.compare_digest(session.csrf.encode(), (sent or "").encode())


DEFAULT_NEXT: Final = "/console"  # where a sign-in without ``next`` lands: the command centre


def safe_next(value: str | None) -> str:
    """Where to go after signing in: ``value`` when it is a path on this site (``/…``, no
    scheme, no host, no ``//`` or backslash, no control character), else :data:`DEFAULT_NEXT`;
    so ``next`` can never send a user to another site."""
    if not value or len(value) > 2000 or not value.startswith("/") or value.startswith("//"):
        return DEFAULT_NEXT
    if "\\" in value or any(ord(c) < 32 or ord(c) == 127 for c in value):
        return DEFAULT_NEXT
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or parts.path.startswith(("/login", "/logout")):
        return DEFAULT_NEXT
    return value
