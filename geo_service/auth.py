"""API keys and roles: ``Authorization: Bearer <key>``; only a SHA-256 of each key is stored.

Keys are 256-bit random tokens, so a plain SHA-256 is a sound verifier (no password
stretching needed). Roles: reporter, grid_worker (scoped to an area code), operator, planner,
admin.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, text

from geo_service.errors import Forbidden, InvalidInput, Unauthorized

ROLES = ("reporter", "grid_worker", "operator", "planner", "admin")
# roles that may see reporters' names and phone numbers
SEES_PERSONAL_DATA = frozenset({"operator", "admin"})
_CACHE_S = 10.0


@dataclass(frozen=True)
class Principal:
    """Who is calling: key id, role and, for grid workers, the area code they cover."""

    key_id: int
    role: str
    scope: str | None = None

    @property
    def sees_personal_data(self) -> bool:
        return self.role in SEES_PERSONAL_DATA


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(
    conn: Connection, role: str, label: str | None = None, scope: str | None = None
) -> str:
    """Store a new key's hash and return the key itself (shown once, never stored)."""
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    if role == "grid_worker" and not scope:
        raise InvalidInput("a grid_worker key needs the area code it covers (--scope)")
    key = "gs_" + secrets.token_urlsafe(32)
    conn.execute(
        text(
            "INSERT INTO api_keys (key_hash, prefix, role, label, scope_area_code) "
            "VALUES (:h, :p, :r, :l, :s)"
        ),
        {"h": hash_key(key), "p": key[:10], "r": role, "l": label, "s": scope},
    )
    return key


class KeyStore:
    """Resolves bearer keys to principals, caching answers for a few seconds."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._cache: dict[str, tuple[float, Principal | None]] = {}

    def lookup(self, key: str) -> Principal | None:
        digest = hash_key(key)
        hit = self._cache.get(digest)
        now = time.monotonic()
        if hit and now - hit[0] < _CACHE_S:
            return hit[1]
        with self.engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT id, role, scope_area_code FROM api_keys "
                    "WHERE key_hash = :h AND revoked_at IS NULL"
                ),
                {"h": digest},
            ).one_or_none()
        principal = Principal(row.id, row.role, row.scope_area_code) if row else None
        self._cache[digest] = (now, principal)
        return principal

    def authenticate(self, authorization: str | None) -> Principal:
        """The principal of an ``Authorization`` header, or 401 naming what is wrong."""
        if not authorization:
            raise Unauthorized("missing Authorization header: use 'Bearer <api key>'")
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise Unauthorized("Authorization must be 'Bearer <api key>'")
        principal = self.lookup(key.strip())
        if principal is None:
            raise Unauthorized("unknown or revoked API key")
        return principal


def require(principal: Principal, *roles: str) -> None:
    """403 unless the principal has one of ``roles``."""
    if principal.role not in roles:
        raise Forbidden(f"role {principal.role!r} may not do this (needs {' or '.join(roles)})")
