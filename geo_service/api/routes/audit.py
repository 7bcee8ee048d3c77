"""``/v1/audit``: the audit log, newest first, for admin keys (401 without a key, 403 for other
roles). Filters: ``action`` (exact, or a family ending in a dot: ``report.``), ``target_type``,
``target_id``, ``actor_key_id``, ``origin``, ``since``/``until`` (ISO times, no zone = Beijing,
half-open); paged by
``limit`` (at most 1,000) and ``offset``."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from geo_service.api.deps import EngineDep, require_role
from geo_service.audit import TARGET_TYPES
from geo_service.auth import Principal
from geo_service.errors import InvalidInput
from geo_service.reports.schemas import CHINA_TZ
from geo_service.store import audit as store

router = APIRouter(prefix="/v1", tags=["audit"])

AdminDep = Annotated[Principal, Depends(require_role("admin"))]
MAX_LIMIT: Final = 1000
MAX_OFFSET: Final = 2**31 - 1
TargetType = Literal["boundary_version", "report", "unit", "api_key", "user"]
assert set(TARGET_TYPES) == set(TargetType.__args__)  # type: ignore[attr-defined]


class AuditEntry(BaseModel):
    """One change: who (key id and role, or the local account), what, to what, when, from
    where; ``details`` holds ids, codes, statuses and counts, never free text."""

    id: int
    at: dt.datetime
    actor_key_id: int | None
    actor_role: str | None
    actor: str
    origin: str
    action: str
    target_type: str
    target_id: str
    details: dict[str, Any]


class AuditPage(BaseModel):
    """A page of entries and how many match in all."""

    total: int
    limit: int
    offset: int
    items: list[AuditEntry]


def _text(name: str, value: str | None, most: int) -> str | None:
    """A text filter, 422 when it holds a NUL or is longer than ``most``."""
    if value is not None and ("\x00" in value or len(value) > most):
        raise InvalidInput(f"{name} must be at most {most} characters, without NUL")
    return value


@router.get("/audit", response_model=AuditPage)
async def audit_log(
    engine: EngineDep,
    _: AdminDep,
    action: Annotated[str | None, Query(description="exact, or a family: 'report.'")] = None,
    target_type: TargetType | None = None,
    target_id: Annotated[str | None, Query(max_length=64)] = None,
    actor_key_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    origin: Annotated[str | None, Query(max_length=200)] = None,
    since: Annotated[dt.datetime | None, Query(description="ISO time, inclusive")] = None,
    until: Annotated[dt.datetime | None, Query(description="ISO time, exclusive")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> AuditPage:
    """Audit entries matching every filter given, newest first, with the total."""
    since, until = (t.replace(tzinfo=CHINA_TZ) if t and not t.tzinfo else t for t in (since, until))
    f = store.AuditFilter(
        action=_text("action", action, 40),
        target_type=target_type,
        target_id=_text("target_id", target_id, 64),
        actor_key_id=actor_key_id,
        origin=_text("origin", origin, 200),
        since=since,
        until=until,
        limit=limit,
        offset=offset,
    )

    def read() -> AuditPage:
        with engine.connect() as conn:
            rows = store.page(conn, f)
            total = store.count(conn, f)
        items = [AuditEntry.model_validate(dict(r._mapping)) for r in rows]
        return AuditPage(total=total, limit=limit, offset=offset, items=items)

    return await asyncio.to_thread(read)
