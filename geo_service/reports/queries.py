"""Reading reports: filters, paging, what each role may see (personal data only to some).

The SQL (conditions, visibility, the joined select) is :mod:`geo_service.store.reports`'s;
this module checks paging and shapes rows into the API's answer.
"""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import Connection

from geo_service.auth import Principal
from geo_service.db import schema
from geo_service.errors import InvalidInput, NotFound
from geo_service.store import reports as store
from geo_service.store.reports import ReportFilter as ReportFilter

OPEN_STATUSES: Final = schema.OPEN_STATUSES
CLOSED_STATUSES: Final = schema.CLOSED_STATUSES
STATUSES: Final = schema.REPORT_STATUSES
MAX_LIMIT = 1000


def parse_bbox(value: str | None) -> tuple[float, float, float, float] | None:
    """``minlon,minlat,maxlon,maxlat`` (WGS84), with a 4xx naming a bad value."""
    if not value:
        return None
    try:
        parts = tuple(float(v) for v in value.split(","))
    except ValueError as exc:
        raise InvalidInput(f"bbox must be minlon,minlat,maxlon,maxlat: {value!r}") from exc
    if len(parts) != 4 or parts[0] > parts[2] or parts[1] > parts[3]:
        raise InvalidInput(f"bbox must be minlon,minlat,maxlon,maxlat: {value!r}")
    return parts[0], parts[1], parts[2], parts[3]


def _reads_contacts(principal: Principal) -> bool:
    """Whether rows for ``principal`` carry reporters' contacts: roles that see personal data,
    and reporters, whose rows are only the reports they filed (``store.reports.visible_to``)."""
    return principal.sees_personal_data or principal.role == "reporter"


def serialize(row: Any) -> dict[str, Any]:
    """A report as the API shows it; the contact only when the row carries it (the store
    selects it only for :func:`_reads_contacts` callers, on rows they may read)."""
    m = row._mapping
    out: dict[str, Any] = {
        "id": m["id"],
        "status": m["status"],
        "channel": m["channel"],
        "category": m["category"],
        "description": m["description"],
        "photos": m["photos"],
        "reported_at": m["reported_at"].isoformat(),
        "received_at": m["received_at"].isoformat(),
        "location": {
            "lon": m["lon"],
            "lat": m["lat"],
            "lon_original": m["lon_original"],
            "lat_original": m["lat_original"],
            "crs_original": m["crs_original"],
        },
        "in_coverage": m["in_coverage"],
        "grid_code": m["grid_code"],
        "community_code": m["community_code"],
        "town_code": m["town_code"],
        "district_code": m["district_code"],
        "boundary_version_id": m["boundary_version_id"],
        "handling_level": m["handling_level"],
        "unit": {
            "id": m["unit_id"],
            "code": m["unit_code"],
            "name": m["unit_name"],
            "type": m["unit_type"],
        }
        if m["unit_id"]
        else None,
        "routed_by": m["routed_by"],
        "status_at": m["status_at"].isoformat(),
        "due_at": m["due_at"].isoformat(),
        "overdue": bool(m["overdue"]),
        "closed_at": m["closed_at"].isoformat() if m["closed_at"] else None,
        "supervised": m["supervised"],
        "hard": m["hard"],
        "rating": m["rating"],
        "duplicate_of": m["duplicate_of"],
        "public": m["public"],  # staff marked it public (geo_service.reports.disclosure)
    }
    if "reporter_name" in m and (m["reporter_name"] or m["reporter_phone"]):
        out["reporter"] = {"name": m["reporter_name"], "phone": m["reporter_phone"]}
    return out


def list_reports(conn: Connection, f: ReportFilter, principal: Principal) -> dict[str, Any]:
    """``{"total": N, "items": [...]}`` for a filter, newest first."""
    if not 1 <= f.limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}")
    if f.offset < 0:
        raise InvalidInput("offset must not be negative")
    contacts = _reads_contacts(principal)
    total = store.count_reports(conn, f, principal)
    rows = store.report_page(conn, f, principal, contacts=contacts)
    return {"total": total, "items": [serialize(r) for r in rows]}


def get_report(conn: Connection, report_id: int, principal: Principal) -> dict[str, Any]:
    """One report the principal may see (404 otherwise, so existence does not leak)."""
    row = store.report_row(conn, report_id, principal, contacts=_reads_contacts(principal))
    if row is None:
        raise NotFound(f"no report {report_id}")
    return serialize(row)
