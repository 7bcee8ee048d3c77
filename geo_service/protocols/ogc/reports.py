"""Report features as the public Open311 view shows them (``geo_service.protocols.open311``):
category, description, status, times, grid, unit, first photo, WGS84 point — never the
reporter's name or phone, whoever asks. Newest first, as Open311 pages them."""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import Connection, func, select

from geo_service.errors import NotFound
from geo_service.protocols.ogc.params import ItemsQuery
from geo_service.protocols.open311 import MAX_ID, RequestFilter, find_requests
from geo_service.reports.queries import reports

MAX_LIMIT: Final = 1000  # Open311's page cap


def _filter(q: ItemsQuery) -> RequestFilter:
    return RequestFilter(start=q.start, end=q.end, bbox=q.bbox, limit=q.limit, offset=q.offset)


def _count(conn: Connection, q: ItemsQuery) -> int:
    """How many reports match: the same conditions Open311 applies to bbox and time."""
    conds = []
    if q.start is not None:
        conds.append(reports.c.reported_at >= q.start)
    if q.end is not None:
        conds.append(reports.c.reported_at <= q.end)
    if q.bbox is not None:
        conds.append(reports.c.geom.op("&&")(func.ST_MakeEnvelope(*q.bbox, 4326)))
    return int(conn.execute(select(func.count()).select_from(reports).where(*conds)).scalar_one())


def _feature(request: dict[str, Any]) -> dict[str, Any]:
    props = dict(request)
    lon, lat = props.pop("long"), props.pop("lat")
    return {
        "type": "Feature",
        "id": int(props["service_request_id"]),
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
        "properties": props,
    }


def report_items(conn: Connection, q: ItemsQuery) -> tuple[list[dict[str, Any]], int]:
    """One page of report features and how many match."""
    return [_feature(r) for r in find_requests(conn, _filter(q))], _count(conn, q)


def report_item(conn: Connection, fid: str) -> dict[str, Any]:
    """One report feature by id (404 naming it when there is none)."""
    if not fid.isdigit() or not 0 < int(fid) <= MAX_ID:
        raise NotFound(f"no report {fid!r}: report ids are positive integers")
    found = find_requests(conn, RequestFilter(ids=[int(fid)], limit=1))
    if not found:
        raise NotFound(f"no report {fid}")
    return _feature(found[0])


def report_extent(conn: Connection) -> tuple[list[float] | None, list[str | None]]:
    """Bounds of every report and the first and last time reported."""
    sub = select(
        func.ST_Extent(reports.c.geom).label("e"),
        func.min(reports.c.reported_at).label("first"),
        func.max(reports.c.reported_at).label("last"),
    ).subquery()
    edges = (func.ST_XMin, func.ST_YMin, func.ST_XMax, func.ST_YMax)
    row = conn.execute(select(*(fn(sub.c.e) for fn in edges), sub.c.first, sub.c.last)).one()
    box = None if row[0] is None else [float(v) for v in row[:4]]
    times = [t.isoformat() if t is not None else None for t in row[4:]]
    return box, times
