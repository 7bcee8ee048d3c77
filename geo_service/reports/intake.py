"""Intake: validate → convert to WGS84 → locate grid → route unit → store, in one transaction.

Acknowledged reports are never lost or duplicated: an idempotency key (the ``Idempotency-Key``
header, or ``external_id`` in bulk) is unique in the table; the same key with the same body
gives back the first answer and stores nothing, the same key with another body is refused.
Points outside coverage are stored, flagged and routed to the district command centre.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, text

from geo_service.analytics.heat import record_heat
from geo_service.auth import Principal
from geo_service.coords import normalize_crs, to_wgs84
from geo_service.errors import GeoServiceError
from geo_service.locator import Locator
from geo_service.reports import placement
from geo_service.reports.queries import OPEN_STATUSES
from geo_service.reports.schemas import ReportIn
from geo_service.reports.taxonomy import CATEGORY_BY_CODE
from geo_service.routing import RoutingTable

DUPLICATE_DISTANCE_M = 50.0
DUPLICATE_WINDOW_H = 72.0


@dataclass
class Outcome:
    """What happened to one submitted report."""

    status: str  # stored | duplicate | refused | conflict
    report: dict[str, Any] | None = None
    reason: str | None = None


@dataclass
class _Row:
    index: int
    item: ReportIn
    key: str | None
    request_hash: str
    values: dict[str, Any] = field(default_factory=dict)


def request_hash(item: ReportIn) -> str:
    """A stable digest of a report body, to tell a retry from a different report."""
    body = item.model_dump(mode="json", exclude={"external_id"})
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _convert(rows: list[_Row], outcomes: list[Outcome | None]) -> list[_Row]:
    """WGS84 lon/lat per row; rows whose coordinates or CRS are bad are refused, not raised."""
    ok: list[_Row] = []
    by_crs: dict[str, list[_Row]] = {}
    for r in rows:
        try:
            crs = normalize_crs(r.item.location.crs)
            to_wgs84([r.item.location.lon], [r.item.location.lat], crs)
        except GeoServiceError as exc:
            outcomes[r.index] = Outcome("refused", reason=exc.message)
            continue
        by_crs.setdefault(crs, []).append(r)
    for crs, group in by_crs.items():
        lon, lat = to_wgs84(
            [r.item.location.lon for r in group], [r.item.location.lat for r in group], crs
        )
        for r, x, y in zip(group, lon, lat, strict=True):
            r.values.update(lon=float(x), lat=float(y), crs_original=crs)
            ok.append(r)
    return ok


def _locate_and_route(rows: list[_Row], locator: Locator, routing: RoutingTable) -> None:
    if not rows:
        return
    placed = placement.locate(
        locator, routing, [r.values["lon"] for r in rows], [r.values["lat"] for r in rows]
    )
    categories = [r.item.category for r in rows]
    levels = placement.base_levels(categories, [r.item.hard for r in rows])
    units, routed_by = placement.route(placed, routing, categories, levels)
    for i, r in enumerate(rows):
        sla = dt.timedelta(hours=CATEGORY_BY_CODE[r.item.category].sla_hours)
        r.values.update(
            in_coverage=bool(placed.in_coverage[i]),
            grid_code=placed.grid_code[i],
            grid_name=placed.grid_name[i],
            community_code=placed.community_code[i],
            town_code=placed.town_code[i],
            district_code=placed.district_code[i],
            handling_level=levels[i],
            unit_id=units[i],
            routed_by=routed_by[i],
            due_at=r.item.reported_at + sla,
        )


def _response(r: _Row, report_id: int, locator: Locator, routing: RoutingTable) -> dict[str, Any]:
    v = r.values
    unit = routing.unit_info.get(v["unit_id"]) if v["unit_id"] is not None else None
    return {
        "id": report_id,
        "status": "discovered",
        "channel": r.item.channel,
        "category": r.item.category,
        "reported_at": r.item.reported_at.isoformat(),
        "location": {"lon": v["lon"], "lat": v["lat"], "crs_original": v["crs_original"]},
        "in_coverage": v["in_coverage"],
        "grid": {"code": v["grid_code"], "name": v["grid_name"]} if v["grid_code"] else None,
        "community_code": v["community_code"],
        "town_code": v["town_code"],
        "district_code": v["district_code"],
        "boundary_version": locator.version.label,
        "handling_level": v["handling_level"],
        "unit": unit,
        "routed_by": v["routed_by"],
        "due_at": v["due_at"].isoformat(),
        "suspected_duplicate_of": None,
    }


_INSERT = text("""
INSERT INTO reports (id, idempotency_key, request_hash, channel, category, description, photos,
    reported_at, lon_original, lat_original, crs_original, geom, in_coverage, grid_code,
    community_code, town_code, district_code, boundary_version_id, handling_level, unit_id,
    routed_by, status, status_at, due_at, hard, filed_by_key_id, response)
SELECT u.id, u.key, u.hash, u.channel, u.category, u.description, CAST(u.photos AS jsonb),
    u.reported_at, u.lon0, u.lat0, u.crs, ST_Point(u.lon, u.lat, 4326), u.in_cov, u.grid,
    u.community, u.town, u.district, CAST(:version AS integer), u.level, u.unit, u.routed_by,
    'discovered', u.reported_at, u.due_at, u.hard, CAST(:key_id AS integer),
    CAST(u.response AS jsonb)
FROM unnest(CAST(:id AS bigint[]), CAST(:key AS text[]), CAST(:hash AS text[]),
    CAST(:channel AS text[]), CAST(:category AS text[]), CAST(:description AS text[]),
    CAST(:photos AS text[]), CAST(:reported_at AS timestamptz[]), CAST(:lon0 AS float8[]),
    CAST(:lat0 AS float8[]), CAST(:crs AS text[]), CAST(:lon AS float8[]),
    CAST(:lat AS float8[]), CAST(:in_cov AS boolean[]), CAST(:grid AS text[]),
    CAST(:community AS text[]), CAST(:town AS text[]), CAST(:district AS text[]),
    CAST(:level AS text[]), CAST(:unit AS integer[]), CAST(:routed_by AS text[]),
    CAST(:due_at AS timestamptz[]), CAST(:hard AS boolean[]), CAST(:response AS text[]))
    AS u(id, key, hash, channel, category, description, photos, reported_at, lon0, lat0, crs,
         lon, lat, in_cov, grid, community, town, district, level, unit, routed_by, due_at,
         hard, response)
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING id
""")

_SUGGEST_DUPLICATES = text("""
UPDATE reports r SET duplicate_of = (
    SELECT o.id FROM reports o
    WHERE o.category = r.category AND o.id <> r.id AND o.duplicate_of IS NULL
      AND o.status = ANY(:open)
      AND o.reported_at BETWEEN r.reported_at - make_interval(secs => CAST(:hours AS float8) * 3600)
                            AND r.reported_at
      AND (o.reported_at < r.reported_at OR o.id < r.id)
      AND o.geom && ST_Expand(r.geom, :deg)
      AND ST_DWithin(o.geom::geography, r.geom::geography, :metres)
    ORDER BY ST_Distance(o.geom::geography, r.geom::geography), o.id
    LIMIT 1)
WHERE r.id = ANY(:ids)
RETURNING r.id, r.duplicate_of
""")


def ingest(
    conn: Connection,
    items: list[ReportIn],
    keys: list[str | None],
    locator: Locator,
    routing: RoutingTable,
    principal: Principal | None = None,
    *,
    duplicate_distance_m: float = DUPLICATE_DISTANCE_M,
    duplicate_window_h: float = DUPLICATE_WINDOW_H,
) -> list[Outcome]:
    """Store ``items`` (already schema-valid) in the caller's transaction; one outcome each."""
    outcomes: list[Outcome | None] = [None] * len(items)
    rows = [
        _Row(i, item, key, request_hash(item))
        for i, (item, key) in enumerate(zip(items, keys, strict=True))
    ]
    rows = _convert(rows, outcomes)
    _locate_and_route(rows, locator, routing)
    ids = (
        conn.execute(
            text("SELECT nextval('reports_id_seq') FROM generate_series(1, :n)"), {"n": len(rows)}
        )
        .scalars()
        .all()
        if rows
        else []
    )
    responses = [_response(r, rid, locator, routing) for r, rid in zip(rows, ids, strict=True)]
    params: dict[str, Any] = {
        "version": locator.version.id,
        "key_id": principal.key_id if principal else None,
        "id": list(ids),
        "key": [r.key for r in rows],
        "hash": [r.request_hash for r in rows],
        "channel": [r.item.channel for r in rows],
        "category": [r.item.category for r in rows],
        "description": [r.item.description for r in rows],
        "photos": [orjson.dumps([str(p) for p in r.item.photos]).decode() for r in rows],
        "reported_at": [r.item.reported_at for r in rows],
        "lon0": [r.item.location.lon for r in rows],
        "lat0": [r.item.location.lat for r in rows],
        "crs": [r.values["crs_original"] for r in rows],
        "lon": [r.values["lon"] for r in rows],
        "lat": [r.values["lat"] for r in rows],
        "in_cov": [r.values["in_coverage"] for r in rows],
        "grid": [r.values["grid_code"] for r in rows],
        "community": [r.values["community_code"] for r in rows],
        "town": [r.values["town_code"] for r in rows],
        "district": [r.values["district_code"] for r in rows],
        "level": [r.values["handling_level"] for r in rows],
        "unit": [r.values["unit_id"] for r in rows],
        "routed_by": [r.values["routed_by"] for r in rows],
        "due_at": [r.values["due_at"] for r in rows],
        "hard": [r.item.hard for r in rows],
        "response": [orjson.dumps(resp).decode() for resp in responses],
    }
    inserted = set(conn.execute(_INSERT, params).scalars().all()) if rows else set()
    stored = [
        (r, rid, resp) for r, rid, resp in zip(rows, ids, responses, strict=True) if rid in inserted
    ]
    record_heat(conn, [rid for _, rid, _ in stored])  # H3 cell → heat roll-up (analytics)
    _store_contacts_and_events(conn, stored, principal)
    if stored:
        dups = conn.execute(
            _SUGGEST_DUPLICATES,
            {
                "ids": [rid for _, rid, _ in stored],
                "open": list(OPEN_STATUSES),
                "hours": duplicate_window_h,
                "metres": duplicate_distance_m,
                "deg": duplicate_distance_m / 55_000.0,
            },
        ).all()
        linked = {rid: dup for rid, dup in dups if dup is not None}
        for _, rid, resp in stored:
            if rid in linked:
                resp["suspected_duplicate_of"] = linked[rid]
        if linked:
            conn.execute(
                text(
                    "UPDATE reports SET response = jsonb_set(response, "
                    "'{suspected_duplicate_of}', to_jsonb(duplicate_of)) WHERE id = ANY(:ids)"
                ),
                {"ids": list(linked)},
            )
    for r, _rid, resp in stored:
        outcomes[r.index] = Outcome("stored", report=resp)
    _resolve_conflicts(
        conn, [r for r, rid in zip(rows, ids, strict=True) if rid not in inserted], outcomes
    )
    return [o if o is not None else Outcome("refused", reason="not processed") for o in outcomes]


def _store_contacts_and_events(
    conn: Connection, stored: list[tuple[_Row, int, dict[str, Any]]], principal: Principal | None
) -> None:
    contacts = [
        {"id": rid, "name": r.item.reporter.name, "phone": r.item.reporter.phone}
        for r, rid, _ in stored
        if r.item.reporter is not None
    ]
    if contacts:
        conn.execute(
            text(
                "INSERT INTO report_contacts (report_id, name, phone) VALUES (:id, :name, :phone)"
            ),
            contacts,
        )
    if stored:
        conn.execute(
            text(
                "INSERT INTO report_events (report_id, at, action, to_status, unit_id, "
                "actor_key_id, actor, note) SELECT u.id, u.at, 'discover', 'discovered', "
                "u.unit, CAST(:key_id AS integer), u.channel, 'routed by ' || u.routed_by "
                "FROM unnest(CAST(:ids AS bigint[]), CAST(:ats AS timestamptz[]), "
                "CAST(:units AS integer[]), CAST(:channels AS text[]), "
                "CAST(:routed AS text[])) AS u(id, at, unit, channel, routed_by)"
            ),
            {
                "key_id": principal.key_id if principal else None,
                "ids": [rid for _, rid, _ in stored],
                "ats": [r.item.reported_at for r, _, _ in stored],
                "units": [r.values["unit_id"] for r, _, _ in stored],
                "channels": [r.item.channel for r, _, _ in stored],
                "routed": [r.values["routed_by"] for r, _, _ in stored],
            },
        )


def _resolve_conflicts(conn: Connection, rows: list[_Row], outcomes: list[Outcome | None]) -> None:
    """Rows whose key exists: a replay answers the first response, another body conflicts."""
    if not rows:
        return
    existing = {
        k: (h, resp)
        for k, h, resp in conn.execute(
            text(
                "SELECT idempotency_key, request_hash, response FROM reports "
                "WHERE idempotency_key = ANY(:keys)"
            ),
            {"keys": [r.key for r in rows]},
        ).all()
    }
    for r in rows:
        assert r.key is not None  # only keyed rows can conflict
        if r.key not in existing:  # the other writer rolled back meanwhile
            outcomes[r.index] = Outcome("conflict", reason=f"key {r.key!r} is busy: retry")
            continue
        first_hash, resp = existing[r.key]
        if first_hash == r.request_hash:
            outcomes[r.index] = Outcome("duplicate", report=resp)
        else:
            outcomes[r.index] = Outcome(
                "conflict",
                reason=f"idempotency key {r.key!r} was used for a different report",
            )
