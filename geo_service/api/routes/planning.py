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
from geo_service.planning import DRAFT_READERS, PLANNER_ROLES, drafts, edits, vertices
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
Position = Annotated[list[float], Field(min_length=2, max_length=2)]


class CopyIn(BaseModel):
    """The label of a new draft copying a stored version."""

    label: StorableText = Field(min_length=1, max_length=200)


class VertexMoveIn(BaseModel):
    """A shared vertex to move: where it is, where it goes, and how far either end snaps."""

    from_: Position = Field(alias="from")
    to: Position
    crs: StorableText = Field(default="wgs84", max_length=32)
    tolerance_m: float = Field(default=2.0, ge=0, le=vertices.MAX_TOLERANCE_M)


class AttributesIn(BaseModel):
    """A grid's attributes to change (keys left out are kept; null clears an attribute)."""

    model_config = {"extra": "forbid"}

    name: StorableText | None = Field(default=None, min_length=1, max_length=200)
    households: int | None = Field(default=None, ge=0, le=2**31 - 1)
    population: int | None = Field(default=None, ge=0, le=2**31 - 1)
    grid_worker: StorableText | None = Field(default=None, max_length=100)
    grid_leader: StorableText | None = Field(default=None, max_length=100)
    area_class: StorableText | None = Field(default=None, max_length=64)


class VertexMoved(BaseModel):
    """A moved vertex: where it was and went, what it snapped to, the grids that followed."""

    model_config = {"extra": "allow"}

    version_id: int
    grids: list[dict[str, Any]]


class AreaLayer(BaseModel):
    """A version's areas as a GeoJSON FeatureCollection."""

    model_config = {"extra": "allow"}

    type: str
    features: list[dict[str, Any]]


class VersionRef(BaseModel):
    """A version just made."""

    model_config = {"extra": "allow"}

    id: int
    label: str
    status: str


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


@router.post("/{version_id}/copy", status_code=201, response_model=VersionRef)
async def copy_version(
    version_id: VersionId, body: CopyIn, engine: EngineDep, principal: PlannerDep
) -> JSONBytes:
    """A new draft holding every area of version ``version_id`` as it is: where edits of the
    version in force start."""
    info = await _in_transaction(
        engine, lambda c: drafts.copy_draft(c, version_id, body.label, principal=principal)
    )
    return JSONBytes(info.as_dict(), status_code=201)


@router.post("/{version_id}/vertices/move", response_model=VertexMoved)
async def move_vertex(
    version_id: VersionId,
    body: VertexMoveIn,
    engine: EngineDep,
    settings: SettingsDep,
    principal: PlannerDep,
) -> JSONBytes:
    """Move a boundary vertex of a draft; every grid sharing it follows (topological edit).

    ``from`` snaps to the nearest grid vertex (else edge) within ``tolerance_m``, ``to`` to a
    vertex or edge of the grids around it. Refused with 422 naming the problem when the move
    would open a gap, make an overlap, leave the community or break a polygon.
    """
    points = edits.geometry_from_geojson(
        {"type": "LineString", "coordinates": [body.from_, body.to]}, body.crs, edits.LINEAR,
        "from/to"
    )
    (sx, sy), (tx, ty) = list(points.coords)[:2]
    moved = await _in_transaction(
        engine,
        lambda c: vertices.move_vertex(
            c, version_id, (sx, sy), (tx, ty), body.tolerance_m,
            settings.planning.tolerance_m2, principal=principal,
        ),
    )
    return JSONBytes(moved)


@router.patch("/{version_id}/grids/{code:digits}", response_model=GridReplaced)
async def edit_grid_attributes(
    version_id: VersionId,
    code: AreaCode,
    body: AttributesIn,
    engine: EngineDep,
    principal: PlannerDep,
) -> JSONBytes:
    """Change a draft grid's name, households, population, grid worker, leader or area class;
    its geometry and code stay."""
    changes = body.model_dump(exclude_unset=True)
    grid = await _in_transaction(
        engine,
        lambda c: edits.edit_attributes(c, version_id, code, changes, principal=principal),
    )
    return JSONBytes({"version_id": version_id, "grid": grid})


@router.get(
    "/{version_id}/areas",
    response_model=AreaLayer,
    responses={200: {"content": {GEOJSON: {"schema": {"type": "object"}}}}},
)
async def version_areas(
    version_id: VersionId,
    engine: EngineDep,
    _: DraftReaderDep,
    level: Annotated[Literal["town", "community", "grid"], Query()] = "grid",
    bbox: Annotated[str | None, Query(max_length=200, description="minx,miny,maxx,maxy")] = None,
    parent: Annotated[str | None, Query(pattern=r"^[0-9]{1,32}$")] = None,
) -> JSONBytes:
    """A version's areas of one level as GeoJSON (exact WGS84), optionally those touching
    ``bbox`` or under ``parent``: what the planner's editor draws and edits."""
    box = _bbox(bbox)

    def query() -> dict[str, Any]:
        with engine.connect() as conn:
            return drafts.areas_geojson(conn, version_id, level, within=box, parent_code=parent)

    return JSONBytes(await asyncio.to_thread(query), media_type="application/geo+json")


def _bbox(text: str | None) -> tuple[float, float, float, float] | None:
    """``minx,miny,maxx,maxy`` as four finite lon/lat numbers; 422 naming the fault."""
    if text is None:
        return None
    try:
        minx, miny, maxx, maxy = (float(v) for v in text.split(","))
    except ValueError as exc:
        raise InvalidInput(f"bbox {text!r} is not four numbers minx,miny,maxx,maxy") from exc
    if not (-180 <= minx < maxx <= 180 and -90 <= miny < maxy <= 90):
        raise InvalidInput(f"bbox {text!r} is not a lon/lat box with min below max")
    return (minx, miny, maxx, maxy)
