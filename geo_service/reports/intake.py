"""Intake: validate → convert to WGS84 → locate grid → route unit → store, in one transaction.

Acknowledged reports are never lost or duplicated: an idempotency key (the ``Idempotency-Key``
header, or ``external_id`` in bulk) is unique in the table; the same key with the same body
gives back the first answer and stores nothing, the same key with another body is refused.
Points outside coverage are stored, flagged and routed to the district command centre.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection

from geo_service.analytics.h3sql import cells_of_points
from geo_service.auth import Principal
from geo_service.coords import rows_to_wgs84
from geo_service.db.schema import OPEN_STATUSES
from geo_service.locator import Locator
from geo_service.reports import placement
from geo_service.reports.schemas import ReportIn
from geo_service.routing import RoutingTable
from geo_service.stats import catalogue
from geo_service.store import report_copy
from geo_service.store import reports as store

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
    """WGS84 lon/lat per row (:func:`~geo_service.coords.rows_to_wgs84`); rows whose
    coordinates or CRS are bad are refused, not raised."""
    converted = rows_to_wgs84(
        [r.item.location.lon for r in rows],
        [r.item.location.lat for r in rows],
        [r.item.location.crs for r in rows],
    )
    refused = converted.crs_errors | converted.point_errors
    ok: list[_Row] = []
    for pos, r in enumerate(rows):
        if pos in refused:
            outcomes[r.index] = Outcome("refused", reason=refused[pos])
            continue
        r.values.update(
            lon=float(converted.lon[pos]),
            lat=float(converted.lat[pos]),
            crs_original=converted.crs[pos],
        )
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
    columns = zip(
        placed.in_coverage.tolist(),
        placed.grid_code.tolist(),
        placed.grid_name.tolist(),
        placed.community_code.tolist(),
        placed.town_code.tolist(),
        placed.district_code.tolist(),
        levels.tolist(),
        units.tolist(),
        routed_by.tolist(),
        strict=True,
    )
    for r, (inside, grid, name, community, town, district, level, unit, routed) in zip(
        rows, columns, strict=True
    ):
        r.values.update(
            in_coverage=inside,
            grid_code=grid,
            grid_name=name,
            community_code=community,
            town_code=town,
            district_code=district,
            handling_level=level,
            unit_id=unit,
            routed_by=routed,
            due_at=catalogue.provisional_due(r.item.category, r.item.reported_at),
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


def _nul_field(item: ReportIn) -> str | None:
    """The text field holding a NUL character (PostgreSQL text cannot store one), if any."""
    fields = {"description": item.description, "external_id": item.external_id}
    if item.reporter is not None:
        fields["reporter.name"] = item.reporter.name
    return next((k for k, v in fields.items() if v is not None and "\x00" in v), None)


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
    rows = []
    for i, (item, key) in enumerate(zip(items, keys, strict=True)):
        bad = _nul_field(item) or (key is not None and "\x00" in key and "idempotency key")
        if bad:
            outcomes[i] = Outcome("refused", reason=f"{bad} has a NUL character")
        else:
            rows.append(_Row(i, item, key, request_hash(item)))
    rows = _convert(rows, outcomes)
    _locate_and_route(rows, locator, routing)
    ids = store.reserve_ids(conn, len(rows))
    responses = [_response(r, rid, locator, routing) for r, rid in zip(rows, ids, strict=True)]
    cells = cells_of_points([r.values["lon"] for r in rows], [r.values["lat"] for r in rows])
    staged = [
        _staged(r, rid, resp, cell)
        for r, rid, resp, cell in zip(rows, ids, responses, cells.tolist(), strict=True)
    ]
    key_id, user_id = (principal.key_id, principal.user_id) if principal else (None, None)
    inserted = report_copy.store_new(conn, staged, locator.version.id, key_id, user_id)
    stored = [
        (r, rid, resp) for r, rid, resp in zip(rows, ids, responses, strict=True) if rid in inserted
    ]
    linked = store.link_near_duplicates(
        conn,
        [rid for _, rid, _ in stored],
        OPEN_STATUSES,
        duplicate_distance_m,
        duplicate_window_h,
    )
    for r, rid, resp in stored:
        if rid in linked:
            resp["suspected_duplicate_of"] = linked[rid]
        outcomes[r.index] = Outcome("stored", report=resp)
    _resolve_conflicts(
        conn, [r for r, rid in zip(rows, ids, strict=True) if rid not in inserted], outcomes
    )
    return [o if o is not None else Outcome("refused", reason="not processed") for o in outcomes]


def _staged(r: _Row, report_id: int, response: dict[str, Any], cell: int) -> tuple[Any, ...]:
    """One row laid out as :data:`~geo_service.store.report_copy.INTAKE`."""
    v, item = r.values, r.item
    reporter = item.reporter
    return (
        report_id, r.key, r.request_hash, item.channel, item.category, item.description,
        orjson.dumps([str(p) for p in item.photos]).decode(), item.reported_at,
        item.location.lon, item.location.lat, v["crs_original"], v["lon"], v["lat"],
        v["in_coverage"], v["grid_code"], v["community_code"], v["town_code"],
        v["district_code"], v["handling_level"], v["unit_id"], v["routed_by"], v["due_at"],
        item.hard, orjson.dumps(response).decode(), cell, reporter is not None,
        reporter.name if reporter else None, reporter.phone if reporter else None,
    )  # fmt: skip


def _resolve_conflicts(conn: Connection, rows: list[_Row], outcomes: list[Outcome | None]) -> None:
    """Rows whose key exists: a replay answers the first response, another body conflicts."""
    if not rows:
        return
    existing = store.responses_by_key(conn, [r.key for r in rows if r.key is not None])
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
