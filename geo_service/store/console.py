"""The console's own reads: the change token its screens poll and the latest reports it pins
on the map.

The token is the highest report id and the highest loop-event id: every filed report adds a
``reports`` row and every step of the loop a ``report_events`` row, so either moving means
the figures may have moved. Both are one backward step of a primary-key index, so a screen
polling every two seconds costs one tiny query and no write.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, func, select

from geo_service.db.schema import report_events, reports
from geo_service.store.reports import in_area


def change_token(conn: Connection) -> tuple[int, int]:
    """``(max report id, max event id)``, 0 for an empty table."""
    row = conn.execute(
        select(
            select(func.coalesce(func.max(reports.c.id), 0)).scalar_subquery(),
            select(func.coalesce(func.max(report_events.c.id), 0)).scalar_subquery(),
        )
    ).one()
    return int(row[0]), int(row[1])


def latest_reports(
    conn: Connection, since: dt.datetime, limit: int, area: str | None = None
) -> Sequence[Any]:
    """The reports filed since ``since`` (of ``area`` when given), latest report time first:
    id, time, category, channel, status, place and grid; no reporter, text or photo."""
    query = (
        select(
            reports.c.id,
            reports.c.reported_at,
            reports.c.category,
            reports.c.channel,
            reports.c.status,
            func.ST_X(reports.c.geom).label("lon"),
            func.ST_Y(reports.c.geom).label("lat"),
            reports.c.grid_code,
            reports.c.supervised,
        )
        .where(reports.c.reported_at >= since)
        .order_by(reports.c.reported_at.desc(), reports.c.id.desc())
        .limit(limit)
    )
    if area is not None:
        query = query.where(in_area(area))
    return conn.execute(query).all()
