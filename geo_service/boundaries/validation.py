"""Validate a layout before anything is written: every problem at once, with where it is.

Nothing is repaired: a problem names the feature code(s), what is wrong, a lon/lat location and,
for overlaps, gaps and outside parts, the area in m² and the offending geometry (WGS84).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from geo_service.boundaries.codes import LEVELS, is_valid_code, parent_level
from geo_service.metric import lonlat_area_m2

DEFAULT_TOLERANCE_M2 = 1.0
_REASON_XY = re.compile(r"\[([-\d.eE+]+)\s+([-\d.eE+]+)\]")


@dataclass
class Problem:
    """One thing wrong with a layout."""

    kind: str
    message: str
    codes: list[str]
    location: tuple[float, float] | None = None
    area_m2: float | None = None
    geometry: BaseGeometry | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "message": self.message,
            "codes": self.codes,
            "location": list(self.location) if self.location else None,
            "area_m2": None if self.area_m2 is None else round(self.area_m2, 3),
        }


def _point_of(geom: BaseGeometry) -> tuple[float, float]:
    x, y = shapely.get_coordinates(shapely.point_on_surface(geom))[0]
    return (round(float(x), 8), round(float(y), 8))


def validate_layout(
    frame: gpd.GeoDataFrame, tolerance_m2: float = DEFAULT_TOLERANCE_M2
) -> list[Problem]:
    """All problems of ``frame`` (WGS84, columns code/name/level/parent_code/geometry)."""
    problems: list[Problem] = []
    codes = frame["code"].to_numpy(dtype=object)
    levels = frame["level"].to_numpy(dtype=object)
    parents = frame["parent_code"].to_numpy(dtype=object)
    geoms = frame.geometry.to_numpy()

    for code in sorted(set(frame.loc[frame["code"].duplicated(), "code"])):
        problems.append(Problem("duplicate_code", f"code {code!r} is used more than once", [code]))
    for i in map(int, np.flatnonzero(~np.isin(levels, LEVELS))):
        problems.append(
            Problem(
                "unknown_level",
                f"{codes[i]!r} has level {levels[i]!r}: use one of {', '.join(LEVELS)}",
                [codes[i]],
            )
        )
    for i in range(len(frame)):
        if levels[i] in LEVELS and not is_valid_code(codes[i], levels[i]):
            problems.append(
                Problem(
                    "malformed_code",
                    f"{codes[i]!r} is not a {levels[i]} code of the national pattern "
                    "(6-digit county + 3 town + 3 community + 3 grid digits)",
                    [codes[i]],
                )
            )

    valid = shapely.is_valid(geoms)
    for i in map(int, np.flatnonzero(~valid)):
        reason = shapely.is_valid_reason(geoms[i])
        m = _REASON_XY.search(reason)
        loc = (float(m.group(1)), float(m.group(2))) if m else None
        problems.append(
            Problem("invalid_geometry", f"{codes[i]!r}: {reason}", [codes[i]], location=loc)
        )

    row_of = {c: i for i, c in enumerate(codes)}
    for i in range(len(frame)):
        lvl, parent = levels[i], parents[i]
        if lvl not in LEVELS:
            continue
        expected = parent_level(lvl)
        if expected is None:
            if parent:
                problems.append(
                    Problem(
                        "unexpected_parent",
                        f"{codes[i]!r} is a {lvl} and cannot have a parent",
                        [codes[i]],
                    )
                )
            continue
        if not parent:
            problems.append(
                Problem("missing_parent", f"{codes[i]!r} ({lvl}) has no parent_code", [codes[i]])
            )
        elif parent not in row_of:
            problems.append(
                Problem(
                    "unknown_parent",
                    f"{codes[i]!r} names parent {parent!r}, not in the layout",
                    [codes[i], parent],
                )
            )
        elif levels[row_of[parent]] != expected:
            problems.append(
                Problem(
                    "wrong_parent_level",
                    f"{codes[i]!r} ({lvl}) has parent {parent!r} of level "
                    f"{levels[row_of[parent]]!r}, expected {expected!r}",
                    [codes[i], parent],
                )
            )
        elif not str(codes[i]).startswith(str(parent)):
            problems.append(
                Problem(
                    "code_not_under_parent",
                    f"{codes[i]!r} does not extend its parent's code {parent!r}",
                    [codes[i], parent],
                )
            )

    usable = valid & np.isin(levels, LEVELS)
    if usable.sum() > 0:
        problems.extend(_topology(frame, usable, row_of, tolerance_m2))
    return problems


def _topology(
    frame: gpd.GeoDataFrame, usable: np.ndarray, row_of: dict[str, int], tolerance_m2: float
) -> list[Problem]:
    """Children outside their parent, overlaps and gaps between siblings, over the tolerance.

    Set operations run on the stored lon/lat geometry, the plane PostGIS answers in, and the
    resulting pieces are measured in that plane too (:func:`lonlat_area_m2`), so a vertex
    added on a straight shared edge is no sliver.
    """
    problems: list[Problem] = []
    codes = frame["code"].to_numpy(dtype=object)
    parents = frame["parent_code"].to_numpy(dtype=object)
    levels = frame["level"].to_numpy(dtype=object)
    geoms = frame.geometry.to_numpy()
    area_m2 = lonlat_area_m2

    def problem(kind: str, msg: str, cs: list[str], piece: BaseGeometry, area: float) -> Problem:
        return Problem(kind, msg, cs, location=_point_of(piece), area_m2=area, geometry=piece)

    has_parent = np.array([bool(usable[i]) and parents[i] in row_of
                           and bool(usable[row_of[parents[i]]]) for i in range(len(frame))])
    # children outside their parent
    kids = np.flatnonzero(has_parent)
    if len(kids):
        outside = shapely.difference(geoms[kids],
                                     geoms[[row_of[parents[i]] for i in kids]])
        areas = area_m2(outside)
        for k in np.flatnonzero(areas > tolerance_m2):
            i = int(kids[k])
            problems.append(problem(
                "outside_parent",
                f"{codes[i]!r} extends {areas[k]:.1f} m² outside its parent {parents[i]!r}",
                [codes[i], parents[i]], outside[k], float(areas[k])))
    # overlaps between siblings
    idx = np.flatnonzero(usable)
    tree = shapely.STRtree(geoms[idx])
    left, right = tree.query(geoms[idx], predicate="intersects")
    a, b = idx[left], idx[right]
    keep = (a < b) & (parents[a] == parents[b]) & (levels[a] == levels[b])
    a, b = a[keep], b[keep]
    if len(a):
        inter = shapely.intersection(geoms[a], geoms[b])
        areas = area_m2(inter)
        for k in np.flatnonzero(areas > tolerance_m2):
            i, j = int(a[k]), int(b[k])
            problems.append(problem(
                "overlap", f"{codes[i]!r} and {codes[j]!r} overlap by {areas[k]:.1f} m²",
                sorted([codes[i], codes[j]]), inter[k], float(areas[k])))
    # gaps: parts of a parent covered by none of its children
    children: dict[str, list[int]] = {}
    for i in map(int, kids):
        children.setdefault(parents[i], []).append(i)
    for parent, members in sorted(children.items()):
        uncovered = shapely.difference(geoms[row_of[parent]], shapely.union_all(geoms[members]))
        pieces = shapely.get_parts(uncovered)
        if len(pieces) == 0:
            continue
        areas = area_m2(pieces)
        for k in np.flatnonzero(areas > tolerance_m2):
            problems.append(problem(
                "gap", f"{areas[k]:.1f} m² of {parent!r} is in none of its children",
                [parent], pieces[k], float(areas[k])))
    return problems
