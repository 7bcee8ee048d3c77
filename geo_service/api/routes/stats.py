"""``/v1/stats``: the command centre's figures (:mod:`geo_service.stats.indicators`) per area,
unit or post for a day, week, month, quarter or year, and their series step by step.

For operator, planner and admin keys: the figures name units and posts and judge them. The
printed report (``/v1/stats/report``, HTML, PDF or XLSX) is for operators and admins, and for
a grid worker within the area it covers. Every parameter is checked; a bad one is a 422
naming it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

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
from geo_service.stats.report import (
    MEDIA_TYPES,
    Format,
    ReportPeriod,
    build_report,
    filename,
    render,
    scoped_area,
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


REPORT_ROLES = ("operator", "admin", "grid_worker")
ReporterDep = Annotated[Principal, Depends(require_role(*REPORT_ROLES))]


@router.get(
    "/report",
    response_class=Response,
    responses={200: {"content": {t: {} for t in MEDIA_TYPES.values()},
                     "description": "the report as HTML, PDF or XLSX"}},
)  # fmt: skip
async def get_report(
    engine: EngineDep,
    settings: SettingsDep,
    who: ReporterDep,
    period: Annotated[ReportPeriod, Query(description="day, week (from Monday), month, quarter")],
    date: Annotated[dt.date, Query(description="a day in the period")],
    format: Annotated[Format, Query(description="html, pdf or xlsx")] = "html",
    as_of: Annotated[
        dt.datetime | None,
        Query(description="the moment figures are taken at (no zone: Beijing); default now"),
    ] = None,
    area: Annotated[str | None, Query(description="only the cases in this area")] = None,
) -> Response:
    """The period's printed report in Chinese (figures per town, community, grid and unit,
    ranking, trends, hot-spot map, overdue and supervised cases) for operators and admins; a
    grid worker gets the area it covers (403 for another)."""
    area = scoped_area(who.role, who.scope, area)
    report = await asyncio.to_thread(
        build_report, engine, period, date, as_of=as_of, area=area, settings=settings.stats
    )
    body = await asyncio.to_thread(render, report, format)
    disposition = "inline" if format == "html" else "attachment"
    return Response(
        body,
        media_type=MEDIA_TYPES[format],
        headers={"Content-Disposition": f'{disposition}; filename="{filename(report, format)}"'},
    )
