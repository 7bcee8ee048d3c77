"""``/v1/boundaries/versions``: planners upload drafts, edit them grid by grid, renumber and
validate them. Planner role only (401 without a key, 403 for other roles)."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import Connection, Engine

from geo_service.api.deps import EngineDep, PrincipalDep, SettingsDep
from geo_service.api.responses import JSONBytes
from geo_service.auth import Principal, require
from geo_service.planning import PLANNER_ROLES, drafts, edits
from geo_service.planning.renumber import renumber
from geo_service.planning.uploads import layout_file, receive_upload
from geo_service.planning.validation_report import validation_report

router = APIRouter(prefix="/v1/boundaries/versions", tags=["planning"])
T = TypeVar("T")


class ReplaceIn(BaseModel):
    """A grid's new geometry (GeoJSON Polygon or MultiPolygon) and, optionally, households."""

    geometry: dict[str, Any]
    crs: str = "wgs84"
    households: int | None = Field(default=None, ge=0)


class SplitIn(BaseModel):
    """The line (GeoJSON LineString or MultiLineString) to cut a grid along."""

    line: dict[str, Any]
    crs: str = "wgs84"


class MergeIn(BaseModel):
    """The two neighbouring grids of one community to merge."""

    codes: list[str] = Field(min_length=2, max_length=2)


def _planner(principal: Principal) -> None:
    require(principal, *PLANNER_ROLES)


async def _in_transaction(engine: Engine, work: Callable[[Connection], T]) -> T:
    """Run ``work`` in one transaction in a worker thread: it commits whole or not at all."""

    def run() -> T:
        with engine.begin() as conn:
            return work(conn)

    return await asyncio.to_thread(run)


@router.post("", status_code=201)
async def upload_draft(
    request: Request, engine: EngineDep, settings: SettingsDep, principal: PrincipalDep
) -> JSONBytes:
    """Upload a layout (multipart ``file``: GeoJSON, GeoPackage or zipped Shapefile; ``label``;
    optional ``crs``) as a new draft version: 201 ``{"id": ...}``.

    Stored with grid-level faults (see the validation report); refused with 422 listing the
    problems when the geometry is broken or the hierarchy or codes cannot be stored.
    """
    _planner(principal)
    limits = settings.planning
    with tempfile.TemporaryDirectory(prefix="geo-upload-") as tmp:
        folder = Path(tmp)
        upload = await receive_upload(request, limits.max_upload_bytes, folder)
        label = drafts.check_label(upload.label)

        def store() -> drafts.DraftCreated:
            path = layout_file(upload, folder, limits)
            return drafts.create_draft(engine, path, label, upload.crs, upload.filename, limits)

        created = await asyncio.to_thread(store)
    return JSONBytes(created.as_dict(), status_code=201)


@router.get("/{version_id}/validation")
async def validation(
    version_id: int,
    engine: EngineDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    f: Annotated[Literal["json", "geojson"], Query()] = "json",
) -> JSONBytes:
    """The version's validation report; ``f=geojson`` gives the problems as a GeoJSON layer."""
    _planner(principal)

    def query() -> Any:
        with engine.connect() as conn:
            return validation_report(conn, version_id, settings.planning)

    report = await asyncio.to_thread(query)
    if f == "geojson":
        return JSONBytes(report.as_geojson(), media_type="application/geo+json")
    return JSONBytes(report.as_dict())


@router.put("/{version_id}/grids/{code}")
async def replace_grid(
    version_id: int, code: str, body: ReplaceIn, engine: EngineDep, principal: PrincipalDep
) -> JSONBytes:
    """Replace one grid's geometry in a draft; the grid keeps its code."""
    _planner(principal)
    geom = edits.geometry_from_geojson(body.geometry, body.crs, edits.POLYGONAL, "geometry")
    grid = await _in_transaction(
        engine, lambda c: edits.replace_grid(c, version_id, code, geom, body.households)
    )
    return JSONBytes({"version_id": version_id, "grid": grid})


@router.post("/{version_id}/grids/{code}/split", status_code=201)
async def split_grid(
    version_id: int, code: str, body: SplitIn, engine: EngineDep, principal: PrincipalDep
) -> JSONBytes:
    """Split one grid of a draft along a line; the pieces get new codes of the same community."""
    _planner(principal)
    line = edits.geometry_from_geojson(body.line, body.crs, edits.LINEAR, "line")
    pieces = await _in_transaction(
        engine, lambda c: edits.split_grid(c, version_id, code, line)
    )
    return JSONBytes(
        {"version_id": version_id, "removed": [code], "created": pieces}, status_code=201
    )


@router.post("/{version_id}/grids/merge", status_code=201)
async def merge_grids(
    version_id: int, body: MergeIn, engine: EngineDep, principal: PrincipalDep
) -> JSONBytes:
    """Merge two neighbouring grids of one community of a draft into one with a new code."""
    _planner(principal)
    merged = await _in_transaction(
        engine, lambda c: edits.merge_grids(c, version_id, body.codes)
    )
    return JSONBytes(
        {"version_id": version_id, "removed": sorted(body.codes), "created": [merged]},
        status_code=201,
    )


@router.post("/{version_id}/renumber")
async def renumber_draft(
    version_id: int, engine: EngineDep, principal: PrincipalDep
) -> JSONBytes:
    """Renumber a draft's grids north→south, west→east; unchanged grids keep their codes."""
    _planner(principal)
    result = await _in_transaction(engine, lambda c: renumber(c, version_id))
    return JSONBytes(result.as_dict())
