"""Open311 GeoReport v2 ⇄ our reports: parameters in, service requests out.

What Open311 shows of a report is fixed here, once, for the OGC ``reports`` collection too.
Private by default (:mod:`geo_service.reports.disclosure`): to the public a report is its
category, status, times, the centre of its coarse H3 cell (``GEO_PRIVACY_PUBLIC_H3_RES``), its
community chain and the kind of unit handling it, with ``description`` and ``media_url`` null;
a viewer it is exact for (staff; a grid worker in its area; its reporter; anyone for a public
case of a public category) also gets the WGS84 point, the grid, the unit's name, the
description and the first photo. The read query (:func:`geo_service.store.reports.request_page`)
never selects ``report_contacts``, so reporters' names and phone numbers cannot reach an
Open311 answer whatever the caller's role.

Status: Open311 knows only ``open`` and ``closed``. A report is open while its status is one
of :data:`~geo_service.db.schema.OPEN_STATUSES`; anything after the loop (``evaluated``,
``rejected``) is closed. ``status_notes`` carries our detailed status and unit, and says when
the case is overdue (:func:`geo_service.store.stats.overdue`, the one rule).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any, Final
from xml.etree.ElementTree import Element, SubElement, tostring

from pydantic import ValidationError
from sqlalchemy import Connection

from geo_service.auth import Principal
from geo_service.coords import normalize_crs, to_wgs84
from geo_service.db.schema import OPEN_STATUSES
from geo_service.errors import GeoServiceError, InvalidInput, NotFound
from geo_service.reports import disclosure
from geo_service.reports.schemas import CHINA_TZ, ReportIn
from geo_service.reports.taxonomy import (
    CATEGORIES,
    CATEGORY_BY_CODE,
    CHANNELS,
    STATUS_NAMES,
    Category,
)
from geo_service.settings import PrivacySettings
from geo_service.stats import catalogue
from geo_service.store import reports as store
from geo_service.store.reports import RequestFilter as RequestFilter

DEFAULT_CHANNEL: Final = "wechat"  # Open311 clients are citizen apps and mini-programs
DEFAULT_WINDOW: Final = dt.timedelta(days=90)  # the spec's default span for GET requests
MAX_PAGE_SIZE: Final = 1000  # the spec's cap on one GET requests answer
DEFAULT_RADIUS_M: Final = 1000.0
MAX_RADIUS_M: Final = 50_000.0
MAX_ID: Final = 2**63 - 1  # report ids are bigint

LEVEL_NAMES: Final = {"community": "村(社区)", "town": "镇(街道)", "county": "区级"}
# where a ReportIn field came from, so a refusal names the Open311 parameter
_PARAM_OF: Final = {
    "category": "service_code",
    "channel": "attribute[channel]",
    "description": "description",
    "photos": "media_url",
    "location": "lat/long",
    "reporter": "first_name/last_name/phone",
}


# --- services ---------------------------------------------------------------------------------


def service(cat: Category) -> dict[str, Any]:
    """One entry of ``GET services``: a category of our taxonomy, with its handling limit."""
    limit = catalogue.entry(cat.code).limits().handle
    return {
        "service_code": cat.code,
        "service_name": cat.name,
        "description": (
            f"{cat.name_en}: 先由{LEVEL_NAMES[cat.level]}处置，时限 {limit.label_zh()}"
            f" (handled first at {cat.level} level within {limit.label_en()})."
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


def find_requests(conn: Connection, f: RequestFilter) -> list[dict[str, Any]]:
    """Service requests matching ``f`` (read by ``f.viewer``, see :func:`viewing`), newest
    first; never any personal data."""
    f = disclosure.resolve_cells(conn, f)
    return [service_request(row._mapping, f.coarse_res) for row in store.request_page(conn, f)]


def count_requests(conn: Connection, f: RequestFilter) -> int:
    """How many service requests match ``f`` (its paging ignored)."""
    return store.count_requests(conn, disclosure.resolve_cells(conn, f))


def viewing(f: RequestFilter, who: Principal | None, settings: PrivacySettings) -> RequestFilter:
    """``f`` as ``who`` (None: the public) reads it under the privacy ``settings``."""
    return disclosure.Viewer.of(who, settings).apply(f)


def status_notes(status: str, unit_name: str | None, overdue: bool) -> str:
    """Our detailed status, the unit handling it, and whether it is past its deadline."""
    notes = f"{STATUS_NAMES.get(status, status)} ({status})"
    if unit_name:
        notes += f"；承办单位：{unit_name}"
    return notes + ("；已超期 (overdue)" if overdue else "")


COMMUNITY_DEPTH: Final = 3  # district / town / community: the chain's first names


def service_request(m: Mapping[Any, Any], coarse_res: int) -> dict[str, Any]:
    """One report as an Open311 service request (the selected columns hold no personal data):
    exact when ``m["exact"]``, else coarse (cell centre at ``coarse_res``, community, no text)."""
    is_open = m["status"] in OPEN_STATUSES
    overdue = bool(m["overdue"])  # the one definition: geo_service.store.stats.overdue
    cat = CATEGORY_BY_CODE.get(m["category"])
    chain = m["chain"] if m["in_coverage"] and m["chain"] else None
    photos = m["photos"] or []
    if m["exact"]:
        lon, lat, unit = m["lon"], m["lat"], m["unit_name"]
        description, media = m["description"], photos[0] if photos else None
        address_id = m["grid_code"]
    else:
        lon, lat = disclosure.coarse_point(m["h3_11"], m["lon"], m["lat"], coarse_res)
        unit = disclosure.public_unit_name(m["unit_name"], m["unit_type"])
        description = media = None
        chain = chain[:COMMUNITY_DEPTH] if chain else None
        address_id = m["community_code"] if m["in_coverage"] else None
    return {
        "service_request_id": str(m["id"]),
        "status": "open" if is_open else "closed",
        "status_notes": status_notes(m["status"], unit, overdue),
        "service_name": cat.name if cat else m["category"],
        "service_code": m["category"],
        "description": description,
        "agency_responsible": unit,
        "service_notice": notice(unit, m["due_at"], m["in_coverage"]) if is_open else None,
        "requested_datetime": _local(m["reported_at"]),
        "updated_datetime": _local(m["status_at"]),
        "expected_datetime": _local(m["due_at"]),
        "address": " / ".join(chain) if chain else None,
        "address_id": address_id,
        "zipcode": None,
        "lat": lat,
        "long": lon,
        "media_url": media,
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
