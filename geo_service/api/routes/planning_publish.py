"""Planners' impact, publish, rollback and suggestions; an area's history; the diff map page.

Roles: impact is read by planners, operators and admins; publishing, rolling back, suggesting
and the open-case sweep change things and need a planner or admin key (the sweep: operator
too); every change is audited. An area's history needs no key; the diff page needs a planner,
operator or admin key when either side is a draft (published and retired versions are
public).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine

from geo_service.api.deps import (
    INT_MAX,
    AreaCode,
    CallerDep,
    EngineDep,
    RegistryDep,
    RoutingDep,
    SettingsDep,
    VersionId,
    require_role,
)
from geo_service.api.models import (
    ERRORS,
    AreaHistory,
    Impact,
    Rerouted,
    Suggestions,
    Switched,
)
from geo_service.api.responses import JSONBytes
from geo_service.api.session import LoginRequired, PageForbidden
from geo_service.auth import Principal
from geo_service.boundaries import publish, versions
from geo_service.boundaries.versions import parse_date
from geo_service.errors import InvalidInput, NoBoundaryVersion, StorableText
from geo_service.locator.registry import VersionRegistry
from geo_service.planning import area_history as history
from geo_service.planning.diff_map import diff_page
from geo_service.planning.grid_diff import diff_grids
from geo_service.planning.impact import side, version_impact
from geo_service.planning.report_points import read_report_points
from geo_service.planning.suggest import SuggestOptions, suggest

router = APIRouter(tags=["planning"], responses=ERRORS)

READERS = ("planner", "operator", "admin")
PLANNERS = ("planner", "admin")
SWEEPERS = ("planner", "operator", "admin")
ReaderDep = Annotated[Principal, Depends(require_role(*READERS))]
PublisherDep = Annotated[Principal, Depends(require_role(*PLANNERS))]
SweeperDep = Annotated[Principal, Depends(require_role(*SWEEPERS))]

Since = Annotated[dt.date | None, Query(description="only reports since this date (YYYY-MM-DD)")]
Against = Annotated[
    int | None, Query(ge=1, le=INT_MAX, description="base version id; default: the one in force")
]


async def _warm(registry: VersionRegistry, engine: Engine) -> None:
    """Build the Locator of the version now in force, so no request waits for it."""
    with contextlib.suppress(NoBoundaryVersion):  # a first version dated later: none yet
        await registry.locator_in_force(engine)


class PublishIn(BaseModel):
    """The day the draft comes into force."""

    model_config = ConfigDict(extra="forbid")
    effective_from: dt.date = Field(description="YYYY-MM-DD")


class SuggestIn(BaseModel):
    """Thresholds of the suggestion method (see ``geo_service.planning.suggest``)."""

    model_config = ConfigDict(extra="forbid")
    label: StorableText | None = Field(default=None, min_length=1, max_length=200)
    since: dt.date | None = Field(default=None, description="count reports since YYYY-MM-DD")
    split_above: float = SuggestOptions.split_above
    merge_below: float = SuggestOptions.merge_below
    merge_max: float = SuggestOptions.merge_max
    report_weight: float = SuggestOptions.report_weight
    min_shared_edge_m: float = Field(default=SuggestOptions.min_shared_edge_m, ge=0)
    max_parts: int = SuggestOptions.max_parts


def _version_id(conn: Any, key: str) -> int:
    """A version id from an id, a label, or ``current`` (the version in force today)."""
    info = versions.version_in_force(conn) if key == "current" else versions.get_version(conn, key)
    assert info.id is not None
    return info.id


@router.get("/v1/boundaries/versions/{version_id}/impact", response_model=Impact)
async def impact(
    version_id: VersionId,
    engine: EngineDep,
    _: ReaderDep,
    registry: RegistryDep,
    against: Against = None,
    since: Since = None,
) -> JSONBytes:
    """Grids new, removed and changed; reports and open cases that would change grid and unit;
    workload per grid worker before and after."""
    day = parse_date(since)

    def run() -> dict[str, Any]:
        with engine.connect() as conn:
            return version_impact(
                conn, version_id, against=against, since=day, registry=registry
            )

    return JSONBytes(await asyncio.to_thread(run))


@router.post("/v1/boundaries/versions/{version_id}/publish", response_model=Switched)
async def publish_version(
    version_id: VersionId,
    body: PublishIn,
    engine: EngineDep,
    principal: PublisherDep,
    settings: SettingsDep,
    registry: RegistryDep,
    routing: RoutingDep,
) -> JSONBytes:
    """Publish a draft from ``effective_from`` (422 listing its validation errors, if any)."""
    day = parse_date(body.effective_from)
    assert day is not None

    def run() -> publish.Switch:
        return publish.publish(
            engine,
            version_id,
            day,
            principal=principal,
            limits=settings.planning,
            registry=registry,
        )

    done = await asyncio.to_thread(run)
    routing.invalidate()  # the new areas' units
    await _warm(registry, engine)
    return JSONBytes(done.as_dict("replaced"))


@router.post("/v1/boundaries/versions/{version_id}/rollback", response_model=Switched)
async def rollback_version(
    version_id: VersionId,
    engine: EngineDep,
    principal: PublisherDep,
    registry: RegistryDep,
    routing: RoutingDep,
) -> JSONBytes:
    """Take back the latest published version; the one it replaced is in force again."""

    def run() -> publish.Switch:
        return publish.rollback(engine, version_id, principal=principal, registry=registry)

    done = await asyncio.to_thread(run)
    routing.invalidate()
    await _warm(registry, engine)
    return JSONBytes(done.as_dict("rolled_back"))


@router.post("/v1/boundaries/reroute-open-cases", response_model=Rerouted)
async def reroute_open_cases(engine: EngineDep, principal: SweeperDep) -> JSONBytes:
    """Move open cases to the version in force today (after a publish dated in the future)."""

    def run() -> dict[str, Any]:
        with engine.begin() as conn:
            return publish.follow_in_force(conn, principal, publish.IN_FORCE).as_dict()

    return JSONBytes(await asyncio.to_thread(run))


@router.post(
    "/v1/boundaries/versions/{version}/suggestions", status_code=201, response_model=Suggestions
)
async def suggestions(
    version: Annotated[str, Path(max_length=200, description="an id, a label or current")],
    engine: EngineDep,
    settings: SettingsDep,
    registry: RegistryDep,
    body: SuggestIn | None = None,
    *,
    principal: PublisherDep,
) -> JSONBytes:
    """Splits and merges that even out the workload, stored as a new draft (id, label or
    ``current``)."""
    body = body or SuggestIn()
    options = SuggestOptions(**body.model_dump(exclude={"label", "since"}))
    options.check()
    since = parse_date(body.since)

    def run() -> dict[str, Any]:
        with engine.begin() as conn:
            start = side(registry, conn, _version_id(conn, version))
            points = read_report_points(conn, since)
            return suggest(
                conn,
                start.info,
                start.areas,
                start.locator,
                points,
                options,
                settings.planning,
                label=body.label,
                principal=principal,
            )

    return JSONBytes(await asyncio.to_thread(run), status_code=201)


@router.get("/v1/boundaries/areas/{code}/history", response_model=AreaHistory)
async def area_history(code: AreaCode, engine: EngineDep) -> JSONBytes:
    """The versions an area was in, and how it changed from one to the next."""

    def run() -> dict[str, Any]:
        with engine.connect() as conn:
            return history.area_history(conn, code)

    return JSONBytes(await asyncio.to_thread(run))


async def page_reader(request: Request, who: CallerDep) -> Principal:
    """Who may open the planners' pages (diff map): a signed-in planner, operator or admin (a
    session, or a key of those roles for scripts). Anonymous: 303 to the sign-in page; another
    role: the 403 page."""
    if who is None:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(path)
    if who.role not in READERS:
        raise PageForbidden(who, ("planner", "operator"))
    return who


PageReaderDep = Annotated[Principal, Depends(page_reader)]


_PAGE_403 = {
    "description": "a signed-in role that may not see the page (an HTML page in Chinese), or "
                   "a key's role (JSON)",
    "content": {**ERRORS[403]["content"], "text/html": {"schema": {"type": "string"}}},
}


@router.get(
    "/maps/versions/{version_id}/diff",
    response_class=HTMLResponse,
    responses={303: {"description": "anonymous: sent to /login?next=…"}, 403: _PAGE_403},
)
async def diff_map(
    version_id: VersionId,
    engine: EngineDep,
    registry: RegistryDep,
    _: PageReaderDep,
    against: Against = None,
) -> HTMLResponse:
    """A map of what a version changes against the version in force (or ``against``), for a
    signed-in planner, operator or admin."""

    def run() -> str:
        with engine.connect() as conn:
            base_id = against if against is not None else _version_id(conn, "current")
            if base_id == version_id:
                raise InvalidInput("a version compared with itself changes nothing")
            draft = side(registry, conn, version_id)
            base = side(registry, conn, base_id)
        return diff_page(base, draft, diff_grids(base.areas, draft.areas))

    return HTMLResponse(await asyncio.to_thread(run))
