"""API keys (``api_keys``, ``api_key_generation``): storing a new key's hash, finding the key a
hash belongs to, revoking keys, and the generation counter that tells workers keys changed.

Only hashes are ever stored or compared here; making keys, hashing them and caching answers
is :mod:`geo_service.auth`'s business.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from geo_service.db.schema import api_key_generation, api_keys


def insert_key(
    conn: Connection,
    key_hash: str,
    prefix: str,
    role: str,
    label: str | None = None,
    scope: str | None = None,
) -> int:
    """Store a key's hash, the prefix shown to operators, its role, label and area scope; its id."""
    return int(
        conn.execute(
            insert(api_keys)
            .values(key_hash=key_hash, prefix=prefix, role=role, label=label, scope_area_code=scope)
            .returning(api_keys.c.id)
        ).scalar_one()
    )


def active_key(conn: Connection, key_hash: str) -> Any | None:
    """The unrevoked key with this hash (``id``, ``role``, ``scope_area_code``), or None."""
    return conn.execute(
        select(api_keys.c.id, api_keys.c.role, api_keys.c.scope_area_code).where(
            api_keys.c.key_hash == key_hash, api_keys.c.revoked_at.is_(None)
        )
    ).one_or_none()


def generation(conn: Connection) -> int:
    """The key generation counter: it moves in every transaction that changes ``api_keys``."""
    return int(conn.execute(select(api_key_generation.c.generation)).scalar_one())


def matching(conn: Connection, ref: str) -> Sequence[Any]:
    """The keys ``ref`` names: an id (digits), a prefix as shown at creation (``gs_…``) or a
    label; ``id``, ``prefix``, ``role``, ``label``, ``scope_area_code``, ``revoked_at``."""
    cols = (
        api_keys.c.id,
        api_keys.c.prefix,
        api_keys.c.role,
        api_keys.c.label,
        api_keys.c.scope_area_code,
        api_keys.c.revoked_at,
    )
    if ref.isdigit() and len(ref) <= 9:
        cond = api_keys.c.id == int(ref)
    elif ref.startswith("gs_"):
        cond = api_keys.c.prefix == ref[: len("gs_") + 7]
    else:
        cond = api_keys.c.label == ref
    return conn.execute(select(*cols).where(cond).order_by(api_keys.c.id)).all()


def revoke(conn: Connection, key_id: int) -> Any | None:
    """Mark key ``key_id`` revoked now (kept, never deleted: the audit log names it); its
    ``revoked_at``, or None when it was revoked already."""
    return conn.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=func.now())
        .returning(api_keys.c.revoked_at)
    ).scalar_one_or_none()


def all_keys(conn: Connection) -> Sequence[Any]:
    """Every key, oldest first: ``id``, ``prefix``, ``role``, ``label``, ``scope_area_code``,
    ``created_at``, ``revoked_at`` (never the hash)."""
    return conn.execute(
        select(
            api_keys.c.id,
            api_keys.c.prefix,
            api_keys.c.role,
            api_keys.c.label,
            api_keys.c.scope_area_code,
            api_keys.c.created_at,
            api_keys.c.revoked_at,
        ).order_by(api_keys.c.id)
    ).all()
