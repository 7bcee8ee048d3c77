"""``/tiles``: Mapbox Vector Tiles ``/tiles/{layer}/{z}/{x}/{y}.mvt`` and TileJSON
``/tiles/{layer}.json`` for the layers grids, areas, reports, heat and hotspots.

Caching: tiles are cached per worker and keyed by the layer generations (migration 0005), so a
report or a publish shows within ``GEO_TILES_GENERATION_POLL_S`` (1 s) on every worker. Each
tile carries a strong ETag (hash of its bytes; ``If-None-Match`` → 304) and
``Cache-Control: max-age`` of ``GEO_TILES_MAX_AGE_S`` (5 s; ``private`` when a key was sent).
An empty tile is ``204 No Content``. ``X-Tile-Cache`` says hit or miss; ``X-Tile-Note`` says
why a tile is empty when there is a reason (too few features for Gi*).

Who sees what: without a key (or with a reporter or grid-worker key) the reports layer is
clusters only — reports per H3 cell at the cell's centre — and heat, hot spots and clusters
are never finer than the public resolution (``GEO_PRIVACY_PUBLIC_H3_RES``, default 8; staff:
clusters up to 9, heat up to 11) and hide features from 1 to k − 1 reports (k the setting
``GEO_ANALYTICS_K_MIN``; only operator, planner and admin keys may ask for less with ``k=``).
Operator, planner and admin keys see single reports from zoom ``GEO_TILES_POINTS_MIN_ZOOM``
(14) on. No tile carries personal data: no reporter name or phone, no free text, no photo.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Final

from fastapi import APIRouter, Path, Request, Response

from geo_service.analytics.privacy import STAFF_ROLES
from geo_service.api.deps import K_MAX, CallerDep, k_threshold
from geo_service.api.models import BINARY, ERRORS, TileJSON
from geo_service.api.responses import JSONBytes
from geo_service.auth import Principal
from geo_service.reports.disclosure import finest_res
from geo_service.settings import Settings
from geo_service.tiles.address import parse_tile
from geo_service.tiles.layers import AREA_LEVELS, LAYERS, LayerSpec
from geo_service.tiles.layers import layer as layer_spec
from geo_service.tiles.query import TileQuery, parse_query
from geo_service.tiles.response import MVT, tile_answer
from geo_service.tiles.service import TileService
from geo_service.tiles.tilejson import tilejson, version_bounds

router = APIRouter(tags=["tiles"], responses=ERRORS)

_TILE_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    200: {"content": {MVT: {"schema": BINARY}}, "description": "the tile"},
    204: {"description": "empty tile"},
    304: {"description": "not modified (If-None-Match)"},
}
# each query parameter a layer may take (LayerSpec.params), as the document declares it
_PARAMETERS: Final[dict[str, dict[str, Any]]] = {
    "as_of": {"schema": {"type": "string", "format": "date"},
              "description": "the boundary version in force that day (default today)"},
    "level": {"schema": {"type": "string", "enum": list(AREA_LEVELS)},
              "description": "areas of this level instead of H3 cells"},
    "from": {"schema": {"type": "string", "format": "date-time"},
             "description": "reported from (ISO time; no zone = Beijing)"},
    "to": {"schema": {"type": "string", "format": "date-time"},
           "description": "reported before (exclusive)"},
    "category": {"schema": {"type": "string"}, "description": "comma-separated categories"},
    "channel": {"schema": {"type": "string"}, "description": "comma-separated channels"},
    "status": {"schema": {"type": "string"},
               "description": "comma-separated statuses, or open / closed"},
    "area": {"schema": {"type": "string", "pattern": "^[0-9]{1,32}$"},
             "description": "area code of any level"},
    "k": {"schema": {"type": "integer", "minimum": 0, "maximum": K_MAX},
          "description": "suppress features of 1..k-1 reports (below the default: staff only)"},
}


def _documented(spec: LayerSpec) -> dict[str, Any]:
    """``openapi_extra`` of a layer's routes: the query parameters it takes."""
    return {
        "parameters": [
            {"name": name, "in": "query", "required": False, **_PARAMETERS[name]}
            for name in sorted(spec.params)
        ]
    }

_Z = Annotated[str, Path(pattern=r"^[0-9]{1,2}$", description="zoom, 0-24")]
_X = Annotated[str, Path(pattern=r"^[0-9]{1,9}$", description="column, from the west")]
_Y = Annotated[str, Path(pattern=r"^[0-9]{1,9}\.mvt$", description="row from the north, .mvt")]


def _query(request: Request, spec: LayerSpec, who: Principal | None) -> TileQuery:
    """The layer's query from the URL, k checked against what the caller may ask."""
    settings: Settings = request.app.state.settings
    return parse_query(
        spec,
        request.query_params.multi_items(),
        threshold=lambda k: k_threshold(k, who, settings.analytics.k_min),
        staff=who is not None and who.role in STAFF_ROLES,
        max_res=finest_res(who, settings.privacy),
    )


@router.get(
    "/tiles/{layer}.json", response_class=JSONBytes, response_model=TileJSON,
    include_in_schema=False,  # documented per layer (below)
)
async def get_tilejson(layer: str, request: Request, who: CallerDep) -> JSONBytes:
    """TileJSON 3.0.0 of a layer; the query (filters, ``level``, ``as_of``, ``k``) is checked
    and carried into the tile URL template."""
    spec = layer_spec(layer)
    q = _query(request, spec, who)
    settings: Settings = request.app.state.settings
    service: TileService = request.app.state.tiles

    def bounds() -> tuple[list[float], str | None]:
        with service.engine.connect() as conn:
            return version_bounds(conn, q.as_of)

    box, version = await asyncio.to_thread(bounds)
    base = str(request.base_url).rstrip("/")
    url = f"{base}/tiles/{spec.name}/{{z}}/{{x}}/{{y}}.mvt"
    if request.url.query:
        url += f"?{request.url.query}"
    doc = tilejson(
        spec, url, box, version, settings.analytics.k_min, settings.tiles.points_min_zoom
    )
    return JSONBytes(doc, headers={"Cache-Control": "no-cache"})


@router.get(
    "/tiles/{layer}/{z}/{x}/{y_mvt}", response_class=Response, responses=_TILE_RESPONSES,
    include_in_schema=False,  # documented per layer (below)
)
async def get_tile(
    layer: str, z: _Z, x: _X, y_mvt: _Y, request: Request, who: CallerDep
) -> Response:
    """One Mapbox Vector Tile, ``/tiles/{layer}/{z}/{x}/{y}.mvt``; see the module notes."""
    spec = layer_spec(layer)
    tile = parse_tile(z, x, y_mvt)
    q = _query(request, spec, who)
    service: TileService = request.app.state.tiles
    private = who is not None
    raw = request.scope
    auth = next((v for k, v in raw["headers"] if k == b"authorization"), None)
    if who is None or auth is not None:  # a session's view never under the public's key
        service.remember((raw["path"], raw["query_string"], auth), spec, tile, q, private)
    cached, hit = await service.tile(spec, tile, q)
    status, headers, body = tile_answer(
        cached, hit, request.headers.get("if-none-match"), private, service.settings.max_age_s
    )
    media = MVT if status == 200 else None
    return Response(body or None, status_code=status, headers=dict(headers), media_type=media)


def _layer_routes(spec: LayerSpec) -> None:
    """The documented routes of one layer: its TileJSON and its tiles, with its parameters
    (the routes above answer the same paths, and unknown layers)."""

    async def layer_tilejson(request: Request, who: CallerDep) -> JSONBytes:
        return await get_tilejson(spec.name, request, who)

    async def layer_tile(z: _Z, x: _X, y_mvt: _Y, request: Request, who: CallerDep) -> Response:
        return await get_tile(spec.name, z, x, y_mvt, request, who)

    extra = _documented(spec)
    router.add_api_route(
        f"/tiles/{spec.name}.json", layer_tilejson, response_class=JSONBytes,
        response_model=TileJSON, openapi_extra=extra,
        summary=f"TileJSON of {spec.title}", description=spec.description,
        name=f"tilejson_{spec.name}",
    )
    router.add_api_route(
        f"/tiles/{spec.name}/{{z}}/{{x}}/{{y_mvt}}", layer_tile, response_class=Response,
        responses=_TILE_RESPONSES, openapi_extra=extra,
        summary=f"{spec.title} tiles", description=spec.description,
        name=f"tile_{spec.name}",
    )


for _spec in LAYERS.values():
    _layer_routes(_spec)
