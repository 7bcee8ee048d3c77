"""Open cases follow the boundary version in force (the policy publish and rollback apply).

Policy, for every open case (status not ``evaluated``/``rejected``):

* it is re-located under the version now in force; if its grid (or coverage) is unchanged,
  nothing is written and it keeps the version it was located with;
* if its grid changed, its grid, code chain, coverage flag and ``boundary_version_id`` are
  replaced, and it is re-routed at its current handling level, unless a person chose its unit
  (``routed_by = 'manual'``), which stands; a case whose unit changes while ``dispatched`` or
  ``handling`` goes back to ``dispatched`` for the new unit (as a reassignment does);
* each moved case gets one ``relocate`` event naming the old and new grid and the version.

Closed cases and every past report keep the grid and version they were located with. The
sweep is idempotent: run again, it finds nothing to move; it also catches cases filed on the
old version in the seconds a running service takes to notice a switch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Connection, text

from geo_service.auth import Principal
from geo_service.locator import Locator
from geo_service.reports import placement
from geo_service.reports.queries import OPEN_STATUSES
from geo_service.routing import RoutingTable

BACK_TO_DISPATCHED = ("dispatched", "handling")
_OPEN = text(
    "SELECT id, ST_X(geom) AS x, ST_Y(geom) AS y, grid_code FROM reports "
    "WHERE status = ANY(:open) ORDER BY id"
)
_LOCK = text(
    "SELECT id, ST_X(geom) AS x, ST_Y(geom) AS y, status, category, handling_level, unit_id, "
    "routed_by, grid_code, now() AS now FROM reports "
    "WHERE id = ANY(:ids) AND status = ANY(:open) ORDER BY id FOR UPDATE"
)
_UPDATE = text(
    "UPDATE reports r SET grid_code = u.grid, community_code = u.community, "
    "town_code = u.town, district_code = u.district, in_coverage = u.inside, "
    "boundary_version_id = :version, unit_id = u.unit, routed_by = u.routed_by, "
    "status = u.status, status_at = CASE WHEN u.status <> r.status THEN u.at ELSE r.status_at END "
    "FROM unnest(CAST(:ids AS bigint[]), CAST(:grid AS text[]), CAST(:community AS text[]), "
    "CAST(:town AS text[]), CAST(:district AS text[]), CAST(:inside AS boolean[]), "
    "CAST(:unit AS integer[]), CAST(:routed_by AS text[]), CAST(:status AS text[]), "
    "CAST(:at AS timestamptz[])) "
    "AS u(id, grid, community, town, district, inside, unit, routed_by, status, at) "
    "WHERE r.id = u.id"
)
_EVENTS = text(
    "INSERT INTO report_events (report_id, at, action, from_status, to_status, unit_id, "
    "actor_key_id, actor, note) SELECT e.id, e.at, 'relocate', e.from_status, e.to_status, "
    "e.unit, CAST(:key AS integer), CAST(:actor AS text), e.note "
    "FROM unnest(CAST(:ids AS bigint[]), CAST(:at AS timestamptz[]), "
    "CAST(:from_status AS text[]), CAST(:to_status AS text[]), CAST(:unit AS integer[]), "
    "CAST(:note AS text[])) AS e(id, at, from_status, to_status, unit, note)"
)


@dataclass(frozen=True)
class Rerouted:
    """What a sweep did: open cases looked at, moved to another grid, given another unit."""

    version_id: int | None
    open_cases: int
    moved: int
    unit_changed: int
    kept_manual_unit: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "version_id": self.version_id,
            "open_cases": self.open_cases,
            "moved": self.moved,
            "unit_changed": self.unit_changed,
            "kept_manual_unit": self.kept_manual_unit,
        }


def _differs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.array([x != y for x, y in zip(a.tolist(), b.tolist(), strict=True)], dtype=bool)


def follow_version(
    conn: Connection,
    locator: Locator,
    routing: RoutingTable,
    principal: Principal | None = None,
    reason: str = "boundary version in force",
) -> Rerouted:
    """Apply the policy above with ``locator`` (the version in force) in the caller's transaction.

    Candidates are found without locks; only those that move are then locked (in id order, so
    two sweeps cannot deadlock), re-read and re-located, so a case changed meanwhile is judged
    on its locked state.
    """
    version = locator.version
    rows = conn.execute(_OPEN, {"open": list(OPEN_STATUSES)}).all()
    if not rows:
        return Rerouted(version.id, 0, 0, 0, 0)
    x = np.array([r.x for r in rows], dtype=np.float64)
    y = np.array([r.y for r in rows], dtype=np.float64)
    stored = np.array([r.grid_code for r in rows], dtype=object)
    now = placement.locate(locator, routing, x, y)
    candidates = [rows[int(i)].id for i in np.flatnonzero(_differs(now.grid_code, stored))]
    if not candidates:
        return Rerouted(version.id, len(rows), 0, 0, 0)
    locked = list(conn.execute(_LOCK, {"ids": candidates, "open": list(OPEN_STATUSES)}).all())
    x = np.array([r.x for r in locked], dtype=np.float64)
    y = np.array([r.y for r in locked], dtype=np.float64)
    place = placement.locate(locator, routing, x, y)
    old_grid = np.array([r.grid_code for r in locked], dtype=object)
    keep = np.flatnonzero(_differs(place.grid_code, old_grid))
    locked = [locked[int(i)] for i in keep]
    place = place.take(keep)
    if not locked:
        return Rerouted(version.id, len(rows), 0, 0, 0)
    units, routed_by = placement.route(
        place, routing, [r.category for r in locked], [r.handling_level for r in locked]
    )
    changes: dict[str, list[Any]] = {
        k: []
        for k in (
            "ids",
            "grid",
            "community",
            "town",
            "district",
            "inside",
            "unit",
            "routed_by",
            "status",
            "at",
            "from_status",
            "note",
        )
    }
    unit_changed = kept_manual = 0
    label = f"{version.label!r} (id {version.id})"
    for i, r in enumerate(locked):
        unit, how = units[i], routed_by[i]
        if r.routed_by == "manual":
            unit, how = r.unit_id, "manual"
            kept_manual += 1
        moved_unit = unit != r.unit_id
        unit_changed += moved_unit
        status = "dispatched" if moved_unit and r.status in BACK_TO_DISPATCHED else r.status
        new_grid = place.grid_code[i] or "outside coverage"
        note = f"{reason} {label}: grid {r.grid_code or 'outside coverage'} → {new_grid}"
        if moved_unit:
            note += "; re-routed"
        for key, value in (
            ("ids", r.id),
            ("grid", place.grid_code[i]),
            ("community", place.community_code[i]),
            ("town", place.town_code[i]),
            ("district", place.district_code[i]),
            ("inside", bool(place.in_coverage[i])),
            ("unit", unit),
            ("routed_by", how),
            ("status", status),
            ("at", r.now),
            ("from_status", r.status),
            ("note", note),
        ):
            changes[key].append(value)
    conn.execute(
        _UPDATE,
        {k: v for k, v in changes.items() if k not in ("from_status", "note")}
        | {"version": version.id},
    )
    conn.execute(
        _EVENTS,
        {
            "ids": changes["ids"],
            "at": changes["at"],
            "from_status": changes["from_status"],
            "to_status": changes["status"],
            "unit": changes["unit"],
            "note": changes["note"],
            "key": principal.key_id if principal else None,
            "actor": principal.role if principal else "system",
        },
    )
    return Rerouted(version.id, len(rows), len(locked), unit_changed, kept_manual)
