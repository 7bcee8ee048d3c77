"""Case-stage layers per area: open, overdue and supervised cases, and the median time each
loop step took (from ``report_events``: the time since the case's previous event).

The filter selects the cases (reported in the window, of those categories, channels, statuses);
"open" is any status before evaluation or rejection, "overdue" an open case past its due time.
Areas are those of the version in force; a case counts in the area of the grid it was located
in at intake.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

import geopandas as gpd
import pandas as pd
import shapely
from sqlalchemy import (
    Connection,
    DateTime,
    func,
    literal,
    select,
)

from geo_service.analytics import areas as area_data
from geo_service.analytics.filters import (
    AnalysisFilter,
    attribute_conditions,
    level_length,
    reports,
    window_conditions,
)
from geo_service.reports.queries import OPEN_STATUSES, events

COUNT_COLUMNS: Final = ("reports", "open", "overdue", "supervised", "supervised_open")



def _cases(f: AnalysisFilter, length: int):  # type: ignore[no-untyped-def]
    since, until = f.window()
    return (
        select(reports.c.id, func.left(reports.c.grid_code, length).label("code"))
        .where(
            reports.c.grid_code.isnot(None),
            *window_conditions(reports, since, until),
            *attribute_conditions(f, reports),
        )
        .subquery()
    )


def stage_counts(
    conn: Connection, f: AnalysisFilter, level: str = "grid", now: dt.datetime | None = None
) -> pd.DataFrame:
    """Per area code: ``reports``, ``open``, ``overdue``, ``supervised``, ``supervised_open``."""
    length = level_length(level)
    since, until = f.window()
    clock = literal(now, DateTime(timezone=True)) if now is not None else func.now()
    is_open = reports.c.status.in_(OPEN_STATUSES)
    code = func.left(reports.c.grid_code, length).label("code")
    sub = (
        select(
            code,
            is_open.label("is_open"),
            (is_open & (reports.c.due_at < clock)).label("is_overdue"),
            reports.c.supervised.label("is_supervised"),
        )
        .where(
            reports.c.grid_code.isnot(None),
            *window_conditions(reports, since, until),
            *attribute_conditions(f, reports),
        )
        .subquery()
    )
    rows = conn.execute(
        select(
            sub.c.code,
            func.count(),
            func.count().filter(sub.c.is_open),
            func.count().filter(sub.c.is_overdue),
            func.count().filter(sub.c.is_supervised),
            func.count().filter(sub.c.is_supervised & sub.c.is_open),
        ).group_by(sub.c.code)
    ).all()
    frame = pd.DataFrame(rows, columns=["code", *COUNT_COLUMNS])
    return frame.astype({c: "int64" for c in COUNT_COLUMNS})


def step_durations(conn: Connection, f: AnalysisFilter, level: str = "grid") -> pd.DataFrame:
    """Per area code and loop action: ``median_s`` (seconds since the case's previous event,
    never negative) and ``steps`` (how many such events)."""
    cases = _cases(f, level_length(level))
    lagged = (
        select(
            events.c.report_id,
            events.c.action,
            events.c.at,
            func.lag(events.c.at)
            .over(partition_by=events.c.report_id, order_by=events.c.id)
            .label("prev"),
        )
        .where(events.c.report_id.in_(select(cases.c.id)))
        .subquery()
    )
    seconds = func.greatest(0.0, func.extract("epoch", lagged.c.at - lagged.c.prev))
    rows = conn.execute(
        select(
            cases.c.code,
            lagged.c.action,
            func.percentile_cont(0.5).within_group(seconds),
            func.count(),
        )
        .select_from(lagged.join(cases, cases.c.id == lagged.c.report_id))
        .where(lagged.c.prev.isnot(None))
        .group_by(cases.c.code, lagged.c.action)
    ).all()
    frame = pd.DataFrame(rows, columns=["code", "action", "median_s", "steps"])
    return frame.astype({"median_s": "float64", "steps": "int64"})


def case_stages(
    conn: Connection,
    f: AnalysisFilter,
    level: str = "grid",
    *,
    as_of: dt.date | None = None,
    now: dt.datetime | None = None,
) -> gpd.GeoDataFrame:
    """Every area of ``level`` with its counts (zeros included) and, per loop action seen,
    ``median_<action>_s`` and ``steps_<action>`` (None/0 where no case took that step)."""
    polys = area_data.areas(conn, level, as_of)
    frame = polys[["code", "name", "level", "households", "geometry"]].merge(
        stage_counts(conn, f, level, now), on="code", how="left"
    )
    for c in COUNT_COLUMNS:
        frame[c] = frame[c].fillna(0).astype("int64")
    steps = step_durations(conn, f, level)
    actions = sorted(steps["action"].unique()) if len(steps) else []
    if actions:
        wide = steps.pivot(index="code", columns="action", values=["median_s", "steps"])
        for action in actions:
            frame[f"median_{action}_s"] = frame["code"].map(wide[("median_s", action)])
            counted = frame["code"].map(wide[("steps", action)])
            frame[f"steps_{action}"] = counted.fillna(0).astype("int64")
    if f.area:
        area = f.area
        frame = frame[frame["code"].map(lambda c: c.startswith(area) or area.startswith(c))]
    if f.bbox is not None:
        frame = frame[frame.intersects(shapely.box(*f.bbox))]
    frame = gpd.GeoDataFrame(frame.reset_index(drop=True), geometry="geometry", crs="EPSG:4326")
    frame.attrs.update(
        layer="grid_stats", unit=level, actions=actions, version=polys.attrs.get("version")
    )
    return frame
