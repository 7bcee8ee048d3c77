"""``/v1/stats``: the command centre's figures (:mod:`geo_service.stats.indicators`) per area,
unit or post for a day, week, month, quarter or year, and their series step by step.

For operator, planner and admin keys: the figures name units and posts and judge them.
Every parameter is checked; a bad one is a 422 naming it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from geo_service.api.deps import EngineDep, SettingsDep, require_role
from geo_service.api.models import ERRORS, Indicators, Trend
from geo_service.api.responses import JSONBytes
from geo_service.auth import Principal
from geo_service.db.schema import AreaLevel
from geo_service.stats.indicators import (
    By,
    IndicatorQuery,
    Period,
    PeriodKind,
    Step,
    indicators,
    trend,
)

router = APIRouter(prefix="/v1/stats", tags=["stats"], responses=ERRORS)

FIGURE_ROLES = ("operator", "planner", "admin")
ViewerDep = Annotated[Principal, Depends(require_role(*FIGURE_ROLES))]


def _list(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(dict.fromkeys(p.strip() for p in value.split(",") if p.strip()))


def stats_query(
    period: Annotated[PeriodKind, Query(description="day, week (from Monday), month, …")] = (
        "month"
    ),
    date: Annotated[
        dt.date | None, Query(description="a day in the period; default today (Beijing)")
    ] = None,
    as_of: Annotated[
        dt.datetime | None,
        Query(description="the moment figures are taken at (no zone: Beijing); default now"),
    ] = None,
    by: Annotated[By, Query(description="rows: areas of a level, units or posts")] = "area",
    level: Annotated[
        AreaLevel | None, Query(description="area level (by=area, default grid) or unit level")
    ] = None,
    category: Annotated[str | None, Query(description="comma-separated categories")] = None,
    channel: Annotated[str | None, Query(description="comma-separated channels")] = None,
    area: Annotated[str | None, Query(description="count only cases in this area")] = None,
) -> IndicatorQuery:
    """The query every figure route shares (422 naming a bad parameter)."""
    return IndicatorQuery(
        Period.of(period, date, as_of), by, level, _list(category), _list(channel), area
    )


QueryDep = Annotated[IndicatorQuery, Depends(stats_query)]


@router.get("/indicators", response_class=JSONBytes, response_model=Indicators)
async def get_indicators(
    engine: EngineDep, settings: SettingsDep, _: ViewerDep, q: QueryDep
) -> JSONBytes:
    """``{"period": {"start", "end", "as_of"}, "items": [{"code", "name", "level", …every
    figure…, "score", "grade", "rank"}]}``: one item per area of ``level``, unit or post,
    ranked ones first."""
    table = await asyncio.to_thread(indicators, engine, q, settings.stats)
    return JSONBytes(table.to_json())


@router.get("/trend", response_class=JSONBytes, response_model=Trend)
async def get_trend(
    engine: EngineDep,
    _: ViewerDep,
    q: QueryDep,
    step: Annotated[Step, Query(description="day, week or month")] = "day",
) -> JSONBytes:
    """The figures per ``step`` of the period, for the totals and per area or unit
    (``{"period", "step", "steps", "total", "items": [{"code", "name", "level", "series"}]}``)."""
    series = await asyncio.to_thread(trend, engine, q, step)
    return JSONBytes(series.to_json())
