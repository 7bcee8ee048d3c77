"""Codes of a draft's grids: which are in use, and renumbering in reading order.

Renumbering works community by community. A grid whose geometry equals a grid of the same
community in the version in force takes that grid's code; a grid whose code the version in
force gives to mostly the same ground (:func:`~geo_service.planning.numbering.same_ground`: a
moved boundary, a re-drawn upload) keeps it; every other grid takes, in reading order
(north→south, west→east), the lowest numbers used neither by a kept grid nor by any grid of the
version in force, so a code never comes to name another piece of ground, and grid 001 is never
renamed 026 for a vertex moved.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import shapely
from sqlalchemy import Connection

from geo_service import audit
from geo_service.auth import Principal
from geo_service.boundaries import versions
from geo_service.errors import NoBoundaryVersion
from geo_service.planning.drafts import StoredArea, lock_draft, members, swap_areas
from geo_service.planning.numbering import (
    free_grid_codes,
    middle_latitude,
    reading_sequence,
    same_ground,
)
from geo_service.store import versions as store


@dataclass
class Renumbered:
    """What renumbering did: old code → new code for every grid whose code changed."""

    version_id: int
    renamed: dict[str, str] = field(default_factory=dict)
    kept: int = 0
    numbered: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "version_id": self.version_id,
            "renamed": self.renamed,
            "kept_from_version_in_force": self.kept,
            "numbered": self.numbered,
        }


def in_force_id(conn: Connection) -> int | None:
    """Id of the version in force today, or None when none is."""
    try:
        return versions.version_in_force(conn).id
    except NoBoundaryVersion:
        return None


def codes_in_use(conn: Connection, version_id: int, community: str) -> set[str]:
    """Grid codes of ``community`` in the draft and in the version in force: not free to give."""
    ids = [version_id] + [v for v in (in_force_id(conn),) if v is not None]
    rows = store.areas_of(conn, ids, levels=("grid",), parent_code=community, geometry=False)
    return {r.code for r in rows}


def _bounds_key(geom: shapely.Geometry) -> tuple[float, ...]:
    return tuple(float(v) for v in shapely.bounds(geom))


def renumber(
    conn: Connection, version_id: int, *, principal: Principal | None = None
) -> Renumbered:
    """Renumber the grids of draft ``version_id`` (see the module docstring); 409 if not a draft.
    Audited as done by ``principal`` (None: the local account)."""
    lock_draft(conn, version_id)
    areas = members(conn, version_id)
    grids = [a for a in areas if a.level == "grid"]
    result = Renumbered(version_id)
    if not grids:
        return result
    latitude = middle_latitude(shapely.total_bounds([a.geom for a in areas]))
    force = in_force_id(conn)
    in_force = members(conn, force, level="grid") if force is not None else []
    same_shape: dict[tuple[Any, ...], list[StoredArea]] = {}
    for g in in_force:
        same_shape.setdefault((g.parent_code, *_bounds_key(g.geom)), []).append(g)
    target: dict[str, str] = {}
    for community in sorted({g.parent_code for g in grids}):
        kids = [g for g in grids if g.parent_code == community]
        order = reading_sequence([g.geom for g in kids], latitude)
        valid = shapely.is_valid([g.geom for g in kids])
        kept: dict[str, str] = {}
        claimed: set[str] = set()
        for i in order:
            g = kids[int(i)]
            for old in same_shape.get((community, *_bounds_key(g.geom)), []):
                if old.code not in claimed and valid[int(i)] and shapely.equals(old.geom, g.geom):
                    kept[g.code] = old.code
                    claimed.add(old.code)
                    break
        by_code = {g.code: g for g in in_force if g.parent_code == community}
        for i in order:  # a reshaped grid (a moved boundary, a re-drawn upload) keeps its code
            g = kids[int(i)]
            old_grid = by_code.get(g.code)
            if (g.code not in kept and g.code not in claimed and old_grid is not None
                    and same_ground(g.geom, old_grid.geom)):
                kept[g.code] = g.code
                claimed.add(g.code)
        rest = [kids[int(i)] for i in order if kids[int(i)].code not in kept]
        taken = claimed | {g.code for g in in_force if g.parent_code == community}
        fresh = free_grid_codes(community, taken, len(rest)) if rest else []
        target.update(kept)
        target.update({g.code: c for g, c in zip(rest, fresh, strict=True)})
        result.kept += len(kept)
        result.numbered += len(rest)
    moving = [g for g in grids if target[g.code] != g.code]
    if moving:
        records = [g.record(code=target[g.code]) for g in moving]
        swap_areas(conn, version_id, moving, records, principal=principal)
    result.renamed = {g.code: target[g.code] for g in sorted(moving, key=lambda g: g.code)}
    what = {"renamed": len(result.renamed), "kept": result.kept}
    audit.record(conn, "boundary.renumber", "boundary_version", version_id, principal, what)
    return result

