"""The reports' aggregates, owning their SQL: the heat roll-up (``heat_rollup``), report counts
per H3 cell, per area and per time slice, case-stage counts and loop-step durations.

:class:`~geo_service.analytics.filters.AnalysisFilter` becomes SQL here and nowhere else
(:func:`attribute_conditions`, :func:`window_conditions`, :func:`day_conditions`). Functions run
in the caller's connection and return rows; the analyses (``geo_service.analytics``) shape them.
Every read is a plain SELECT: the two writes, :func:`fill_h3_cells` and
:func:`rebuild_heat_rollup`, are maintenance, never called on a read path.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Any, Final

import pandas as pd
from sqlalchemy import (
    Connection,
    Date,
    DateTime,
    Row,
    Table,
    and_,
    cast,
    func,
    literal,
    select,
    text,
    true,
)
from sqlalchemy.sql.elements import ColumnElement

from geo_service.analytics import h3sql
from geo_service.analytics.filters import AnalysisFilter
from geo_service.db.schema import OPEN_STATUSES, heat_rollup, report_events, reports

Rows = Sequence[Row[*tuple[Any, ...]]]  # result rows of any width
FILL_BATCH: Final = 50_000


def frame(rows: Rows, columns: Sequence[str]) -> pd.DataFrame:
    """Result rows as a DataFrame: through plain tuples, since pandas probes each ``Row`` for
    a mapping interface first (about 10x slower on a few thousand rows)."""
    return pd.DataFrame([tuple(r) for r in rows], columns=list(columns))

# --------------------------------------------------------------------------- the filter as SQL


def attribute_conditions(f: AnalysisFilter, t: Table) -> list[ColumnElement[bool]]:
    """Category, channel, status and area conditions on a table with those columns
    (``reports`` or ``heat_rollup``); the time window is the caller's (days or instants)."""
    conds: list[ColumnElement[bool]] = []
    if f.categories:
        conds.append(t.c.category.in_(f.categories))
    if f.channels:
        conds.append(t.c.channel.in_(f.channels))
    if f.statuses:
        conds.append(t.c.status.in_(f.statuses))
    if f.area:
        # area codes are prefixes of the codes below them (geo_service.boundaries.codes)
        conds.append(t.c.grid_code.startswith(f.area, autoescape=True))
    return conds


def window_conditions(
    t: Table, since: dt.datetime | None, until: dt.datetime | None
) -> list[ColumnElement[bool]]:
    """``reported_at`` in ``[since, until)`` on the reports table."""
    conds: list[ColumnElement[bool]] = []
    if since is not None:
        conds.append(t.c.reported_at >= since)
    if until is not None:
        conds.append(t.c.reported_at < until)
    return conds


def day_conditions(first: dt.date | None, stop: dt.date | None) -> ColumnElement[bool]:
    """Roll-up days in ``[first, stop)``."""
    conds = []
    if first is not None:
        conds.append(heat_rollup.c.day >= first)
    if stop is not None:
        conds.append(heat_rollup.c.day < stop)
    return and_(*conds) if conds else true()


def _report_conditions(
    f: AnalysisFilter, since: dt.datetime | None, until: dt.datetime | None
) -> list[ColumnElement[bool]]:
    """Reports the filter counts in ``[since, until)`` (its time window is the caller's)."""
    return [*window_conditions(reports, since, until), *attribute_conditions(f, reports)]


def _rollup_conditions(
    f: AnalysisFilter, first: dt.date | None, stop: dt.date | None
) -> list[ColumnElement[bool]]:
    """Roll-up rows the filter counts on the days ``[first, stop)``."""
    return [day_conditions(first, stop), *attribute_conditions(f, heat_rollup)]


# --------------------------------------------------------------------------- maintenance writes

_SET_CELLS = text(
    "UPDATE reports r SET h3_11 = u.c FROM unnest(CAST(:ids AS bigint[]), "
    "CAST(:cells AS bigint[])) AS u(id, c) WHERE r.id = u.id AND r.h3_11 IS NULL"
)


def fill_h3_cells(conn: Connection, batch: int = FILL_BATCH) -> int:
    """Give reports stored without an H3 cell (a point moved by hand, a foreign writer) theirs,
    in batches; the roll-up triggers count them from then on. A repair: intake and history
    import store the cell with the report. Cheap when there are none (a partial index holds
    exactly those rows). Returns how many were filled."""
    done = 0
    while True:
        rows = conn.execute(
            select(
                reports.c.id,
                func.ST_X(reports.c.geom).label("lon"),
                func.ST_Y(reports.c.geom).label("lat"),
            )
            .where(reports.c.h3_11.is_(None))
            .order_by(reports.c.id)
            .limit(batch)
            .with_for_update(skip_locked=True)
        ).all()
        if rows:
            cells = h3sql.cells_of_points([r.lon for r in rows], [r.lat for r in rows])
            result = conn.execute(
                _SET_CELLS, {"ids": [r.id for r in rows], "cells": cells.tolist()}
            )
            done += int(result.rowcount)
        if len(rows) < batch:
            return done


def rebuild_heat_rollup(conn: Connection) -> int:
    """Recount the roll-up from ``reports`` (repair; never needed in normal running)."""
    conn.execute(text("LOCK TABLE heat_rollup IN EXCLUSIVE MODE"))
    conn.execute(heat_rollup.delete())
    result = conn.execute(
        text(
            "INSERT INTO heat_rollup (day, h3_9, grid_code, category, channel, status, n) "
            "SELECT (reported_at AT TIME ZONE 'Asia/Shanghai')::date, h3_parent(h3_11, 9), "
            "coalesce(grid_code, ''), category, channel, status, count(*) FROM reports "
            "WHERE h3_11 IS NOT NULL GROUP BY 1, 2, 3, 4, 5, 6"
        )
    )
    return int(result.rowcount)


# --------------------------------------------------------------------------- heat per H3 cell


def _near_bbox(bbox: tuple[float, float, float, float], res: int) -> ColumnElement[bool]:
    """Reports near a bbox: widened by two cell edges so no cell whose centre is inside
    loses reports lying outside it."""
    lat = max(abs(bbox[1]), abs(bbox[3]))
    pad = 2 * h3sql.edge_m(res) / (111_320.0 * max(math.cos(math.radians(lat)), 0.05))
    box = func.ST_MakeEnvelope(bbox[0] - pad, bbox[1] - pad, bbox[2] + pad, bbox[3] + pad, 4326)
    return reports.c.geom.op("&&")(box)


def rollup_cells(
    conn: Connection, f: AnalysisFilter, res: int, first: dt.date | None, stop: dt.date | None
) -> Rows:
    """(h3, n): the filter's reports per resolution-``res`` cell (≤ 9) over the whole days
    ``[first, stop)``, from the roll-up."""
    sub = (
        select(h3sql.sql_parent(heat_rollup.c.h3_9, res).label("h3"), heat_rollup.c.n)
        .where(*_rollup_conditions(f, first, stop))
        .subquery()
    )
    return conn.execute(select(sub.c.h3, func.sum(sub.c.n).label("n")).group_by(sub.c.h3)).all()


def report_cells(
    conn: Connection,
    f: AnalysisFilter,
    res: int,
    since: dt.datetime | None,
    until: dt.datetime | None,
) -> Rows:
    """(h3, n): the filter's reports per resolution-``res`` cell in ``[since, until)``, read
    from ``reports`` (only reports near the filter's bbox when it has one)."""
    conds = [reports.c.h3_11.isnot(None), *_report_conditions(f, since, until)]
    if f.bbox is not None:
        conds.append(_near_bbox(f.bbox, res))
    sub = select(h3sql.sql_parent(reports.c.h3_11, res).label("h3")).where(*conds).subquery()
    return conn.execute(select(sub.c.h3, func.count().label("n")).group_by(sub.c.h3)).all()


# --------------------------------------------------------------------------- heat per area


def rollup_areas(
    conn: Connection, f: AnalysisFilter, length: int, first: dt.date | None, stop: dt.date | None
) -> Rows:
    """(code, n): the filter's located reports per area code of ``length`` digits over the
    whole days ``[first, stop)``, from the roll-up."""
    sub = (
        select(func.left(heat_rollup.c.grid_code, length).label("code"), heat_rollup.c.n)
        .where(heat_rollup.c.grid_code != "", *_rollup_conditions(f, first, stop))
        .subquery()
    )
    return conn.execute(select(sub.c.code, func.sum(sub.c.n).label("n")).group_by(sub.c.code)).all()


def report_areas(
    conn: Connection,
    f: AnalysisFilter,
    length: int,
    since: dt.datetime | None,
    until: dt.datetime | None,
) -> Rows:
    """(code, n): the filter's located reports (those the roll-up counts) per area code of
    ``length`` digits in ``[since, until)``, read from ``reports``."""
    sub = (
        select(func.left(reports.c.grid_code, length).label("code"))
        .where(
            reports.c.h3_11.isnot(None),
            reports.c.grid_code.isnot(None),
            *_report_conditions(f, since, until),
        )
        .subquery()
    )
    return conn.execute(select(sub.c.code, func.count().label("n")).group_by(sub.c.code)).all()


# --------------------------------------------------------------------------- time slices


def rollup_slices(
    conn: Connection,
    f: AnalysisFilter,
    first: dt.date,
    stop: dt.date,
    unit: str,
    *,
    res: int | None = None,
    code_length: int | None = None,
) -> Rows:
    """(slice, loc, n): the filter's reports per ``unit`` slice (day, week from Monday,
    month; by its first day) over the days ``[first, stop)`` and per location — the
    resolution-``res`` cell, or the area code of ``code_length`` digits."""
    if (res is None) == (code_length is None):
        raise ValueError("give exactly one of res and code_length")
    key = (
        h3sql.sql_parent(heat_rollup.c.h3_9, res)
        if res is not None
        else func.left(heat_rollup.c.grid_code, code_length)
    )
    day = heat_rollup.c.day
    start = (
        day if unit == "day" else cast(func.date_trunc(literal(unit), cast(day, DateTime)), Date)
    )
    sub = (
        select(start.label("slice"), key.label("loc"), heat_rollup.c.n)
        .where(*_rollup_conditions(f, first, stop))
        .subquery()
    )
    return conn.execute(
        select(sub.c.slice, sub.c.loc, func.sum(sub.c.n)).group_by(sub.c.slice, sub.c.loc)
    ).all()


# --------------------------------------------------------------------------- case stages


def stage_counts(
    conn: Connection, f: AnalysisFilter, length: int, now: dt.datetime | None = None
) -> Rows:
    """(code, reports, open, overdue, supervised, supervised_open) per area code of
    ``length`` digits for the filter's located cases; overdue as of ``now`` (the database's
    clock by default)."""
    since, until = f.window()
    clock = literal(now, DateTime(timezone=True)) if now is not None else func.now()
    is_open = reports.c.status.in_(OPEN_STATUSES)
    sub = (
        select(
            func.left(reports.c.grid_code, length).label("code"),
            is_open.label("is_open"),
            (is_open & (reports.c.due_at < clock)).label("is_overdue"),
            reports.c.supervised.label("is_supervised"),
        )
        .where(reports.c.grid_code.isnot(None), *_report_conditions(f, since, until))
        .subquery()
    )
    return conn.execute(
        select(
            sub.c.code,
            func.count(),
            func.count().filter(sub.c.is_open),
            func.count().filter(sub.c.is_overdue),
            func.count().filter(sub.c.is_supervised),
            func.count().filter(sub.c.is_supervised & sub.c.is_open),
        ).group_by(sub.c.code)
    ).all()


def step_durations(conn: Connection, f: AnalysisFilter, length: int) -> Rows:
    """(code, action, median seconds, steps) per area code of ``length`` digits and loop
    action: the time since the case's previous event (never negative) over the filter's
    located cases."""
    since, until = f.window()
    cases = (
        select(reports.c.id, func.left(reports.c.grid_code, length).label("code"))
        .where(reports.c.grid_code.isnot(None), *_report_conditions(f, since, until))
        .subquery()
    )
    events = report_events
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
    return conn.execute(
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
