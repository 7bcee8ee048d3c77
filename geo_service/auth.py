"""API keys and roles: ``Authorization: Bearer <key>``; only a SHA-256 of each key is stored.

Keys are 256-bit random tokens, so a plain SHA-256 is a sound verifier (no password
stretching needed). Roles: reporter, grid_worker (scoped to an area code), operator, planner,
admin. Creating and revoking a key is audited (:mod:`geo_service.audit`).

Revocation reaches every worker within ``GEO_AUTH_KEY_RECHECK_S`` (0.5 s) plus one small
query: each worker caches key look-ups under the key generation counter (migration 0011, bumped
by a trigger in the transaction that changes ``api_keys``) and re-reads the counter at most
that often, dropping its cache when it moved. The bound holds as for the tile generations: a
look-up is answered only under a counter read that started less than the re-check interval
ago, and every read started after the revoking commit sees the new counter.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Connection, Engine

from geo_service import audit
from geo_service.db.schema import ROLES
from geo_service.errors import Conflict, Forbidden, InvalidInput, NotFound
from geo_service.store import keys

# roles that may see reporters' names and phone numbers
SEES_PERSONAL_DATA = frozenset({"operator", "admin"})
KEY_RECHECK_S: Final = 0.5  # default re-read interval of the key generation counter
KEY_CACHE_ENTRIES: Final = 10_000  # cached look-ups per worker (unknown keys included)


@dataclass(frozen=True)
class Principal:
    """Who is calling: an API key (``key_id``) or a signed-in user (``user_id``, ``username``;
    ``key_id`` None), the role and, for grid workers, the area code they cover."""

    key_id: int | None
    role: str
    scope: str | None = None
    user_id: int | None = None
    username: str | None = None

    @property
    def sees_personal_data(self) -> bool:
        """Whether the role may read reporters' names and phone numbers."""
        return self.role in SEES_PERSONAL_DATA

    @property
    def ref(self) -> str:
        """A stable name of the caller: the key id as text for keys (as stored before users
        existed), ``u<id>`` for a signed-in user; never the same for two callers."""
        return str(self.key_id) if self.key_id is not None else f"u{self.user_id}"

    @property
    def actor(self) -> str:
        """How the audit log names the caller: ``key:<id>`` or ``user:<name>``."""
        if self.key_id is not None:
            return f"key:{self.key_id}"
        return f"user:{self.username}"


def hash_key(key: str) -> str:
    """The SHA-256 hex digest of a key: what is stored, and what a lookup compares."""
    return hashlib.sha256(key.encode()).hexdigest()


def check_role_scope(role: str, scope: str | None, holder: str) -> None:
    """422 for an unknown role, a grid worker without the area it covers, or a scope on any
    other role (only grid workers are narrowed to an area; the others see the district, so a
    scope there would promise a narrowing nothing applies)."""
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    if role == "grid_worker" and not scope:
        raise InvalidInput(f"a grid_worker {holder} needs the area code it covers (--scope)")
    if role != "grid_worker" and scope:
        raise InvalidInput(
            f"--scope narrows grid workers only: a {role} {holder} sees the whole district"
        )


def create_key(
    conn: Connection,
    role: str,
    label: str | None = None,
    scope: str | None = None,
    *,
    principal: Principal | None = None,
) -> str:
    """Store a new key's hash and return the key itself (shown once, never stored); audited
    as done by ``principal`` (None: the local account)."""
    check_role_scope(role, scope, "key")
    key = "gs_" + secrets.token_urlsafe(32)
    key_id = keys.insert_key(conn, hash_key(key), key[:10], role, label, scope)
    details = {"role": role, "prefix": key[:10], "label": label, "scope": scope}
    audit.record(conn, "key.create", "api_key", key_id, principal, details)
    return key


def revoke_key(conn: Connection, ref: str, *, principal: Principal | None = None) -> Any:
    """Revoke the one key ``ref`` names (id, ``gs_…`` prefix or label), audited; the key's row
    (``id``, ``prefix``, ``role``, ``label``, ``scope_area_code``). 404 when none matches, 409
    when several do (name it by id) or it is revoked already."""
    found = keys.matching(conn, ref.strip())
    if not found:
        raise NotFound(f"no API key with id, prefix or label {ref!r}")
    active = [r for r in found if r.revoked_at is None]
    if not active:
        done = ", ".join(f"{r.id} at {r.revoked_at.isoformat()}" for r in found)
        raise Conflict(f"the API key {ref!r} names is revoked already ({done})")
    if len(active) > 1:
        ids = ", ".join(str(r.id) for r in active)
        raise Conflict(f"{len(active)} active API keys match {ref!r} (ids {ids}): name one by id")
    row = active[0]
    if keys.revoke(conn, row.id) is None:  # revoked by another transaction meanwhile
        raise Conflict(f"API key {row.id} ({row.prefix}) is revoked already")
    details = {"role": row.role, "prefix": row.prefix, "label": row.label}
    audit.record(conn, "key.revoke", "api_key", row.id, principal, details)
    return row


class KeyStore:
    """Resolves keys to principals for the HTTP edge (:func:`geo_service.api.deps.caller`),
    caching answers while the key generation counter stands still (see the module notes)."""

    def __init__(
        self,
        engine: Engine,
        recheck_s: float = KEY_RECHECK_S,
        max_entries: int = KEY_CACHE_ENTRIES,
    ) -> None:
        self.engine = engine
        self.recheck_s = recheck_s
        self.max_entries = max_entries
        self._cache: dict[str, tuple[int, Principal | None]] = {}
        self._generation: int | None = None
        self._read_at = float("-inf")  # monotonic time the counter read started
        self._lock = threading.Lock()

    def _fresh(self) -> int | None:
        """The counter if read less than ``recheck_s`` ago, else None (no query)."""
        if self._generation is not None and time.monotonic() - self._read_at < self.recheck_s:
            return self._generation
        return None

    def generation(self) -> int:
        """The key generation counter, re-read when the last read is ``recheck_s`` old (one
        thread reads, the others wait); the cache is dropped when it moved."""
        fresh = self._fresh()
        if fresh is not None:
            return fresh
        with self._lock:
            fresh = self._fresh()
            if fresh is not None:
                return fresh
            started = time.monotonic()  # the read sees every commit before this instant
            with self.engine.connect() as conn:
                value = keys.generation(conn)
            if value != self._generation:
                self._cache.clear()
                self._generation = value
            self._read_at = started
            return value

    def lookup(self, key: str) -> Principal | None:
        """The principal of an unrevoked key, or None (cached under the current generation)."""
        gen = self.generation()
        digest = hash_key(key)
        hit = self._cache.get(digest)
        if hit is not None and hit[0] == gen:
            return hit[1]
        with self.engine.connect() as conn:
            row = keys.active_key(conn, digest)
        principal = Principal(row.id, row.role, row.scope_area_code) if row else None
        if len(self._cache) >= self.max_entries:  # bounded: random keys cannot grow it
            self._cache.clear()
        self._cache[digest] = (gen, principal)
        return principal

    def known(self, key: str) -> Principal | None:
        """The principal of ``key`` when this worker has it cached under a counter read less
        than ``recheck_s`` ago, else None (then ask :meth:`lookup`); never queries, so fast
        paths in the event loop may call it."""
        gen = self._fresh()
        if gen is None:
            return None
        hit = self._cache.get(hash_key(key))
        return hit[1] if hit is not None and hit[0] == gen else None


def require(principal: Principal, *roles: str) -> None:
    """403 unless the principal has one of ``roles``."""
    if principal.role not in roles:
        raise Forbidden(f"role {principal.role!r} may not do this (needs {' or '.join(roles)})")
