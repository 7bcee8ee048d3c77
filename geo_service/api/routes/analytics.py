"""``/v1/analytics``: heat, hot spots, emerging hot spots and case-stage statistics as GeoJSON.

Every layer takes the same filters (``from``, ``to``, ``category``, ``channel``, ``status`` as
comma lists, ``area``, ``bbox``). Anyone may read them. Every layer drops the cells (or blanks
the areas) counted from 1 to k − 1 reports, k the setting ``analytics.k_min``
(``GEO_ANALYTICS_K_MIN``, default 5), for every caller unless asked otherwise: anyone may ask
for a larger ``k``; only operator, planner and admin keys (accountable staff who work with exact
per-grid counts) may ask for less, down to 0 (nothing suppressed). Public, reporter and grid
worker callers asking for less get 401/403. Likewise H3 cells are never finer than the public
resolution (``GEO_PRIVACY_PUBLIC_H3_RES``, default 8) for those callers: a finer ``res`` is
401/403, a ``zoom`` or the default is lowered to it. No layer carries personal data, whatever
the k.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Annotated, Any, Literal

import geopandas as gpd
from fastapi import APIRouter, Depends, Query
from sqlalchemy import Connection, Engine

from geo_service.analytics import emerging as emerging_mod
from geo_service.analytics import heat, hotspots, stages
from geo_service.analytics.filters import AnalysisFilter, make_filter
from geo_service.analytics.geojson import feature_collection
from geo_service.analytics.h3sql import ROLLUP_RES
from geo_service.analytics.privacy import suppress
from geo_service.api.deps import CallerDep, EngineDep, KDep, SettingsDep
from geo_service.api.models import ERRORS, AnalysisLayer
from geo_service.api.responses import JSONBytes
from geo_service.db.schema import AreaLevel
from geo_service.reports.disclosure import layer_res

router = APIRouter(prefix="/v1/analytics", tags=["analytics"], responses=ERRORS)

Level = AreaLevel


class GeoJSONResponse(JSONBytes):
    """A GeoJSON body (RFC 7946 media type)."""

    media_type = "application/geo+json"


def common_filter(
    since: Annotated[
        dt.datetime | None, Query(alias="from", description="ISO time; no zone = Beijing")
    ] = None,
    until: Annotated[dt.datetime | None, Query(alias="to", description="exclusive")] = None,
    category: Annotated[str | None, Query(description="comma-separated categories")] = None,
    channel: Annotated[str | None, Query(description="comma-separated channels")] = None,
    status: Annotated[
        str | None, Query(description="comma-separated statuses, or open / closed")
    ] = None,
    area: Annotated[str | None, Query(description="area code of any level")] = None,
    bbox: Annotated[str | None, Query(description="minlon,minlat,maxlon,maxlat")] = None,
) -> AnalysisFilter:
    """The filter every layer shares, validated (4xx naming a bad value)."""
    return make_filter(since, until, category, channel, status, area, bbox)


FilterDep = Annotated[AnalysisFilter, Depends(common_filter)]


async def _run(
    engine: Engine,
    compute: Callable[[Connection], gpd.GeoDataFrame],
    shape: Callable[[gpd.GeoDataFrame], dict[str, Any]],
) -> GeoJSONResponse:
    """Compute in a worker thread (a read: nothing is written), answer GeoJSON."""

    def work() -> dict[str, Any]:
        with engine.connect() as conn:
            return shape(compute(conn))

    return GeoJSONResponse(await asyncio.to_thread(work))


def _shape(k: int, level: str | None) -> Callable[[gpd.GeoDataFrame], dict[str, Any]]:
    """Suppress, then GeoJSON: cells are dropped, areas keep their shape with blank figures."""
    if level is None:
        return lambda frame: feature_collection(suppress(frame, k, drop=True), "cell")
    return lambda frame: feature_collection(suppress(frame, k, drop=False), "code")


@router.get("/heat", response_class=GeoJSONResponse, response_model=AnalysisLayer)
async def heat_layer(
    engine: EngineDep,
    kk: KDep,
    f: FilterDep,
    res: Annotated[int | None, Query(ge=6, le=11, description="H3 resolution")] = None,
    zoom: Annotated[float | None, Query(ge=0, le=24, description="map zoom → resolution")] = None,
    level: Annotated[Level | None, Query(description="per area instead of H3")] = None,
    per_household: bool = False,
    *,
    who: CallerDep,
    settings: SettingsDep,
) -> GeoJSONResponse:
    """Reports per H3 cell (resolution ``res``, or from ``zoom``: ≤8→6, 9-10→7, 11-12→8,
    13→9, 14→10, ≥15→11) or per area of ``level`` (every area, with ``per_household``)."""
    if level is None:
        res = layer_res(res, zoom, who, settings.privacy, ROLLUP_RES)
    return await _run(
        engine,
        lambda conn: heat.heat(
            conn, f, res=res, zoom=zoom, level=level, per_household=per_household
        ),
        _shape(kk, level),
    )


@router.get("/hotspots", response_class=GeoJSONResponse, response_model=AnalysisLayer)
async def hotspots_layer(
    engine: EngineDep,
    kk: KDep,
    f: FilterDep,
    res: Annotated[int | None, Query(ge=6, le=10)] = None,
    zoom: Annotated[float | None, Query(ge=0, le=24)] = None,
    level: Annotated[Level | None, Query(description="official areas instead of H3")] = None,
    contiguity: Literal["queen", "rook"] = "queen",
    band_m: Annotated[float | None, Query(gt=0, description="fixed band; default auto")] = None,
    per_household: bool = False,
    method: Literal["analytic", "permutation"] = "analytic",
    permutations: Annotated[int, Query(ge=1, le=hotspots.MAX_PERMUTATIONS)] = 999,
    seed: Annotated[
        int | None, Query(ge=0, le=2**63 - 1, description="permutation seed, for reproducible p")
    ] = None,
    fdr: bool = True,
    *,
    who: CallerDep,
    settings: SettingsDep,
) -> GeoJSONResponse:
    """Getis-Ord Gi* hot and cold spots (Optimized Hot Spot Analysis): z, p, FDR-adjusted q,
    Gi_Bin and class (hot_99 … cold_99) per H3 cell (distance band, automatic unless
    ``band_m``) or per area of ``level`` (contiguity). 422 under 30 features."""
    if level is None:
        res = min(layer_res(res, zoom, who, settings.privacy, hotspots.DEFAULT_RES), 10)
    return await _run(
        engine,
        lambda conn: hotspots.hotspots(
            conn,
            f,
            res=res,
            zoom=zoom,
            level=level,
            rule=contiguity,
            band_m=band_m,
            per_household=per_household,
            method=method,
            permutations=permutations,
            seed=seed,
            fdr=fdr,
        ),
        _shape(kk, level),
    )


@router.get("/emerging-hotspots", response_class=GeoJSONResponse, response_model=AnalysisLayer)
async def emerging_layer(
    engine: EngineDep,
    kk: KDep,
    f: FilterDep,
    slice_unit: Annotated[Literal["day", "week", "month"], Query(alias="slice")] = "week",
    res: Annotated[int | None, Query(ge=6, le=9)] = None,
    level: Annotated[Level | None, Query()] = None,
    contiguity: Literal["queen", "rook"] = "queen",
    band_m: Annotated[float | None, Query(gt=0)] = None,
    time_steps: Annotated[int, Query(ge=0, le=12, description="previous slices seen")] = 1,
    alpha: Annotated[float, Query(gt=0, lt=1, description="bin significance")] = 0.05,
    trend_alpha: Annotated[float, Query(gt=0, lt=1)] = 0.05,
    fdr: bool = True,
    *,
    who: CallerDep,
    settings: SettingsDep,
) -> GeoJSONResponse:
    """Emerging hot spot categories (new, consecutive, intensifying, persistent, diminishing,
    sporadic, oscillating, historical; hot and cold) over whole day/week/month slices, with
    the Mann-Kendall trend of each location's Gi* z-scores and its Gi_Bin per slice."""
    if level is None:
        res = layer_res(res, None, who, settings.privacy, emerging_mod.DEFAULT_RES)
    return await _run(
        engine,
        lambda conn: emerging_mod.emerging_hotspots(
            conn,
            f,
            slice_unit,
            res=res,
            level=level,
            rule=contiguity,
            band_m=band_m,
            time_steps=time_steps,
            alpha=alpha,
            fdr=fdr,
            trend_alpha=trend_alpha,
        ),
        _shape(kk, level),
    )


@router.get("/grid-stats", response_class=GeoJSONResponse, response_model=AnalysisLayer)
async def grid_stats_layer(
    engine: EngineDep,
    kk: KDep,
    f: FilterDep,
    level: Level = "grid",
) -> GeoJSONResponse:
    """Per area: reports, open, overdue, supervised (and supervised open) cases, and the
    median seconds before each loop step (``median_<action>_s``, ``steps_<action>``)."""
    return await _run(
        engine,
        lambda conn: stages.case_stages(conn, f, level),
        lambda fr: feature_collection(suppress(fr, kk, count="reports", drop=False), "code"),
    )
