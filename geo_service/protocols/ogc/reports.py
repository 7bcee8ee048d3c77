"""Report features as the Open311 view shows them (``geo_service.protocols.open311``), private
by default: to the public a report is its coarse cell's centre, community, status and times,
without description or photo; staff keys (and grid workers in their area, reporters for their
own, everyone for public cases of public categories) see its point and text. Never the
reporter's name or phone, whoever asks. Newest first, as Open311 pages them."""

from __future__ import annotations

import math
from typing import Any, Final

from sqlalchemy import Connection

from geo_service.auth import Principal
from geo_service.errors import NotFound
from geo_service.protocols.ogc.params import ItemsQuery
from geo_service.protocols.open311 import (
    MAX_ID,
    RequestFilter,
    count_requests,
    find_requests,
    viewing,
)
from geo_service.reports.disclosure import resolve_cells
from geo_service.settings import PrivacySettings
from geo_service.store import reports as store

MAX_LIMIT: Final = 1000  # Open311's page cap
EXTENT_STEP: Final = 0.01  # degrees (~1 km): the collection's extent is rounded outward to it


def _filter(q: ItemsQuery) -> RequestFilter:
    return RequestFilter(start=q.start, end=q.end, bbox=q.bbox, limit=q.limit, offset=q.offset)


def _feature(request: dict[str, Any]) -> dict[str, Any]:
    props = dict(request)
    lon, lat = props.pop("long"), props.pop("lat")
    return {
        "type": "Feature",
        "id": int(props["service_request_id"]),
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
        "properties": props,
    }


def report_items(
    conn: Connection, q: ItemsQuery, who: Principal | None, privacy: PrivacySettings
) -> tuple[list[dict[str, Any]], int]:
    """One page of report features as ``who`` may see them, and how many match."""
    f = resolve_cells(conn, viewing(_filter(q), who, privacy))
    return [_feature(r) for r in find_requests(conn, f)], count_requests(conn, f)


def report_item(
    conn: Connection, fid: str, who: Principal | None, privacy: PrivacySettings
) -> dict[str, Any]:
    """One report feature by id as ``who`` may see it (404 naming it when there is none)."""
    if not (fid.isascii() and fid.isdigit()) or not 0 < int(fid) <= MAX_ID:
        raise NotFound(f"no report {fid!r}: report ids are positive integers")
    found = find_requests(conn, viewing(RequestFilter(ids=[int(fid)], limit=1), who, privacy))
    if not found:
        raise NotFound(f"no report {fid}")
    return _feature(found[0])


def report_extent(conn: Connection) -> tuple[list[float] | None, list[str | None]]:
    """Bounds of every report, rounded outward to :data:`EXTENT_STEP` so that no report's
    coordinate shows in them, and the first and last time reported."""
    box, first, last = store.extent(conn)
    if box is not None:
        n = 1 / EXTENT_STEP
        box = [
            math.floor(box[0] * n) / n,
            math.floor(box[1] * n) / n,
            math.ceil(box[2] * n) / n,
            math.ceil(box[3] * n) / n,
        ]
    return box, [t.isoformat() if t is not None else None for t in (first, last)]
