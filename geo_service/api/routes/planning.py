"""``/v1/boundaries/versions``: planners upload drafts, edit them grid by grid, renumber and
validate them. Planner role only (401 without a key, 403 for other roles), but for the
validation report, which operators and admins may read too; every change is audited."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import Connection, Engine

from geo_service.api.deps import AreaCode, EngineDep, SettingsDep, VersionId, require_role
from geo_service.api.limits import UploadRequest
from geo_service.api.models import (
    ERRORS,
    GEOJSON,
    REF,
    DraftCreated,
    GridReplaced,
    GridsChanged,
    Renumbered,
    ValidationReport,
)
from geo_service.api.responses import JSONBytes
from geo_service.auth import Principal
from geo_service.errors import InvalidInput, StorableText, unstorable
from geo_service.planning import DRAFT_READERS, PLANNER_ROLES, drafts, edits
from geo_service.planning.renumber import renumber
from geo_service.planning.uploads import receive_upload
from geo_service.planning.validation_report import validation_report

router = APIRouter(prefix="/v1/boundaries/versions", tags=["planning"], responses=ERRORS)
T = TypeVar("T")
PlannerDep = Annotated[Principal, Depends(require_role(*PLANNER_ROLES))]
DraftReaderDep = Annotated[Principal, Depends(require_role(*DRAFT_READERS))]


class ReplaceIn(BaseModel):
    """A grid's new geometry (GeoJSON Polygon or MultiPolygon) and, optionally, households."""

    geometry: dict[str, Any]
    crs: StorableText = Field(default="wgs84", max_length=32)
    households: int | None = Field(default=None, ge=0, le=2**31 - 1)


class SplitIn(BaseModel):
    """The line (GeoJSON LineString or MultiLineString) to cut a grid along."""

    line: dict[str, Any]
    crs: StorableText = Field(default="wgs84", max_length=32)


GridCode = Annotated[StorableText, Field(pattern=r"^[0-9]{1,32}$")]


class MergeIn(BaseModel):
    """The two neighbouring grids of one community to merge."""

    codes: list[GridCode] = Field(min_length=2, max_length=2)


async def _in_transaction(engine: Engine, work: Callable[[Connection], T]) -> T:
    """Run ``work`` in one transaction in a worker thread: it commits whole or not at all."""

    def run() -> T:
        with engine.begin() as conn:
            return work(conn)

    return await asyncio.to_thread(run)


_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "label"],
                    "properties": {
                        "file": {"type": "string", "format": "binary",
                                 "description": "GeoJSON, GeoPackage or zipped Shapefile"},
                        "label": {"type": "string", "minLength": 1, "maxLength": 200},
                        "crs": {"type": "string", "description": "wgs84, gcj02, … or EPSG:n"},
                    },
                }
            }
        },
    }
}


@router.post("", status_code=201, response_model=DraftCreated, openapi_extra=_UPLOAD_BODY)
async def upload_draft(
    principal: PlannerDep, request: UploadRequest, engine: EngineDep, settings: SettingsDep
) -> JSONBytes:
    """Upload a layout (multipart ``file``: GeoJSON, GeoPackage or zipped Shapefile; ``label``;
    optional ``crs``) as a new draft version: 201 ``{"id": ...}``.

    Stored with grid-level faults (see the validation report); refused with 422 listing the
    problems when the geometry is broken or the hierarchy or codes cannot be stored.
    """
    limits = settings.planning
    with tempfile.TemporaryDirectory(prefix="geo-upload-") as tmp:
        folder = Path(tmp)
        upload = await receive_upload(request, folder)
        for name, text in (("label", upload.label), ("crs", upload.crs), ("file", upload.filename)):
            if text and (problem := unstorable(text)):
                raise InvalidInput(f"{name} {problem}")
        label = drafts.check_label(upload.label)

        def store() -> drafts.DraftCreated:
            return drafts.create_draft(
                engine,
                upload.path,
                label,
                upload.crs,
                upload.filename,
                limits,
                settings.layout,
                principal=principal,
            )

        created = await asyncio.to_thread(store)
    return JSONBytes(created.as_dict(), status_code=201)


@router.get(
    "/{version_id}/validation",
    response_model=ValidationReport,
    responses={200: {"content": {GEOJSON: {"schema": {"$ref": REF + "ProblemLayer"}}}}},
)
async def validation(
    version_id: VersionId,
    engine: EngineDep,
    settings: SettingsDep,
    _: DraftReaderDep,
    f: Annotated[Literal["json", "geojson"], Query()] = "json",
) -> JSONBytes:
    """The version's validation report; ``f=geojson`` gives the problems as a GeoJSON layer."""

    def query() -> Any:
        with engine.connect() as conn:
            return validation_report(conn, version_id, settings.planning)

    report = await asyncio.to_thread(query)
    if f == "geojson":
        return JSONBytes(report.as_geojson(), media_type="application/geo+json")
    return JSONBytes(report.as_dict())


@router.put("/{version_id}/grids/{code:digits}", response_model=GridReplaced)
async def replace_grid(
    version_id: VersionId,
    code: AreaCode,
    body: ReplaceIn,
    engine: EngineDep,
    principal: PlannerDep,
) -> JSONBytes:
    """Replace one grid's geometry in a draft; the grid keeps its code."""
    geom = edits.geometry_from_geojson(body.geometry, body.crs, edits.POLYGONAL, "geometry")
    grid = await _in_transaction(
        engine,
        lambda c: edits.replace_grid(
            c, version_id, code, geom, body.households, principal=principal
        ),
    )
    return JSONBytes({"version_id": version_id, "grid": grid})


@router.post(
    "/{version_id}/grids/{code:digits}/split", status_code=201, response_model=GridsChanged
)
async def split_grid(
    version_id: VersionId,
    code: AreaCode,
    body: SplitIn,
    engine: EngineDep,
    principal: PlannerDep,
) -> JSONBytes:
    """Split one grid of a draft along a line; the pieces get new codes of the same community."""
    line = edits.geometry_from_geojson(body.line, body.crs, edits.LINEAR, "line")
    pieces = await _in_transaction(
        engine, lambda c: edits.split_grid(c, version_id, code, line, principal=principal)
    )
    return JSONBytes(
        {"version_id": version_id, "removed": [code], "created": pieces}, status_code=201
    )


@router.post("/{version_id}/grids/merge", status_code=201, response_model=GridsChanged)
async def merge_grids(
    version_id: VersionId, body: MergeIn, engine: EngineDep, principal: PlannerDep
) -> JSONBytes:
    """Merge two neighbouring grids of one community of a draft into one with a new code."""
    merged = await _in_transaction(
        engine, lambda c: edits.merge_grids(c, version_id, body.codes, principal=principal)
    )
    return JSONBytes(
        {"version_id": version_id, "removed": sorted(body.codes), "created": [merged]},
        status_code=201,
    )


@router.post("/{version_id}/renumber", response_model=Renumbered)
async def renumber_draft(
    version_id: VersionId, engine: EngineDep, principal: PlannerDep
) -> JSONBytes:
    """Renumber a draft's grids north→south, west→east; unchanged grids keep their codes."""
    result = await _in_transaction(engine, lambda c: renumber(c, version_id, principal=principal))
    return JSONBytes(result.as_dict())
