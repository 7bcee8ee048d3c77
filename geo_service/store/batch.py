"""The batch path's SQL: the reports an export streams out, and the cluster roll-ups loaded back
into ``batch_rollups`` for the service to serve (one replace per ``(by, period)``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any, Final

import psycopg
from psycopg import sql
from sqlalchemy import Connection, Row, Select, delete, func, select
from sqlalchemy.dialects.postgresql import insert

from geo_service.db.schema import batch_rollup_loads, batch_rollups, reports

EXPORT_COLUMNS: Final = (
    "id",
    "reported_at",
    "channel",
    "category",
    "status",
    "in_coverage",
    "grid_code",
    "community_code",
    "town_code",
    "district_code",
    "boundary_version_id",
    "h3_11",
)
"""What an exported report carries besides its point: no description, photos or contact
(GeoParquet files travel; personal data stays in the database)."""

RollupRow = tuple[dt.date, str, str, str, int]
"""One roll-up count: period start, area code or H3 cell, category, channel, n."""

_COPY: Final = sql.SQL(
    "COPY {} (by, period, start, code, category, channel, n) FROM STDIN (FORMAT BINARY)"
).format(sql.Identifier(batch_rollups.name))
_TYPES: Final = ["text", "text", "date", "text", "text", "text", "int8"]


def export_query(
    since: dt.datetime | None, until: dt.datetime | None
) -> Select[tuple[object, ...]]:
    """Reports with ``reported_at`` in ``[since, until)`` (None: unbounded): the
    :data:`EXPORT_COLUMNS` and the WGS84 point as ``lon``/``lat`` (exact doubles), ordered by
    district, then time and id, so an export of one month writes one partition after another."""
    cols = [reports.c[name] for name in EXPORT_COLUMNS]
    query = select(
        *cols, func.ST_X(reports.c.geom).label("lon"), func.ST_Y(reports.c.geom).label("lat")
    )
    if since is not None:
        query = query.where(reports.c.reported_at >= since)
    if until is not None:
        query = query.where(reports.c.reported_at < until)
    return query.order_by(reports.c.district_code, reports.c.reported_at, reports.c.id)


def export_window(
    conn: Connection, since: dt.datetime | None, until: dt.datetime | None
) -> tuple[dt.datetime | None, dt.datetime | None, int]:
    """First and last ``reported_at`` and the count of the reports an export of
    ``[since, until)`` writes: the months to walk and the progress bar's total."""
    window = export_query(since, until).order_by(None).subquery()
    first, last, total = conn.execute(
        select(func.min(window.c.reported_at), func.max(window.c.reported_at), func.count())
    ).one()
    return first, last, int(total)


def replace_rollup(
    conn: Connection, by: str, period: str, rows: Iterable[RollupRow], source: str
) -> tuple[int, int]:
    """Replace the ``(by, period)`` roll-up with ``rows`` (binary COPY, streamed) and record the
    load; in the caller's transaction, so readers see the old roll-up or the new, never half.
    Returns the rows loaded and the reports they count."""
    conn.execute(
        delete(batch_rollups).where(batch_rollups.c.by == by, batch_rollups.c.period == period)
    )
    raw: psycopg.Connection[Any] | None = conn.connection.driver_connection
    if raw is None:
        raise RuntimeError("the connection is closed")
    loaded = counted = 0
    with raw.cursor() as cur, cur.copy(_COPY) as copy:
        copy.set_types(_TYPES)
        for row in rows:
            copy.write_row((by, period, *row))
            loaded += 1
            counted += row[4]
    stmt = insert(batch_rollup_loads).values(
        by=by, period=period, source=source, rows=loaded, reports=counted
    )
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["by", "period"],
            set_={
                "source": stmt.excluded.source,
                "rows": stmt.excluded.rows,
                "reports": stmt.excluded.reports,
                "loaded_at": stmt.excluded.loaded_at,
            },
        )
    )
    return loaded, counted


def rollup_rows(
    conn: Connection,
    by: str,
    period: str,
    first: dt.date | None = None,
    stop: dt.date | None = None,
) -> list[Row[Any]]:
    """A loaded roll-up's rows ``(period, code, category, channel, n)`` with period starts in
    ``[first, stop)``, sorted by key."""
    t = batch_rollups
    query = select(t.c.start.label("period"), t.c.code, t.c.category, t.c.channel, t.c.n).where(
        t.c.by == by, t.c.period == period
    )
    if first is not None:
        query = query.where(t.c.start >= first)
    if stop is not None:
        query = query.where(t.c.start < stop)
    return list(conn.execute(query.order_by(t.c.start, t.c.code, t.c.category, t.c.channel)))
