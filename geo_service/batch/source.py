"""The export's one query on stored reports (kept apart so it can join the reports store)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Select, func, select

from geo_service.db.schema import reports

EXPORT_COLUMNS = (
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
