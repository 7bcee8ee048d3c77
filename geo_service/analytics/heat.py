"""Heat: report counts per H3 cell (resolution 6-11) and per area, without rescanning reports.

How it stays fresh: intake and history import write each report's resolution-11 cell in the
INSERT (``h3sql.cells_of_points``; :func:`backfill_h3` fills any other writer's); triggers
on ``reports`` (migration 0004) then keep ``heat_rollup`` — counts per (Beijing day, res-9
cell, grid, category, channel, status) — equal to a direct count in the same transaction as
every insert, status move, re-categorisation, re-location or delete. So
the workflow needs no hook of its own.

How a request is answered: whole days of the window come from the roll-up (resolutions ≤ 9 by
``h3_parent``, areas by code prefix); the ragged ends of a window that does not start or stop
at midnight come from ``reports`` (at most two partial days, by the ``reported_at`` index).
Resolutions 10-11 read ``reports`` directly: they are drawn at high zoom, over small areas,
so pass a ``bbox``. A bbox selects cells by their centre.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import Connection, func, select, text

from geo_service.analytics import areas as area_data
from geo_service.analytics import h3sql
from geo_service.analytics.filters import (
    LOCAL_TZ,
    AnalysisFilter,
    attribute_conditions,
    day_conditions,
    heat_rollup,
    level_length,
    reports,
    window_conditions,
)
from geo_service.errors import InvalidInput

# --------------------------------------------------------------------------- keeping it fresh

_SET_CELLS = text(
    "UPDATE reports r SET h3_11 = u.c FROM unnest(CAST(:ids AS bigint[]), "
    "CAST(:cells AS bigint[])) AS u(id, c) WHERE r.id = u.id AND r.h3_11 IS NULL"
)


def _fill_cells(conn: Connection, rows: Sequence[Any]) -> int:
    if not rows:
        return 0
    cells = h3sql.cells_of_points([r.lon for r in rows], [r.lat for r in rows])
    result = conn.execute(_SET_CELLS, {"ids": [r.id for r in rows], "cells": cells.tolist()})
    return int(result.rowcount)


def backfill_h3(conn: Connection, batch: int = 50_000) -> int:
    """Cells for reports stored without one (another writer, a moved point); cheap when there
    are none (a partial index holds exactly those rows). Returns how many were filled."""
    done = 0
    while True:
        rows = conn.execute(
            text(
                "SELECT id, ST_X(geom) AS lon, ST_Y(geom) AS lat FROM reports "
                "WHERE h3_11 IS NULL ORDER BY id LIMIT :n FOR UPDATE SKIP LOCKED"
            ),
            {"n": batch},
        ).all()
        done += _fill_cells(conn, rows)
        if len(rows) < batch:
            return done


def rebuild_heat_rollup(conn: Connection) -> int:
    """Recount the roll-up from ``reports`` (repair; never needed in normal running)."""
    conn.execute(text("LOCK TABLE heat_rollup IN EXCLUSIVE MODE"))
    conn.execute(text("DELETE FROM heat_rollup"))
    result = conn.execute(
        text(
            "INSERT INTO heat_rollup (day, h3_9, grid_code, category, channel, status, n) "
            "SELECT (reported_at AT TIME ZONE 'Asia/Shanghai')::date, h3_parent(h3_11, 9), "
            "coalesce(grid_code, ''), category, channel, status, count(*) FROM reports "
            "WHERE h3_11 IS NOT NULL GROUP BY 1, 2, 3, 4, 5, 6"
        )
    )
    return int(result.rowcount)


# --------------------------------------------------------------------------- time windows

Interval = tuple[dt.datetime | None, dt.datetime | None]


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), tzinfo=LOCAL_TZ)


def split_window(
    since: dt.datetime | None, until: dt.datetime | None
) -> tuple[tuple[dt.date | None, dt.date | None] | None, list[Interval]]:
    """Whole Beijing days ``[first, stop)`` of a window (None when there are none) and the
    partial-day intervals at its ends that the roll-up cannot answer."""
    first = stop = None
    if since is not None:
        local = since.astimezone(LOCAL_TZ)
        first = local.date() if local == _midnight(local.date()) else local.date() + dt.timedelta(1)
    if until is not None:
        stop = until.astimezone(LOCAL_TZ).date()
    if first is not None and stop is not None and first >= stop:
        return None, [(since, until)]
    edges: list[Interval] = []
    if since is not None and first is not None and _midnight(first) > since:
        edges.append((since, _midnight(first)))
    if until is not None and stop is not None and until > _midnight(stop):
        edges.append((_midnight(stop), until))
    return (first, stop), edges


# --------------------------------------------------------------------------- H3 cells


def _bbox_condition(bbox: tuple[float, float, float, float], res: int) -> Any:
    """Reports near a bbox: widened by two cell edges so no cell whose centre is inside
    loses reports lying outside it."""
    lat = max(abs(bbox[1]), abs(bbox[3]))
    pad = 2 * h3sql.edge_m(res) / (111_320.0 * max(math.cos(math.radians(lat)), 0.05))
    box = func.ST_MakeEnvelope(bbox[0] - pad, bbox[1] - pad, bbox[2] + pad, bbox[3] + pad, 4326)
    return reports.c.geom.op("&&")(box)


def _report_cells(
    conn: Connection, f: AnalysisFilter, res: int, intervals: list[Interval]
) -> list[pd.DataFrame]:
    out = []
    for since, until in intervals:
        conds = [
            reports.c.h3_11.isnot(None),
            *window_conditions(reports, since, until),
            *attribute_conditions(f, reports),
        ]
        if f.bbox is not None:
            conds.append(_bbox_condition(f.bbox, res))
        sub = select(h3sql.sql_parent(reports.c.h3_11, res).label("h3")).where(*conds).subquery()
        rows = conn.execute(select(sub.c.h3, func.count().label("n")).group_by(sub.c.h3)).all()
        out.append(pd.DataFrame(rows, columns=["h3", "n"]))
    return out


def cell_counts(conn: Connection, f: AnalysisFilter, res: int) -> pd.DataFrame:
    """Reports per H3 cell at ``res`` (6-11): columns ``h3`` (bigint) and ``n``, cells with
    at least one report, sorted by cell."""
    h3sql.check_res(res)
    since, until = f.window()
    days, edges = split_window(since, until)
    parts: list[pd.DataFrame] = []
    if res > h3sql.ROLLUP_RES:
        parts += _report_cells(conn, f, res, [(since, until)])
    else:
        if days is not None:
            sub = (
                select(h3sql.sql_parent(heat_rollup.c.h3_9, res).label("h3"), heat_rollup.c.n)
                .where(day_conditions(*days), *attribute_conditions(f, heat_rollup))
                .subquery()
            )
            rows = conn.execute(
                select(sub.c.h3, func.sum(sub.c.n).label("n")).group_by(sub.c.h3)
            ).all()
            parts.append(pd.DataFrame(rows, columns=["h3", "n"]))
        parts += _report_cells(conn, f, res, edges)
    frame = pd.concat(parts) if parts else pd.DataFrame({"h3": [], "n": []})
    frame = (
        frame.astype({"h3": "int64", "n": "int64"})
        .groupby("h3", as_index=False)
        .agg(n=("n", "sum"))
    )
    frame = frame[frame["n"] > 0]
    if f.bbox is not None and len(frame):
        lon, lat = h3sql.centres(frame["h3"].to_numpy())
        minx, miny, maxx, maxy = f.bbox
        frame = frame[(lon >= minx) & (lon <= maxx) & (lat >= miny) & (lat <= maxy)]
    return frame.sort_values("h3").reset_index(drop=True)


def heat_cells(conn: Connection, f: AnalysisFilter, res: int) -> gpd.GeoDataFrame:
    """Heat per H3 cell: ``cell`` (hex name), ``n`` and the hexagon, WGS84 lon/lat."""
    counts = cell_counts(conn, f, res)
    cells = counts["h3"].to_numpy()
    frame = gpd.GeoDataFrame(
        {"cell": h3sql.to_hex(cells), "n": counts["n"].to_numpy()},
        geometry=list(h3sql.polygons(cells)),
        crs="EPSG:4326",
    )
    frame.attrs.update(layer="heat", unit="h3", res=res)
    return frame


# --------------------------------------------------------------------------- areas


def area_counts(conn: Connection, f: AnalysisFilter, level: str) -> pd.DataFrame:
    """Reports per area code at ``level`` (by the grid they were located in at intake)."""
    length = level_length(level)
    since, until = f.window()
    days, edges = split_window(since, until)
    parts: list[pd.DataFrame] = []
    if days is not None:
        sub = (
            select(func.left(heat_rollup.c.grid_code, length).label("code"), heat_rollup.c.n)
            .where(
                heat_rollup.c.grid_code != "",
                day_conditions(*days),
                *attribute_conditions(f, heat_rollup),
            )
            .subquery()
        )
        rows = conn.execute(
            select(sub.c.code, func.sum(sub.c.n).label("n")).group_by(sub.c.code)
        ).all()
        parts.append(pd.DataFrame(rows, columns=["code", "n"]))
    for a, b in edges:
        sub = (
            select(func.left(reports.c.grid_code, length).label("code"))
            .where(
                reports.c.h3_11.isnot(None),
                reports.c.grid_code.isnot(None),
                *window_conditions(reports, a, b),
                *attribute_conditions(f, reports),
            )
            .subquery()
        )
        rows = conn.execute(select(sub.c.code, func.count().label("n")).group_by(sub.c.code)).all()
        parts.append(pd.DataFrame(rows, columns=["code", "n"]))
    frame = pd.concat(parts) if parts else pd.DataFrame({"code": [], "n": []})
    return (
        frame.astype({"code": "str", "n": "int64"})
        .groupby("code", as_index=False)
        .agg(n=("n", "sum"))
    )


def heat_areas(
    conn: Connection,
    f: AnalysisFilter,
    level: str = "grid",
    *,
    per_household: bool = False,
    as_of: dt.date | None = None,
) -> gpd.GeoDataFrame:
    """Heat per area of ``level`` in the version in force: every area (zeros included) with
    ``n`` and, when asked, ``per_household`` = n / households (None without households).
    A bbox keeps the areas that intersect it; an area filter keeps the areas inside it."""
    polys = area_data.areas(conn, level, as_of)
    counts = area_counts(conn, f, level)
    frame = polys.merge(counts, on="code", how="left")
    frame["n"] = frame["n"].fillna(0).astype("int64")
    if per_household:
        hh = pd.to_numeric(frame["households"], errors="coerce").astype("float64")
        frame["per_household"] = np.where(hh > 0, frame["n"] / hh.where(hh > 0), np.nan)
    if f.area:
        area = f.area
        frame = frame[frame["code"].map(lambda c: c.startswith(area) or area.startswith(c))]
    if f.bbox is not None:
        frame = frame[frame.intersects(shapely.box(*f.bbox))]
    frame = gpd.GeoDataFrame(frame.reset_index(drop=True), geometry="geometry", crs="EPSG:4326")
    frame.attrs.update(layer="heat", unit=level, version=polys.attrs.get("version"))
    return frame


def heat(
    conn: Connection,
    f: AnalysisFilter,
    *,
    res: int | None = None,
    zoom: float | None = None,
    level: str | None = None,
    per_household: bool = False,
    as_of: dt.date | None = None,
) -> gpd.GeoDataFrame:
    """One entry point: per area when ``level`` is given, else per H3 cell at ``res`` (or
    the resolution for ``zoom``, or 9). Resolutions 10-11 need a bbox or an area."""
    if level is not None:
        return heat_areas(conn, f, level, per_household=per_household, as_of=as_of)
    if per_household:
        raise InvalidInput(
            "per_household applies to areas: give level=grid|community|town|district"
        )
    if res is None:
        res = h3sql.res_for_zoom(zoom) if zoom is not None else h3sql.ROLLUP_RES
    if res > h3sql.ROLLUP_RES and f.bbox is None and f.area is None:
        raise InvalidInput(
            f"resolution {res} reads reports one by one: give a bbox (or an area) with it"
        )
    return heat_cells(conn, f, res)
