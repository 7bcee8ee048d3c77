"""``/tiles``: Mapbox Vector Tiles ``/tiles/{layer}/{z}/{x}/{y}.mvt`` and TileJSON
``/tiles/{layer}.json`` for the layers grids, areas, reports, heat and hotspots.

Caching: tiles are cached per worker and keyed by the layer generations (migration 0005), so a
report or a publish shows within ``GEO_TILES_GENERATION_POLL_S`` (1 s) on every worker. Each
tile carries a strong ETag (hash of its bytes; ``If-None-Match`` → 304) and
``Cache-Control: max-age`` of ``GEO_TILES_MAX_AGE_S`` (5 s; ``private`` when a key was sent).
An empty tile is ``204 No Content``. ``X-Tile-Cache`` says hit or miss; ``X-Tile-Note`` says
why a tile is empty when there is a reason (too few features for Gi*).

Who sees what: without a key (or with a reporter or grid-worker key) the reports layer is
clusters only — reports per H3 cell at the cell's centre, never finer than resolution 9 —
and heat, hot spots and clusters hide features from 1 to k − 1 reports (k the setting
``GEO_ANALYTICS_K_MIN``; only operator, planner and admin keys may ask for less with ``k=``).
Operator, planner and admin keys see single reports from zoom ``GEO_TILES_POINTS_MIN_ZOOM``
(14) on. No tile carries personal data: no reporter name or phone, no free text, no photo.
"""

from __future__ import annotations

import asyncio
from typing import Final

from fastapi import APIRouter, Request, Response

from geo_service.analytics.privacy import STAFF_ROLES
from geo_service.api.responses import JSONBytes
from geo_service.api.routes.analytics import threshold
from geo_service.auth import KeyStore, Principal
from geo_service.settings import Settings
from geo_service.tiles.address import parse_tile
from geo_service.tiles.layers import LayerSpec
from geo_service.tiles.layers import layer as layer_spec
from geo_service.tiles.query import TileQuery, parse_query
from geo_service.tiles.response import MVT, tile_answer
from geo_service.tiles.service import TileService
from geo_service.tiles.tilejson import tilejson, version_bounds

router = APIRouter(tags=["tiles"])

_TILE_RESPONSES: Final[dict[int | str, dict[str, object]]] = {
    200: {"content": {MVT: {}}, "description": "the tile"},
    204: {"description": "empty tile"},
    304: {"description": "not modified (If-None-Match)"},
}


async def _principal(request: Request) -> Principal | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    keys: KeyStore = request.app.state.keys
    return await asyncio.to_thread(keys.authenticate, header)


async def _query(request: Request, spec: LayerSpec) -> tuple[TileQuery, Principal | None]:
    principal = await _principal(request)
    settings: Settings = request.app.state.settings
    q = parse_query(
        spec,
        request.query_params.multi_items(),
        threshold=lambda k: threshold(k, principal, settings.analytics.k_min),
        staff=principal is not None and principal.role in STAFF_ROLES,
    )
    return q, principal


@router.get("/tiles/{layer}.json", response_class=JSONBytes)
async def get_tilejson(layer: str, request: Request) -> JSONBytes:
    """TileJSON 3.0.0 of a layer; the query (filters, ``level``, ``as_of``, ``k``) is checked
    and carried into the tile URL template."""
    spec = layer_spec(layer)
    q, _ = await _query(request, spec)
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


@router.get("/tiles/{layer}/{z}/{x}/{y_mvt}", response_class=Response, responses=_TILE_RESPONSES)
async def get_tile(layer: str, z: str, x: str, y_mvt: str, request: Request) -> Response:
    """One Mapbox Vector Tile, ``/tiles/{layer}/{z}/{x}/{y}.mvt``; see the module notes."""
    spec = layer_spec(layer)
    tile = parse_tile(z, x, y_mvt)
    q, principal = await _query(request, spec)
    service: TileService = request.app.state.tiles
    private = principal is not None
    raw = request.scope
    auth = next((v for k, v in raw["headers"] if k == b"authorization"), None)
    service.remember((raw["path"], raw["query_string"], auth), spec, tile, q, private)
    cached, hit = await service.tile(spec, tile, q)
    status, headers, body = tile_answer(
        cached, hit, request.headers.get("if-none-match"), private, service.settings.max_age_s
    )
    media = MVT if status == 200 else None
    return Response(body or None, status_code=status, headers=dict(headers), media_type=media)
