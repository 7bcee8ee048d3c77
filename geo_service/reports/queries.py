"""Reading reports: filters, paging, what each role may see (personal data only to some)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from geoalchemy2.functions import ST_X, ST_Y, ST_MakeEnvelope
from sqlalchemy import (
    BigInteger,
    Boolean,
    Connection,
    DateTime,
    Integer,
    String,
    and_,
    column,
    false,
    func,
    or_,
    select,
    table,
)
from sqlalchemy.sql.elements import ColumnElement

from geo_service.auth import Principal
from geo_service.errors import InvalidInput, NotFound

OPEN_STATUSES = (
    "discovered",
    "accepted",
    "dispatched",
    "handling",
    "handled",
    "verified",
    "fed_back",
)
CLOSED_STATUSES = ("evaluated", "rejected")
STATUSES = (*OPEN_STATUSES, *CLOSED_STATUSES)
MAX_LIMIT = 1000

reports = table(
    "reports",
    column("id", BigInteger),
    column("channel", String),
    column("category", String),
    column("description", String),
    column("photos"),
    column("reported_at", DateTime),
    column("received_at", DateTime),
    column("lon_original"),
    column("lat_original"),
    column("crs_original", String),
    column("geom"),
    column("in_coverage", Boolean),
    column("grid_code", String),
    column("community_code", String),
    column("town_code", String),
    column("district_code", String),
    column("boundary_version_id", Integer),
    column("handling_level", String),
    column("unit_id", Integer),
    column("routed_by", String),
    column("status", String),
    column("status_at", DateTime),
    column("due_at", DateTime),
    column("closed_at", DateTime),
    column("supervised", Boolean),
    column("hard", Boolean),
    column("rating", Integer),
    column("duplicate_of", BigInteger),
    column("filed_by_key_id", Integer),
)
units = table(
    "units",
    column("id", Integer),
    column("code", String),
    column("name", String),
    column("unit_type", String),
)
events = table(
    "report_events",
    column("id", BigInteger),
    column("report_id", BigInteger),
    column("at", DateTime(timezone=True)),
    column("action", String),
    column("from_status", String),
    column("to_status", String),
    column("unit_id", Integer),
    column("actor_key_id", Integer),
    column("actor", String),
    column("note", String),
)
contacts = table(
    "report_contacts",
    column("report_id", BigInteger),
    column("name", String),
    column("phone", String),
)


@dataclass
class ReportFilter:
    """What ``GET /v1/reports`` can filter on."""

    status: list[str] | None = None
    area: str | None = None  # grid, community, town or district code
    unit: str | None = None  # unit code
    category: str | None = None
    channel: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    bbox: tuple[float, float, float, float] | None = None
    overdue: bool | None = None
    supervised: bool | None = None
    limit: int = 100
    offset: int = 0


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


def in_area(code: str) -> ColumnElement[bool]:
    """Reports whose grid lies in the area ``code`` (any level of the chain)."""
    return or_(
        reports.c.grid_code == code,
        reports.c.community_code == code,
        reports.c.town_code == code,
        reports.c.district_code == code,
    )


def visible_to(principal: Principal) -> ColumnElement[bool] | None:
    """The rows a role may read: reporters their own, grid workers their area, others all."""
    if principal.role == "reporter":
        return reports.c.filed_by_key_id == principal.key_id
    if principal.role == "grid_worker":
        return in_area(principal.scope) if principal.scope else false()
    return None


def _conditions(f: ReportFilter, principal: Principal) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    scope = visible_to(principal)
    if scope is not None:
        conds.append(scope)
    if f.status:
        conds.append(reports.c.status.in_(f.status))
    if f.area:
        conds.append(in_area(f.area))
    if f.unit:
        conds.append(reports.c.unit_id.in_(select(units.c.id).where(units.c.code == f.unit)))
    if f.category:
        conds.append(reports.c.category == f.category)
    if f.channel:
        conds.append(reports.c.channel == f.channel)
    if f.since:
        conds.append(reports.c.reported_at >= f.since)
    if f.until:
        conds.append(reports.c.reported_at < f.until)
    if f.bbox:
        conds.append(reports.c.geom.op("&&")(ST_MakeEnvelope(*f.bbox, 4326)))
    if f.overdue is not None:
        overdue = and_(reports.c.status.in_(OPEN_STATUSES), reports.c.due_at < func.now())
        conds.append(overdue if f.overdue else ~overdue)
    if f.supervised is not None:
        conds.append(reports.c.supervised == f.supervised)
    return conds


def _select(principal: Principal) -> Any:
    cols: list[Any] = [
        reports,
        ST_X(reports.c.geom).label("lon"),
        ST_Y(reports.c.geom).label("lat"),
        units.c.code.label("unit_code"),
        units.c.name.label("unit_name"),
        units.c.unit_type.label("unit_type"),
        (reports.c.status.in_(OPEN_STATUSES) & (reports.c.due_at < func.now())).label("overdue"),
    ]
    joined = reports.outerjoin(units, units.c.id == reports.c.unit_id)
    if principal.sees_personal_data or principal.role == "reporter":
        cols += [contacts.c.name.label("reporter_name"), contacts.c.phone.label("reporter_phone")]
        joined = joined.outerjoin(contacts, contacts.c.report_id == reports.c.id)
    return select(*cols).select_from(joined)


def serialize(row: Any, principal: Principal) -> dict[str, Any]:
    """A report as the API shows it to ``principal``."""
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
    }
    may_see = principal.sees_personal_data or (
        principal.role == "reporter" and m["filed_by_key_id"] == principal.key_id
    )
    if may_see and "reporter_name" in m and (m["reporter_name"] or m["reporter_phone"]):
        out["reporter"] = {"name": m["reporter_name"], "phone": m["reporter_phone"]}
    return out


def list_reports(conn: Connection, f: ReportFilter, principal: Principal) -> dict[str, Any]:
    """``{"total": N, "items": [...]}`` for a filter, newest first."""
    if not 1 <= f.limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}")
    if f.offset < 0:
        raise InvalidInput("offset must not be negative")
    conds = _conditions(f, principal)
    total = conn.execute(select(func.count()).select_from(reports).where(*conds)).scalar_one()
    rows = conn.execute(
        _select(principal)
        .where(*conds)
        .order_by(reports.c.reported_at.desc(), reports.c.id.desc())
        .limit(f.limit)
        .offset(f.offset)
    ).all()
    return {"total": total, "items": [serialize(r, principal) for r in rows]}


def get_report(conn: Connection, report_id: int, principal: Principal) -> dict[str, Any]:
    """One report the principal may see (404 otherwise, so existence does not leak)."""
    conds = [reports.c.id == report_id]
    scope = visible_to(principal)
    if scope is not None:
        conds.append(scope)
    row = conn.execute(_select(principal).where(*conds)).one_or_none()
    if row is None:
        raise NotFound(f"no report {report_id}")
    return serialize(row, principal)
