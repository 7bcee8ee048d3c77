"""Planners' impact, publish, rollback and suggestions; an area's history; the diff map page.

Roles: impact is read by planners, operators and admins; publishing, rolling back, suggesting
and the open-case sweep change things and need a planner or admin key (the sweep: operator
too). An area's history and the diff page carry layout data only and need no key.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from geo_service.api.deps import (
    EngineDep,
    LocatorsDep,
    PrincipalDep,
    RoutingDep,
    SettingsDep,
)
from geo_service.api.responses import JSONBytes
from geo_service.auth import require
from geo_service.boundaries import versions
from geo_service.boundaries.versions import parse_date
from geo_service.errors import InvalidInput
from geo_service.planning import area_history as history
from geo_service.planning import publish
from geo_service.planning.diff_map import diff_page
from geo_service.planning.grid_diff import diff_grids
from geo_service.planning.impact import SideCache, version_impact
from geo_service.planning.report_points import read_report_points
from geo_service.planning.suggest import SuggestOptions, suggest

router = APIRouter(tags=["planning"])

READERS = ("planner", "operator", "admin")
PLANNERS = ("planner", "admin")
SWEEPERS = ("planner", "operator", "admin")


def get_sides(request: Request) -> SideCache:
    """The service's cache of loaded versions (made on first use)."""
    cache: SideCache | None = getattr(request.app.state, "planning_sides", None)
    if cache is None:
        cache = request.app.state.planning_sides = SideCache()
    return cache


SidesDep = Annotated[SideCache, Depends(get_sides)]
Since = Annotated[str | None, Query(description="only reports since this date (YYYY-MM-DD)")]
Against = Annotated[int | None, Query(description="base version id; default: the one in force")]


class PublishIn(BaseModel):
    """The day the draft comes into force."""

    model_config = ConfigDict(extra="forbid")
    effective_from: str = Field(description="YYYY-MM-DD")


class SuggestIn(BaseModel):
    """Thresholds of the suggestion method (see ``geo_service.planning.suggest``)."""

    model_config = ConfigDict(extra="forbid")
    label: str | None = Field(default=None, min_length=1, max_length=200)
    since: str | None = Field(default=None, description="count reports since YYYY-MM-DD")
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


@router.get("/v1/boundaries/versions/{version_id}/impact")
async def impact(
    version_id: int,
    engine: EngineDep,
    principal: PrincipalDep,
    sides: SidesDep,
    against: Against = None,
    since: Since = None,
) -> JSONBytes:
    """Grids new, removed and changed; reports and open cases that would change grid and unit;
    workload per grid worker before and after."""
    require(principal, *READERS)
    day = parse_date(since)

    def run() -> dict[str, Any]:
        with engine.connect() as conn:
            return version_impact(conn, version_id, against=against, since=day, sides=sides)

    return JSONBytes(await asyncio.to_thread(run))


@router.post("/v1/boundaries/versions/{version_id}/publish")
async def publish_version(
    version_id: int,
    body: PublishIn,
    engine: EngineDep,
    principal: PrincipalDep,
    settings: SettingsDep,
    locators: LocatorsDep,
    routing: RoutingDep,
) -> JSONBytes:
    """Publish a draft from ``effective_from`` (422 listing its validation errors, if any)."""
    require(principal, *PLANNERS)
    day = parse_date(body.effective_from)
    assert day is not None

    def run() -> publish.Switch:
        with engine.begin() as conn:
            return publish.publish_draft(conn, version_id, day, principal, settings.planning)

    done = await asyncio.to_thread(run)
    routing.invalidate()  # the new areas' units
    if day <= dt.date.today():
        await locators.get_version(version_id)  # built now, so the swap costs requests nothing
    return JSONBytes(done.as_dict("replaced"))


@router.post("/v1/boundaries/versions/{version_id}/rollback")
async def rollback_version(
    version_id: int,
    engine: EngineDep,
    principal: PrincipalDep,
    locators: LocatorsDep,
    routing: RoutingDep,
) -> JSONBytes:
    """Take back the latest published version; the one it replaced is in force again."""
    require(principal, *PLANNERS)

    def run() -> publish.Switch:
        with engine.begin() as conn:
            return publish.rollback_version(conn, version_id, principal)

    done = await asyncio.to_thread(run)
    routing.invalidate()
    if done.mode == "unscheduled":  # a draft again: editable, so its Locator may go stale
        locators.forget(version_id)
    assert done.version.id is not None
    await locators.get_version(done.version.id)
    return JSONBytes(done.as_dict("rolled_back"))


@router.post("/v1/boundaries/reroute-open-cases")
async def reroute_open_cases(engine: EngineDep, principal: PrincipalDep) -> JSONBytes:
    """Move open cases to the version in force today (after a publish dated in the future)."""
    require(principal, *SWEEPERS)

    def run() -> dict[str, Any]:
        with engine.begin() as conn:
            return publish.follow_in_force(conn, principal, "boundary version in force").as_dict()

    return JSONBytes(await asyncio.to_thread(run))


@router.post("/v1/boundaries/versions/{version}/suggestions")
async def suggestions(
    version: str,
    engine: EngineDep,
    principal: PrincipalDep,
    settings: SettingsDep,
    sides: SidesDep,
    body: SuggestIn | None = None,
) -> JSONBytes:
    """Splits and merges that even out the workload, stored as a new draft (id, label or
    ``current``)."""
    require(principal, *PLANNERS)
    body = body or SuggestIn()
    options = SuggestOptions(**body.model_dump(exclude={"label", "since"}))
    options.check()
    since = parse_date(body.since)

    def run() -> dict[str, Any]:
        with engine.begin() as conn:
            side = sides.get(conn, _version_id(conn, version))
            points = read_report_points(conn, since)
            return suggest(
                conn,
                side.info,
                side.areas,
                side.locator,
                points,
                options,
                settings.planning,
                label=body.label,
            )

    return JSONBytes(await asyncio.to_thread(run), status_code=201)


@router.get("/v1/boundaries/areas/{code}/history")
async def area_history(code: str, engine: EngineDep) -> JSONBytes:
    """The versions an area was in, and how it changed from one to the next."""
    if not code.isdigit() or len(code) > 32:
        raise InvalidInput(f"{code!r} is not an area code (digits, at most 32)")

    def run() -> dict[str, Any]:
        with engine.connect() as conn:
            return history.area_history(conn, code)

    return JSONBytes(await asyncio.to_thread(run))


@router.get("/maps/versions/{version_id}/diff", response_class=HTMLResponse)
async def diff_map(
    version_id: int, engine: EngineDep, sides: SidesDep, against: Against = None
) -> HTMLResponse:
    """A map of what a draft changes against the version in force (or ``against``)."""

    def run() -> str:
        with engine.connect() as conn:
            draft = sides.get(conn, version_id)
            base_id = against if against is not None else _version_id(conn, "current")
            if base_id == version_id:
                raise InvalidInput("a version compared with itself changes nothing")
            base = sides.get(conn, base_id)
        return diff_page(base, draft, diff_grids(base.areas, draft.areas))

    return HTMLResponse(await asyncio.to_thread(run))
