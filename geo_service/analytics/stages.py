"""Case-stage layers per area: open, overdue and supervised cases, and the median time each
loop step took (from ``report_events``: the time since the case's previous event).

The filter selects the cases (reported in the window, of those categories, channels, statuses);
"open" is any status before evaluation or rejection, "overdue" an accepted case whose handling
is not done past its handling deadline (``geo_service.store.stats.overdue``). The numbers come
from the per-case facts triggers keep (:mod:`geo_service.stats.stages`), not from the events.
Areas are those of the version in force; a case counts in the area of the grid it was located
in at intake.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

import geopandas as gpd
import pandas as pd
from sqlalchemy import Connection

from geo_service.analytics import areas as area_data
from geo_service.analytics.filters import AnalysisFilter, in_view, level_length
from geo_service.stats import stages as fact_stages

COUNT_COLUMNS: Final = ("reports", "open", "overdue", "supervised", "supervised_open")


def stage_counts(
    conn: Connection, f: AnalysisFilter, level: str = "grid", now: dt.datetime | None = None
) -> pd.DataFrame:
    """Per area code: ``reports``, ``open``, ``overdue``, ``supervised``, ``supervised_open``
    (from the per-case facts the database keeps: :mod:`geo_service.stats.stages`)."""
    level_length(level)
    return fact_stages.stage_counts(conn.engine, f, level, now)


def step_durations(conn: Connection, f: AnalysisFilter, level: str = "grid") -> pd.DataFrame:
    """Per area code and loop action: ``median_s`` (seconds since the case's previous event,
    never negative) and ``steps`` (how many such events), from the per-case facts."""
    level_length(level)
    return fact_stages.step_durations(conn.engine, f, level)


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
    frame = gpd.GeoDataFrame(in_view(frame, f), geometry="geometry", crs="EPSG:4326")
    frame.attrs.update(
        layer="grid_stats", unit=level, actions=actions, version=polys.attrs.get("version")
    )
    return frame
