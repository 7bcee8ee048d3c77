"""Heat: report counts per H3 cell (resolution 6-11) and per area, without rescanning reports.

How it stays fresh: every writer stores a report with its resolution-11 cell (intake and
history import compute it in the INSERT, ``h3sql.cells_of_points``); triggers on ``reports``
(migration 0004) then keep ``heat_rollup`` — counts per (Beijing day, res-9 cell, grid,
category, channel, status) — equal to a direct count in the same transaction as every insert,
status move, re-categorisation, re-location or delete. So the workflow needs no hook of its
own, and reading heat never writes. A report without a cell (a point moved by hand) is not
counted until :func:`backfill_h3`, a repair, gives it one.

How a request is answered: whole days of the window come from the roll-up (resolutions ≤ 9 by
``h3_parent``, areas by code prefix); the ragged ends of a window that does not start or stop
at midnight come from ``reports`` (at most two partial days, by the ``reported_at`` index).
Resolutions 10-11 read ``reports`` directly: they are drawn at high zoom, over small areas,
so pass a ``bbox``. A bbox selects cells by their centre. The SQL lives in
:mod:`geo_service.store.rollups`.
"""

from __future__ import annotations

import datetime as dt

import geopandas as gpd
import numpy as np
import pandas as pd
from sqlalchemy import Connection

from geo_service.analytics import areas as area_data
from geo_service.analytics import h3sql
from geo_service.analytics.filters import LOCAL_TZ, AnalysisFilter, in_view, level_length
from geo_service.errors import InvalidInput
from geo_service.store import rollups

# --------------------------------------------------------------------------- repairs


def backfill_h3(conn: Connection, batch: int = rollups.FILL_BATCH) -> int:
    """Cells for reports stored without one (a point moved by hand, a foreign writer); a
    repair for maintenance, never run on a read path. Returns how many were filled."""
    return rollups.fill_h3_cells(conn, batch)


def rebuild_heat_rollup(conn: Connection) -> int:
    """Recount the roll-up from ``reports`` (repair; never needed in normal running)."""
    return rollups.rebuild_heat_rollup(conn)


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


def _report_cells(
    conn: Connection, f: AnalysisFilter, res: int, intervals: list[Interval]
) -> list[pd.DataFrame]:
    return [
        rollups.frame(rollups.report_cells(conn, f, res, since, until), ["h3", "n"])
        for since, until in intervals
    ]


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
            rows = rollups.rollup_cells(conn, f, res, *days)
            parts.append(rollups.frame(rows, ["h3", "n"]))
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
        rows = rollups.rollup_areas(conn, f, length, *days)
        parts.append(rollups.frame(rows, ["code", "n"]))
    for a, b in edges:
        rows = rollups.report_areas(conn, f, length, a, b)
        parts.append(rollups.frame(rows, ["code", "n"]))
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
    frame = gpd.GeoDataFrame(in_view(frame, f), geometry="geometry", crs="EPSG:4326")
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
