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

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Connection

from geo_service.auth import Principal
from geo_service.locator import Locator, VersionInfo
from geo_service.reports import placement
from geo_service.routing import RoutingTable
from geo_service.store import reports as store

BACK_TO_DISPATCHED = ("dispatched", "handling")


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
    version: VersionInfo,
    locator_of: Callable[[], Locator],
    principal: Principal | None = None,
    reason: str = "boundary version in force",
) -> Rerouted:
    """Apply the policy above for ``version`` (the version in force) in the caller's
    transaction; ``locator_of`` builds its Locator, asked only when a case is open.

    Candidates are found without locks; only those that move are then locked (in id order, so
    two sweeps cannot deadlock), re-read and re-located, so a case changed meanwhile is judged
    on its locked state.
    """
    rows = store.open_points(conn)
    if not rows:
        return Rerouted(version.id, 0, 0, 0, 0)
    locator = locator_of()
    routing = RoutingTable.load(conn)
    x = np.array([r.x for r in rows], dtype=np.float64)
    y = np.array([r.y for r in rows], dtype=np.float64)
    stored = np.array([r.grid_code for r in rows], dtype=object)
    now = placement.locate(locator, routing, x, y)
    candidates = [rows[int(i)].id for i in np.flatnonzero(_differs(now.grid_code, stored))]
    if not candidates:
        return Rerouted(version.id, len(rows), 0, 0, 0)
    locked = list(store.lock_open(conn, candidates))
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
    changes: dict[str, list[Any]] = {k: [] for k in store.RELOCATION_COLUMNS}
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
    store.relocate(
        conn,
        changes,
        version.id,
        principal.key_id if principal else None,
        principal.role if principal else "system",
    )
    return Rerouted(version.id, len(rows), len(locked), unit_changed, kept_manual)
