"""Open311 GeoReport v2 ⇄ our reports: parameters in, service requests out, and the read query.

What Open311 shows of a report is fixed here, once: category, description, first photo, WGS84
location, grid chain, routed unit, status and times. It never selects ``report_contacts``, so
reporters' names and phone numbers cannot reach an Open311 answer whatever the caller's role.

Status: Open311 knows only ``open`` and ``closed``. A report is open while its status is one
of :data:`queries.OPEN_STATUSES` (the same set the overdue rule uses); anything after the loop
(``evaluated``, ``rejected``) is closed. ``status_notes`` carries our detailed status and unit.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from xml.etree.ElementTree import Element, SubElement, tostring

from geoalchemy2.functions import ST_X, ST_Y, ST_MakeEnvelope
from pydantic import ValidationError
from sqlalchemy import (
    Connection,
    Integer,
    String,
    column,
    func,
    select,
    table,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.sql.elements import ColumnElement

from geo_service.coords import normalize_crs, to_wgs84
from geo_service.errors import GeoServiceError, InvalidInput, NotFound
from geo_service.reports.queries import OPEN_STATUSES, reports, units
from geo_service.reports.schemas import CHINA_TZ, ReportIn
from geo_service.reports.taxonomy import CATEGORIES, CATEGORY_BY_CODE, CHANNELS, Category

DEFAULT_CHANNEL: Final = "wechat"  # Open311 clients are citizen apps and mini-programs
DEFAULT_WINDOW: Final = dt.timedelta(days=90)  # the spec's default span for GET requests
MAX_PAGE_SIZE: Final = 1000  # the spec's cap on one GET requests answer
DEFAULT_RADIUS_M: Final = 1000.0
MAX_RADIUS_M: Final = 50_000.0
MAX_ID: Final = 2**63 - 1  # report ids are bigint

LEVEL_NAMES: Final = {"community": "村(社区)", "town": "镇(街道)", "county": "区级"}
STATUS_LABELS: Final = {
    "discovered": "已上报",
    "accepted": "已受理",
    "dispatched": "已派遣",
    "handling": "处置中",
    "handled": "已处置",
    "verified": "已核查",
    "fed_back": "已反馈",
    "evaluated": "已评价结案",
    "rejected": "不予受理",
}
# where a ReportIn field came from, so a refusal names the Open311 parameter
_PARAM_OF: Final = {
    "category": "service_code",
    "channel": "attribute[channel]",
    "description": "description",
    "photos": "media_url",
    "location": "lat/long",
    "reporter": "first_name/last_name/phone",
}

version_areas = table(
    "version_areas",
    column("version_id", Integer),
    column("area_id", Integer),
    column("code", String),
)
areas = table("areas", column("id", Integer), column("name", String))


# --- services ---------------------------------------------------------------------------------


def service(cat: Category) -> dict[str, Any]:
    """One entry of ``GET services``: a category of our taxonomy."""
    return {
        "service_code": cat.code,
        "service_name": cat.name,
        "description": (
            f"{cat.name_en}: 先由{LEVEL_NAMES[cat.level]}处置，时限 {cat.sla_hours} 小时"
            f" (handled first at {cat.level} level within {cat.sla_hours} h)."
        ),
        "metadata": False,
        "type": "realtime",
        "keywords": ", ".join((cat.name, cat.name_en.lower(), cat.code)),
        "group": f"{LEVEL_NAMES[cat.level]}处置 ({cat.level} level)",
    }


def services() -> list[dict[str, Any]]:
    """``GET services``: every category, in taxonomy order."""
    return [service(c) for c in CATEGORIES]


def service_definition(code: str) -> dict[str, Any]:
    """``GET services/{code}``: no extra attributes (``metadata`` is false for every service).

    ``attribute[channel]`` is accepted on POST but deliberately not declared: it says which
    integration files the report, not a question a citizen's client should ask.
    """
    if code not in CATEGORY_BY_CODE:
        raise NotFound(f"service_code {code!r} not found")
    return {"service_code": code, "attributes": []}


# --- POST requests ----------------------------------------------------------------------------


def _required(params: Mapping[str, str], name: str) -> str:
    value = params.get(name, "").strip()
    if not value:
        raise InvalidInput(f"{name} is required")
    return value


def _number(params: Mapping[str, str], name: str) -> float:
    raw = _required(params, name)
    try:
        return float(raw)
    except ValueError as exc:
        raise InvalidInput(f"{name} must be a decimal number: {raw!r}") from exc


def reporter_name(first: str, last: str) -> str | None:
    """Family name first, no space, when both parts are Chinese (陈 + 康 → 陈康)."""
    first, last = first.strip(), last.strip()
    if first and last and all("\u4e00" <= ch <= "\u9fff" for ch in first + last):
        return last + first
    return " ".join(p for p in (first, last) if p) or None


def _location(params: Mapping[str, str]) -> dict[str, Any]:
    """lat/long (WGS84 unless the ``crs`` extension says otherwise), checked before intake."""
    lat, lon = _number(params, "lat"), _number(params, "long")
    crs = params.get("crs", "").strip() or "wgs84"
    try:
        normalize_crs(crs)
    except GeoServiceError as exc:
        raise InvalidInput(f"crs: {exc.message}") from exc
    try:
        to_wgs84([lon], [lat], crs)
    except GeoServiceError as exc:
        raise InvalidInput(f"lat/long: {exc.message}") from exc
    return {"lon": lon, "lat": lat, "crs": crs}


def _channel(params: Mapping[str, str]) -> str:
    channel = params.get("attribute[channel]", "").strip() or DEFAULT_CHANNEL
    if channel not in CHANNELS:
        raise InvalidInput(f"attribute[channel] must be one of {', '.join(CHANNELS)}: {channel!r}")
    return channel


def _description(params: Mapping[str, str], cat: Category) -> str:
    """The description, or the service name when a client sends none; address_string appended."""
    text = params.get("description", "").strip() or cat.name
    address = params.get("address_string", "").strip()
    return f"{text}\n地址：{address}" if address else text


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = err.get("loc", ())
        name = _PARAM_OF.get(str(loc[0]), str(loc[0])) if loc else "request"
        if loc[:2] == ("reporter", "phone"):
            name = "phone"
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        parts.append(f"{name}: {msg}")
    return "; ".join(parts)


def to_report(params: Mapping[str, str], now: dt.datetime) -> ReportIn:
    """A ReportIn from Open311 POST parameters; a 400 naming the parameter when one is bad.

    ``email``, ``device_id`` and ``account_id`` are accepted and not stored: our schema keeps
    only the reporter's name and phone, and we do not collect what we have no use for.
    """
    code = _required(params, "service_code")
    cat = CATEGORY_BY_CODE.get(code)
    if cat is None:
        raise InvalidInput(f"service_code {code!r} is not a known service: see services.json")
    location = _location(params)
    name = reporter_name(params.get("first_name", ""), params.get("last_name", ""))
    phone = params.get("phone", "").strip() or None
    media = params.get("media_url", "").strip()
    body = {
        "channel": _channel(params),
        "category": code,
        "description": _description(params, cat),
        "reported_at": now,
        "location": location,
        "photos": [media] if media else [],
        "reporter": {"name": name, "phone": phone} if name or phone else None,
    }
    try:
        return ReportIn.model_validate(body)
    except ValidationError as exc:
        raise InvalidInput(_validation_message(exc)) from exc


def _local(value: dt.datetime) -> str:
    return value.astimezone(CHINA_TZ).isoformat(timespec="seconds")


def notice(unit_name: str | None, due_at: dt.datetime, in_coverage: bool) -> str:
    """What will happen next, in the words of the command centre."""
    where = "" if in_coverage else "位置不在网格覆盖范围内，"
    who = unit_name or "区社会治理综合指挥中心"
    due = due_at.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M")
    return f"{where}已转{who}办理，应于 {due} 前处置。"


def created(report: Mapping[str, Any]) -> dict[str, Any]:
    """The POST answer for one stored report (``report`` is intake's response)."""
    unit = report.get("unit") or {}
    due_at = dt.datetime.fromisoformat(report["due_at"])
    text = notice(unit.get("name"), due_at, bool(report["in_coverage"]))
    if report.get("suspected_duplicate_of"):
        text += f" 疑似与 {report['suspected_duplicate_of']} 号案件重复。"
    return {"service_request_id": str(report["id"]), "service_notice": text, "account_id": None}


# --- GET requests -----------------------------------------------------------------------------


@dataclass
class RequestFilter:
    """What ``GET requests`` filters on (all WGS84; dates compare with requested_datetime)."""

    ids: list[int] | None = None
    service_codes: list[str] | None = None
    statuses: set[str] | None = None  # subset of {"open", "closed"}
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    bbox: tuple[float, float, float, float] | None = None
    near: tuple[float, float, float] | None = None  # lon, lat, radius in metres
    limit: int = MAX_PAGE_SIZE
    offset: int = 0


def parse_datetime(name: str, value: str | None) -> dt.datetime | None:
    """ISO 8601; naive means China time; a ``+`` turned into a space by a query string is mended."""
    if not value:
        return None
    raw = re.sub(r" (\d{2}:?\d{2})$", r"+\1", value.strip())
    try:
        parsed = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidInput(f"{name} must be an ISO 8601 datetime: {value!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=CHINA_TZ)


def parse_ids(value: str) -> list[int]:
    """A comma list of service_request_id values."""
    try:
        ids = [int(v) for v in value.split(",") if v.strip()]
    except ValueError as exc:
        raise InvalidInput(
            f"service_request_id must be a comma list of numbers: {value!r}"
        ) from exc
    if any(not 0 < i <= MAX_ID for i in ids):
        raise InvalidInput(f"service_request_id out of range: {value!r}")
    return ids


def parse_codes(value: str) -> list[str]:
    """A comma list of known service codes (an unknown one is a 400, not an empty answer)."""
    codes = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [c for c in codes if c not in CATEGORY_BY_CODE]
    if unknown:
        raise InvalidInput(f"service_code {', '.join(unknown)} not known: see services.json")
    return codes


def parse_statuses(value: str) -> set[str]:
    """``open``, ``closed`` or both, comma separated."""
    statuses = {v.strip().lower() for v in value.split(",") if v.strip()}
    if not statuses or not statuses <= {"open", "closed"}:
        raise InvalidInput(f"status must be open, closed or open,closed: {value!r}")
    return statuses


def parse_near(lat: str | None, lon: str | None, radius: str | None) -> tuple[float, float, float]:
    """The ``lat``/``long``/``radius`` extension: a circle in WGS84 with a radius in metres."""
    if not lat or not lon:
        raise InvalidInput("lat and long must be given together")
    params = {"lat": lat, "long": lon, "radius": radius or str(DEFAULT_RADIUS_M)}
    y, x, r = (_number(params, k) for k in ("lat", "long", "radius"))
    if not (abs(x) <= 180 and abs(y) <= 90):
        raise InvalidInput(f"lat/long out of range: {lat}, {lon}")
    if not 0 < r <= MAX_RADIUS_M:
        raise InvalidInput(f"radius must be in metres, over 0 and at most {MAX_RADIUS_M:.0f}")
    return x, y, r


def _chain_names() -> Any:
    """The names of the report's district → town → community → grid in its boundary version."""
    codes = (
        reports.c.district_code,
        reports.c.town_code,
        reports.c.community_code,
        reports.c.grid_code,
    )
    return (
        select(func.array_agg(aggregate_order_by(areas.c.name, func.length(version_areas.c.code))))
        .select_from(version_areas.join(areas, areas.c.id == version_areas.c.area_id))
        .where(
            version_areas.c.version_id == reports.c.boundary_version_id,
            version_areas.c.code.in_(codes),
        )
        .scalar_subquery()
    )


def _conditions(f: RequestFilter) -> list[ColumnElement[bool]]:
    if f.ids is not None:  # the spec: an id list overrides every other filter
        return [reports.c.id.in_(f.ids)]
    conds: list[ColumnElement[bool]] = []
    if f.service_codes:
        conds.append(reports.c.category.in_(f.service_codes))
    if f.statuses == {"open"}:
        conds.append(reports.c.status.in_(OPEN_STATUSES))
    elif f.statuses == {"closed"}:
        conds.append(reports.c.status.not_in(OPEN_STATUSES))
    if f.start:
        conds.append(reports.c.reported_at >= f.start)
    if f.end:
        conds.append(reports.c.reported_at <= f.end)
    if f.bbox:
        conds.append(reports.c.geom.op("&&")(ST_MakeEnvelope(*f.bbox, 4326)))
    if f.near:
        x, y, r = f.near
        point = func.ST_SetSRID(func.ST_MakePoint(x, y), 4326)
        conds.append(reports.c.geom.op("&&")(func.ST_Expand(point, r / 55_000.0)))
        conds.append(func.ST_DWithin(func.geography(reports.c.geom), func.geography(point), r))
    return conds


def find_requests(conn: Connection, f: RequestFilter) -> list[dict[str, Any]]:
    """Service requests matching ``f``, newest first; never any personal data."""
    query = (
        select(
            reports.c.id,
            reports.c.status,
            reports.c.category,
            reports.c.description,
            reports.c.photos,
            reports.c.reported_at,
            reports.c.status_at,
            reports.c.due_at,
            reports.c.in_coverage,
            reports.c.grid_code,
            ST_X(reports.c.geom).label("lon"),
            ST_Y(reports.c.geom).label("lat"),
            units.c.name.label("unit_name"),
            _chain_names().label("chain"),
            func.now().label("now"),
        )
        .select_from(reports.outerjoin(units, units.c.id == reports.c.unit_id))
        .where(*_conditions(f))
        .order_by(reports.c.reported_at.desc(), reports.c.id.desc())
        .limit(f.limit)
        .offset(f.offset)
    )
    return [service_request(row._mapping) for row in conn.execute(query)]


def status_notes(status: str, unit_name: str | None, overdue: bool) -> str:
    """Our detailed status, the unit handling it, and whether it is past its deadline."""
    notes = f"{STATUS_LABELS.get(status, status)} ({status})"
    if unit_name:
        notes += f"；承办单位：{unit_name}"
    return notes + ("；已超期 (overdue)" if overdue else "")


def service_request(m: Mapping[Any, Any]) -> dict[str, Any]:
    """One report as an Open311 service request (the selected columns hold no personal data)."""
    is_open = m["status"] in OPEN_STATUSES
    overdue = is_open and m["due_at"] < m["now"]
    cat = CATEGORY_BY_CODE.get(m["category"])
    chain = m["chain"] if m["in_coverage"] and m["chain"] else None
    photos = m["photos"] or []
    return {
        "service_request_id": str(m["id"]),
        "status": "open" if is_open else "closed",
        "status_notes": status_notes(m["status"], m["unit_name"], overdue),
        "service_name": cat.name if cat else m["category"],
        "service_code": m["category"],
        "description": m["description"],
        "agency_responsible": m["unit_name"],
        "service_notice": (
            notice(m["unit_name"], m["due_at"], m["in_coverage"]) if is_open else None
        ),
        "requested_datetime": _local(m["reported_at"]),
        "updated_datetime": _local(m["status_at"]),
        "expected_datetime": _local(m["due_at"]),
        "address": " / ".join(chain) if chain else None,
        "address_id": m["grid_code"],
        "zipcode": None,
        "lat": m["lat"],
        "long": m["lon"],
        "media_url": photos[0] if photos else None,
    }


# --- XML --------------------------------------------------------------------------------------


def _fill(parent: Element, value: Any) -> None:
    if isinstance(value, dict):
        for key, child in value.items():
            _fill(SubElement(parent, key), child)
    elif isinstance(value, list):
        tag = parent.tag[:-1] if parent.tag.endswith("s") else "item"  # attributes → attribute
        for child in value:
            _fill(SubElement(parent, tag), child)
    elif isinstance(value, bool):
        parent.text = "true" if value else "false"
    elif value is not None:
        parent.text = str(value)


def to_xml(root: str, item: str | None, content: Any) -> bytes:
    """The spec's XML: ``<root><item>…</item></root>`` for a list, ``<root>…</root>`` for one."""
    top = Element(root)
    if item is None:
        _fill(top, content)
    else:
        for entry in content:
            _fill(SubElement(top, item), entry)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + tostring(
        top, encoding="utf-8", xml_declaration=False
    )
