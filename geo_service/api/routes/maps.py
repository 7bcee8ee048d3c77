"""``/maps``: operator map pages — heat, hot spots, grids (folium/Leaflet) and the vector
tiles (MapLibre GL JS). Every script and style sheet is served from ``/static``.

Access: the pages are public and draw only what the public ``/v1/analytics`` layers and tiles
give anyone — figures of 1 to k − 1 reports suppressed (k = ``GEO_ANALYTICS_K_MIN``), no
personal data. A browser cannot attach an ``Authorization`` header to a page load, so nothing
here needs a key; a caller that does send an operator, planner or admin key (a proxy, a
script) may lower ``k`` exactly as on the API, and ask for H3 cells finer than the public
resolution (``GEO_PRIVACY_PUBLIC_H3_RES``), which the public may not.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse
from sqlalchemy import Connection, Engine

from geo_service.api.deps import K_MAX, CallerDep, EngineDep, KDep, RoutingDep, SettingsDep
from geo_service.api.models import ERRORS
from geo_service.auth import Principal
from geo_service.maps import pages, tiles_page
from geo_service.maps.base import Basemap
from geo_service.maps.params import MapQuery
from geo_service.reports.disclosure import finest_res, layer_res
from geo_service.settings import Settings

router = APIRouter(prefix="/maps", tags=["maps"], responses=ERRORS)

Values = Annotated[list[str] | None, Query(description="comma list, or the key repeated")]


def map_query(
    since: Annotated[
        str | None, Query(alias="from", description="ISO time; no zone = Beijing; empty = none")
    ] = None,
    until: Annotated[str | None, Query(alias="to", description="exclusive")] = None,
    category: Values = None,
    channel: Values = None,
    status: Values = None,
    area: Annotated[str | None, Query(description="area code of any level")] = None,
    k: Annotated[int | None, Query(ge=0, le=K_MAX, description="suppression threshold")] = None,
) -> MapQuery:
    """The page's filters, validated like the analytics layers' (4xx naming a bad value)."""
    return MapQuery.parse(since, until, category, channel, status, area, None, k)


QueryDep = Annotated[MapQuery, Depends(map_query)]
Res = Annotated[int | None, Query(ge=6, le=9, description="H3 resolution (default 8)")]


def _basemap(settings: Settings) -> Basemap | None:
    url = settings.maps.basemap_url
    return Basemap(url, settings.maps.basemap_attribution) if url else None


async def _page(engine: Engine, build: Callable[[Connection], str]) -> HTMLResponse:
    """Build the page in a worker thread (a read: nothing is written)."""

    def work() -> str:
        with engine.connect() as conn:
            return build(conn)

    return HTMLResponse(await asyncio.to_thread(work))


async def _context(
    settings: SettingsDep, routing: RoutingDep, k: KDep, who: CallerDep
) -> pages.PageContext:
    """Suppression k (401/403 when the caller may not lower it), units, base map, and the
    finest H3 resolution the caller may see."""
    return pages.PageContext(
        k=k,
        routing=await routing.get(),
        basemap=_basemap(settings),
        max_res=finest_res(who, settings.privacy),
    )


ContextDep = Annotated[pages.PageContext, Depends(_context)]


def _res(res: int | None, who: Principal | None, settings: Settings) -> int:
    """The page's H3 resolution: as asked (401/403 when finer than the caller may see), else
    the pages' default lowered to what the caller may see."""
    return layer_res(res, None, who, settings.privacy, pages.DEFAULT_RES)


@router.get("/heat", response_class=HTMLResponse)
async def heat_map(
    engine: EngineDep,
    ctx: ContextDep,
    q: QueryDep,
    who: CallerDep,
    settings: SettingsDep,
    res: Res = None,
) -> HTMLResponse:
    """Reports per H3 cell and per grid, and a heat surface."""
    query = dataclasses.replace(q, res=_res(res, who, settings))
    return await _page(engine, lambda conn: pages.heat_page(conn, query, ctx))


@router.get("/hotspots", response_class=HTMLResponse)
async def hotspots_map(
    engine: EngineDep,
    ctx: ContextDep,
    q: QueryDep,
    who: CallerDep,
    settings: SettingsDep,
    res: Res = None,
) -> HTMLResponse:
    """Getis-Ord Gi* hot and cold spots on H3 cells and on grids."""
    query = dataclasses.replace(q, res=_res(res, who, settings))
    return await _page(engine, lambda conn: pages.hotspots_page(conn, query, ctx))


@router.get("/grids", response_class=HTMLResponse)
async def grids_map(engine: EngineDep, ctx: ContextDep, q: QueryDep) -> HTMLResponse:
    """Grids with open, overdue and supervised cases; community and town boundaries."""
    return await _page(engine, lambda conn: pages.grids_page(conn, q, ctx))


@router.get("/tiles", response_class=HTMLResponse)
async def tiles_map(engine: EngineDep, settings: SettingsDep, k: KDep, q: QueryDep) -> HTMLResponse:
    """The vector tile layers drawn by MapLibre GL JS (the browser fetches the tiles)."""
    return await _page(
        engine,
        lambda conn: tiles_page.tiles_page(q, pages.study_bounds(conn, q), k, _basemap(settings)),
    )
