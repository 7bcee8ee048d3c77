"""The audit log (``audit_log``, migration 0011): appending entries in the caller's
transaction and reading them back a page at a time.

The table is append-only in the database (a trigger refuses UPDATE, DELETE and TRUNCATE), so
this module has no way to change an entry, only :func:`append` and the reads. What an entry
says (who, from where) is :mod:`geo_service.audit`'s business.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, insert, select
from sqlalchemy.sql.elements import ColumnElement

from geo_service.db.schema import audit_log


@dataclass(frozen=True)
class AuditFilter:
    """What ``GET /v1/audit`` filters on; every field optional, times half-open [since, until)."""

    action: str | None = None  # exact, or a family with a trailing dot: "report."
    target_type: str | None = None
    target_id: str | None = None
    actor_key_id: int | None = None
    origin: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    limit: int = 100
    offset: int = 0


def append(conn: Connection, entries: Sequence[Mapping[str, Any]]) -> None:
    """Append entries (``actor_key_id``, ``actor_role``, ``actor``, ``origin``, ``action``,
    ``target_type``, ``target_id``, ``details``) in the caller's transaction."""
    if entries:
        conn.execute(insert(audit_log), list(entries))


def _conditions(f: AuditFilter) -> list[ColumnElement[bool]]:
    c = audit_log.c
    conds: list[ColumnElement[bool]] = []
    if f.action is not None:
        if f.action.endswith("."):
            conds.append(func.starts_with(c.action, f.action))
        else:
            conds.append(c.action == f.action)
    if f.target_type is not None:
        conds.append(c.target_type == f.target_type)
    if f.target_id is not None:
        conds.append(c.target_id == f.target_id)
    if f.actor_key_id is not None:
        conds.append(c.actor_key_id == f.actor_key_id)
    if f.origin is not None:
        conds.append(c.origin == f.origin)
    if f.since is not None:
        conds.append(c.at >= f.since)
    if f.until is not None:
        conds.append(c.at < f.until)
    return conds


def page(conn: Connection, f: AuditFilter) -> Sequence[Any]:
    """One page of entries matching ``f``, newest first (every column)."""
    return conn.execute(
        select(audit_log)
        .where(*_conditions(f))
        .order_by(audit_log.c.id.desc())
        .limit(f.limit)
        .offset(f.offset)
    ).all()


def count(conn: Connection, f: AuditFilter) -> int:
    """How many entries match ``f`` (paging ignored)."""
    return int(
        conn.execute(
            select(func.count()).select_from(audit_log).where(*_conditions(f))
        ).scalar_one()
    )
