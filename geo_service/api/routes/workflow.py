"""``/v1/reports/{id}/…``: move a case along its closed loop, reassign, escalate, supervise,
mark it public, read its history; ``/v1/reports:escalate-overdue`` for the periodic sweep."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, Engine

from geo_service.api.deps import (
    EngineDep,
    PrincipalDep,
    ReportId,
    RoutingDep,
    SettingsDep,
    require_role,
)
from geo_service.api.models import ERRORS, Escalated, Events, Report
from geo_service.api.responses import JSONBytes
from geo_service.auth import Principal
from geo_service.errors import StorableText
from geo_service.reports import queries, workflow

router = APIRouter(prefix="/v1", tags=["workflow"], responses=ERRORS)
SweeperDep = Annotated[Principal, Depends(require_role(*workflow.ROLES_OF["escalate_overdue"]))]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class TransitionIn(_Body):
    """Where the case goes next; a rating (1-5) only when it is evaluated."""

    to: StorableText = Field(max_length=32)
    note: StorableText | None = Field(default=None, max_length=2000)
    rating: int | None = Field(default=None, ge=1, le=5)


class ReassignIn(_Body):
    """A new category (re-routed unless a unit is named) and/or a named unit."""

    note: StorableText = Field(min_length=1, max_length=2000)
    category: StorableText | None = Field(default=None, max_length=64)
    unit_code: StorableText | None = Field(default=None, max_length=64)


class EscalateIn(_Body):
    """Why the case goes one level up; ``hard`` marks it a hard case (难事)."""

    note: StorableText = Field(min_length=1, max_length=2000)
    hard: bool = False


class SuperviseIn(_Body):
    """Why the case is put under supervision (督办)."""

    note: StorableText = Field(min_length=1, max_length=2000)


async def _change(
    engine: Engine, report_id: int, principal: Principal, apply: Callable[[Connection], None]
) -> JSONBytes:
    """Run ``apply`` in one transaction and answer the report as the caller sees it after it."""

    def run() -> dict[str, Any]:
        with engine.begin() as conn:
            apply(conn)
            return queries.get_report(conn, report_id, principal)

    return JSONBytes(await asyncio.to_thread(run))


@router.post("/reports/{report_id}/transitions", response_model=Report)
async def transition(
    report_id: ReportId, body: TransitionIn, engine: EngineDep, principal: PrincipalDep
) -> JSONBytes:
    """Move the case to ``to``: 409 naming the allowed targets when the loop does not allow it."""
    return await _change(
        engine,
        report_id,
        principal,
        lambda conn: workflow.transition(
            conn, report_id, principal, body.to, note=body.note, rating=body.rating
        ),
    )


@router.post("/reports/{report_id}/reassign", response_model=Report)
async def reassign(
    report_id: ReportId,
    body: ReassignIn,
    engine: EngineDep,
    routing: RoutingDep,
    principal: PrincipalDep,
) -> JSONBytes:
    """Change category and/or unit (a new category alone is re-routed); due date from its SLA."""
    table = await routing.get()
    return await _change(
        engine,
        report_id,
        principal,
        lambda conn: workflow.reassign(
            conn,
            report_id,
            principal,
            table,
            note=body.note,
            category=body.category,
            unit_code=body.unit_code,
        ),
    )


@router.post("/reports/{report_id}/escalate", response_model=Report)
async def escalate(
    report_id: ReportId,
    body: EscalateIn,
    engine: EngineDep,
    routing: RoutingDep,
    principal: PrincipalDep,
) -> JSONBytes:
    """One handling level up (community → town → county), re-routed; 409 at the county."""
    table = await routing.get()
    return await _change(
        engine,
        report_id,
        principal,
        lambda conn: workflow.escalate(
            conn, report_id, principal, table, note=body.note, hard=body.hard
        ),
    )


@router.post("/reports/{report_id}/supervise", response_model=Report)
async def supervise(
    report_id: ReportId, body: SuperviseIn, engine: EngineDep, principal: PrincipalDep
) -> JSONBytes:
    """Flag the case as supervised (督办) and record who did it and why."""
    return await _change(
        engine,
        report_id,
        principal,
        lambda conn: workflow.supervise(conn, report_id, principal, note=body.note),
    )


class PublicIn(_Body):
    """Whether the public views may show the case's point and description."""

    public: bool


@router.post("/reports/{report_id}/public", response_model=Report)
async def set_public(
    report_id: ReportId,
    body: PublicIn,
    engine: EngineDep,
    principal: PrincipalDep,
    settings: SettingsDep,
) -> JSONBytes:
    """Mark the case public or private again (operators and admins; audited). Public cases of
    a category in ``GEO_PRIVACY_PUBLIC_CATEGORIES`` show their point and description in Open311
    and OGC reads; 409 for a case of another category."""
    categories = settings.privacy.category_set()
    return await _change(
        engine,
        report_id,
        principal,
        lambda conn: workflow.set_public(
            conn, report_id, principal, public=body.public, public_categories=categories
        ),
    )


@router.get("/reports/{report_id}/events", response_model=Events)
async def events(report_id: ReportId, engine: EngineDep, principal: PrincipalDep) -> JSONBytes:
    """The case's loop history, oldest first, with the seconds each step took."""

    def run() -> list[dict[str, Any]]:
        with engine.connect() as conn:
            return workflow.history(conn, report_id, principal)

    return JSONBytes({"items": await asyncio.to_thread(run)})


@router.post("/reports:escalate-overdue", response_model=Escalated)
async def escalate_overdue(
    engine: EngineDep, routing: RoutingDep, principal: SweeperDep
) -> JSONBytes:
    """Escalate every open overdue case one level (once per SLA period): ``{"escalated": n}``."""
    table = await routing.get()

    def run() -> int:
        with engine.begin() as conn:
            return workflow.escalate_overdue(conn, dt.datetime.now(dt.UTC), table, principal)

    return JSONBytes({"escalated": await asyncio.to_thread(run)})
