"""Draft boundary versions: create one from an uploaded layout, lock it for an edit, swap areas.

Area rows are shared between versions by content fingerprint, so a draft is never changed by
updating an area row: an edit stores the new content as a row of its own (or finds an identical
one) and relinks the draft's membership (``version_areas``) from the old row to the new one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import shapely
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Connection, Engine

from geo_service.auth import Principal
from geo_service.boundaries import versions
from geo_service.boundaries.codes import LEVELS
from geo_service.boundaries.importer import write_version
from geo_service.boundaries.reader import read_layout
from geo_service.boundaries.validation import Problem
from geo_service.errors import (
    BoundaryValidationFailed,
    Conflict,
    InvalidInput,
    NoBoundaryVersion,
    NotFound,
)
from geo_service.locator.locator import VersionInfo
from geo_service.planning.layout_store import store_layout
from geo_service.planning.validation_report import (
    layout_problems,
    problem_dict,
    problem_severity,
)
from geo_service.routing import seed_units
from geo_service.settings import LayoutLimitSettings, PlanningSettings
from geo_service.store import versions as store

MAX_LABEL = 200
MAX_CODE = 32  # version_areas.code
# problems no draft is stored with: the grid edits and renumbering cannot fix them
_ALWAYS_REFUSED = frozenset(
    {
        "invalid_geometry",
        "duplicate_code",
        "unknown_level",
        "unexpected_parent",
        "missing_parent",
        "unknown_parent",
        "wrong_parent_level",
    }
)


@dataclass(frozen=True)
class StoredArea:
    """One member of a version, as stored: its row id, fields, attributes and geometry."""

    area_id: int
    code: str
    name: str
    level: str
    parent_code: str
    households: int | None
    population: int | None
    attributes: dict[str, Any]
    geom: BaseGeometry

    def record(self, **changes: Any) -> dict[str, Any]:
        """The fields of this area (with ``changes``) as a record for :func:`swap_areas`."""
        rec = {
            "code": self.code,
            "name": self.name,
            "level": self.level,
            "parent_code": self.parent_code,
            "households": self.households,
            "population": self.population,
            **self.attributes,
            "geometry": self.geom,
        }
        rec.update(changes)
        return rec


@dataclass(frozen=True)
class DraftCreated:
    """What an upload stored: the draft, its counts per level and its validation summary."""

    version: VersionInfo
    counts: dict[str, int]
    new_areas: int
    shared_areas: int
    errors: int
    warnings: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.version.id,
            "label": self.version.label,
            "status": self.version.status,
            "counts": self.counts,
            "new_areas": self.new_areas,
            "shared_areas": self.shared_areas,
            "errors": self.errors,
            "warnings": self.warnings,
            "validation": f"/v1/boundaries/versions/{self.version.id}/validation",
        }


def check_label(label: str | None) -> str:
    """A version label, stripped; 422 naming the problem when it is missing or too long."""
    value = (label or "").strip()
    if not value:
        raise InvalidInput("a version label is required (form field 'label')")
    if len(value) > MAX_LABEL:
        raise InvalidInput(f"label has {len(value)} characters, over {MAX_LABEL}")
    return value


def storable(problem: Problem, level_of: dict[str, str]) -> bool:
    """Whether a draft may be stored with ``problem``: grid faults the edits can fix.

    Broken geometry, duplicate codes and a broken hierarchy are refused, as is any fault above
    grid level (the API edits grids only) and a code too long to store.
    """
    if problem.kind in _ALWAYS_REFUSED:
        return False
    first = problem.codes[0] if problem.codes else ""
    if problem.kind in ("malformed_code", "code_not_under_parent"):
        return level_of.get(first) == "grid" and len(first) <= MAX_CODE
    if problem.kind in ("outside_parent", "overlap"):
        return level_of.get(first) == "grid"
    if problem.kind == "gap":
        return level_of.get(first) == "community"
    return True


def create_draft(
    engine: Engine,
    path: Path,
    label: str,
    crs: str | None,
    source: str,
    limits: PlanningSettings,
    layout_limits: LayoutLimitSettings | None = None,
    *,
    principal: Principal | None = None,
) -> DraftCreated:
    """Read ``path`` and store it as a draft; refuse (422, every problem listed) what cannot be.

    A layout whose only faults are grid-level ones (gaps, overlaps, outside parts, size limits,
    codes) is stored, so the planner can see them in the validation report and fix them grid by
    grid; nothing is repaired silently. One transaction: a refused upload writes nothing.
    """
    label = check_label(label)
    layout = read_layout(path, crs=crs, limits=layout_limits)
    frame = layout.frame
    level_of = dict(zip(frame["code"], frame["level"], strict=True))
    problems = layout_problems(frame, limits)
    refused = [p for p in problems if not storable(p, level_of)]
    if refused:
        kinds = sorted({p.kind for p in refused})
        raise BoundaryValidationFailed(
            f"layout refused: {len(refused)} problem(s) a draft cannot be stored with "
            f"({', '.join(kinds)}); first: {refused[0].message}",
            details=[problem_dict(p) for p in refused],
        )
    with engine.begin() as conn:
        vid, new, shared = write_version(
            conn, frame, label, source, layout.source_crs, principal=principal
        )
        seed_units(conn, vid, principal=principal)
        info = versions.get_version(conn, vid)
    counts = {str(k): int(v) for k, v in frame["level"].value_counts().items()}
    errors = sum(problem_severity(p) == "error" for p in problems)
    return DraftCreated(info, counts, new, shared, errors, len(problems) - errors)


def lock_draft(conn: Connection, version_id: int) -> VersionInfo:
    """Lock version ``version_id`` for an edit (row lock, to commit); 409 unless it is a draft.

    Publishing code should take the same lock before validating, so no edit slips in between.
    """
    info = store.by_id(conn, version_id, for_update=True)
    if info is None:
        raise NotFound(f"no boundary version {version_id}")
    if info.status != "draft":
        raise Conflict(
            f"version {info.label!r} is {info.status}: only a draft can be edited "
            "(upload or copy a layout into a new draft)"
        )
    return info


def members(
    conn: Connection,
    version_id: int,
    *,
    codes: list[str] | None = None,
    level: str | None = None,
    parent_code: str | None = None,
    within: tuple[float, float, float, float] | None = None,
) -> list[StoredArea]:
    """Areas of a version, filtered by codes, level, parent and a lon/lat box they touch;
    ordered by code."""
    rows = store.areas_of(
        conn,
        version_id,
        codes=codes,
        levels=(level,) if level is not None else None,
        parent_code=parent_code,
        within=within,
    )
    return [
        StoredArea(
            int(r.area_id),
            r.code,
            r.name,
            r.level,
            r.parent_code or "",
            r.households,
            r.population,
            dict(r.attributes or {}),
            shapely.from_wkb(bytes(r.wkb)),
        )
        for r in rows
    ]


def grid(conn: Connection, version_id: int, code: str) -> StoredArea:
    """The grid ``code`` of a version: 404 when the version has no such area, 422 for another
    level."""
    found = members(conn, version_id, codes=[code])
    if not found:
        raise NotFound(f"version {version_id} has no area {code!r}")
    if found[0].level != "grid":
        raise InvalidInput(f"{code!r} is a {found[0].level}, not a grid: only grids are edited")
    return found[0]


def layout_frame(records: list[dict[str, Any]]) -> gpd.GeoDataFrame:
    """A WGS84 layout frame of ``records`` (layout columns, attributes as extra keys and a
    ``geometry``), as :func:`geo_service.store.versions.add_areas` takes it."""
    data = pd.DataFrame(
        [{k: v for k, v in r.items() if k != "geometry"} for r in records], dtype=object
    )
    return gpd.GeoDataFrame(data, geometry=[r["geometry"] for r in records], crs="EPSG:4326")


def swap_areas(
    conn: Connection,
    version_id: int,
    old: list[StoredArea],
    records: list[dict[str, Any]],
    *,
    principal: Principal | None = None,
) -> list[int]:
    """Replace members ``old`` of a draft by ``records``; return the new members' row ids.

    Only the draft's membership changes: the old rows stay as they are for every other version.
    A code already held by another member is a 409, checked before anything is written.
    """
    leaving = {a.code for a in old}
    arriving = [str(r["code"]) for r in records]
    if len(set(arriving)) != len(arriving):
        raise Conflict(f"codes {sorted(arriving)} repeat: each area needs its own code")
    clash = store.codes_taken(conn, version_id, arriving, sorted(leaving))
    if clash:
        raise Conflict(f"version {version_id} already has area(s) {', '.join(clash)}")
    for r in records:
        if r["level"] not in LEVELS:
            raise InvalidInput(f"unknown level {r['level']!r}")
    store.unlink(conn, version_id, [a.area_id for a in old])
    ids = store.add_areas(conn, version_id, layout_frame(records)).ids if records else []
    seed_units(conn, version_id, principal=principal)  # units for the new codes (idempotent)
    return ids


def copy_draft(
    conn: Connection, base_id: int, label: str, *, principal: Principal | None = None
) -> VersionInfo:
    """A new draft holding every area of version ``base_id`` as it is (the same stored rows):
    where a planner starts editing the version in force. 404 for no such version, 409 when the
    label is taken."""
    label = check_label(label)
    base = versions.get_version(conn, int(base_id))
    frame = versions.load_areas(conn, base.id)
    if len(frame) == 0:
        raise InvalidInput(f"version {base.label!r} holds no areas to copy")
    vid = store_layout(conn, frame, label, f"copy of {base.label}", principal=principal)
    return versions.get_version(conn, vid)


MAX_FEATURES = 5000  # areas in one GeoJSON answer


def areas_geojson(
    conn: Connection,
    version_id: int,
    level: str,
    *,
    within: tuple[float, float, float, float] | None = None,
    parent_code: str | None = None,
) -> dict[str, Any]:
    """The ``level`` areas of a version as a GeoJSON FeatureCollection (exact WGS84), those
    touching ``within`` or under ``parent_code``; 404 for no such version, 422 over
    :data:`MAX_FEATURES` (zoom in)."""
    info = versions.get_version(conn, int(version_id))
    found = members(conn, int(version_id), level=level, within=within, parent_code=parent_code)
    if len(found) > MAX_FEATURES:
        raise InvalidInput(
            f"{len(found)} {level} areas match, over {MAX_FEATURES}: narrow the bbox or parent")
    features = [
        {
            "type": "Feature",
            "id": a.area_id,
            "geometry": mapping(a.geom),
            "properties": {
                "code": a.code, "name": a.name, "level": a.level, "parent_code": a.parent_code,
                "households": a.households, "population": a.population,
                **{k: v for k, v in a.attributes.items() if k not in ("geometry",)},
            },
        }
        for a in found
    ]
    return {"type": "FeatureCollection", "version": info.as_dict(), "features": features}


def in_force_extent(conn: Connection) -> tuple[float, float, float, float] | None:
    """The lon/lat box of the version in force (else of the newest version), None without any:
    where the planner's map opens."""
    listed = versions.list_versions(conn)
    if not listed:
        return None
    try:
        chosen = versions.version_in_force(conn)
    except NoBoundaryVersion:
        chosen = listed[0]
    assert chosen.id is not None
    return store.extent(conn, chosen.id)
