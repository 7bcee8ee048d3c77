"""Validation report of a boundary version: every problem with where it is, as JSON or GeoJSON.

The checks are the importer's (:func:`geo_service.boundaries.validation.validate_layout`:
invalid polygons, codes, hierarchy, children outside their parent, overlaps and gaps between
siblings) plus the planner's size policy (area and households per level and area class, from
:class:`PlanningSettings`) and the numbering order. Errors block publishing
(:func:`validation_errors`); warnings do not: size limits (unless the policy makes them errors,
and never for an area unchanged from the version in force) and codes out of reading order
among the grids a renumber would number.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry import MultiPolygon, mapping
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Connection

from geo_service.boundaries import versions
from geo_service.boundaries.codes import is_valid_code
from geo_service.boundaries.validation import Problem, validate_layout
from geo_service.errors import Conflict, NoBoundaryVersion
from geo_service.locator.locator import VersionInfo
from geo_service.metric import local_metric, project
from geo_service.planning.numbering import carried_codes, middle_latitude, reading_sequence
from geo_service.settings import PlanningSettings
from geo_service.store import versions as store

Severity = Literal["error", "warning"]
_SIZE_SUFFIXES = ("_too_small", "_too_large")
WARNING_KINDS = frozenset({"code_order", "too_many_households"})
_LISTED = 10  # codes named in a code-order message


def is_size_kind(kind: str) -> bool:
    """Whether ``kind`` is a size or household limit (``grid_too_large``, …)."""
    return kind == "too_many_households" or kind.endswith(_SIZE_SUFFIXES)


def severity(kind: str) -> Severity:
    """``"warning"`` for problems that do not block publishing, ``"error"`` for the rest; size
    limits are warnings here, a :class:`SizeProblem` says when the policy makes one an error."""
    return "warning" if kind in WARNING_KINDS or is_size_kind(kind) else "error"


@dataclass
class SizeProblem(Problem):
    """An area over or under its size or household limit, with what the policy makes of it."""

    blocking: bool = False  # an error: the policy blocks on limits and the area was changed
    inherited: bool = False  # the area is unchanged from the version in force
    area_class: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "inherited": self.inherited, "area_class": self.area_class}


def problem_severity(problem: Problem) -> Severity:
    """The severity of one problem: a size problem is an error only when it blocks."""
    if isinstance(problem, SizeProblem):
        return "error" if problem.blocking else "warning"
    return severity(problem.kind)


def problem_dict(problem: Problem, geometry: BaseGeometry | None = None) -> dict[str, Any]:
    """JSON form of a problem with its severity (and a GeoJSON geometry when given)."""
    out = {**problem.as_dict(), "severity": problem_severity(problem)}
    if geometry is not None:
        out["geometry"] = mapping(geometry)
    return out


def _point(geom: BaseGeometry) -> tuple[float, float]:
    p = shapely.point_on_surface(geom)
    return (round(float(p.x), 8), round(float(p.y), 8))


def _usable(frame: gpd.GeoDataFrame, levels: set[str] | None = None) -> np.ndarray:
    """Mask of areas (grids unless ``levels``) whose geometry is valid, non-empty polygonal:
    the ones that can be measured."""
    geoms = frame.geometry.to_numpy()
    return (
        np.isin(frame["level"].to_numpy(dtype=object), sorted(levels or {"grid"}))
        & shapely.is_valid(geoms)
        & ~shapely.is_empty(geoms)
        & (shapely.area(geoms) > 0)
    )


def _usable_grids(frame: gpd.GeoDataFrame) -> np.ndarray:
    return _usable(frame)


def area_classes(frame: gpd.GeoDataFrame, attribute: str) -> dict[str, str]:
    """The class (e.g. urban / rural) of every area: its own ``attribute``, else its nearest
    ancestor's; areas with no class anywhere up the chain are left out."""
    if attribute not in frame.columns:
        return {}
    codes = frame["code"].to_numpy(dtype=object)
    parent_of = dict(zip(codes, frame["parent_code"].to_numpy(dtype=object), strict=True))
    own = {
        str(c): str(v).strip()
        for c, v in zip(codes, frame[attribute].to_numpy(dtype=object), strict=True)
        if isinstance(v, str) and v.strip()
    }
    out: dict[str, str] = {}
    for code in codes:
        seen, node = 0, code
        while node and seen < 8:  # four levels; a cycle cannot loop for ever
            if node in own:
                out[str(code)] = own[node]
                break
            node, seen = parent_of.get(node), seen + 1
    return out


def _class_note(area_class: str | None) -> str:
    return f" ({area_class})" if area_class else ""


def size_problems(
    frame: gpd.GeoDataFrame,
    limits: PlanningSettings,
    unchanged: AbstractSet[str] = frozenset(),
) -> list[Problem]:
    """Areas under or over their area limits, or holding more households than allowed.

    Limits come per level and area class (:meth:`PlanningSettings.limit_for`). A problem
    blocks publishing only when the policy says so (``size_limits_block``) and the area is not
    in ``unchanged`` (codes whose area the version in force holds as it is): a draft is judged
    on the areas it changes, not on what the layout in force already breaks.
    """
    problems: list[Problem] = []
    ix = np.flatnonzero(_usable(frame, limits.limited_levels()))
    if len(ix) == 0:
        return problems
    codes = frame["code"].to_numpy(dtype=object)[ix]
    levels = frame["level"].to_numpy(dtype=object)[ix]
    geoms = frame.geometry.to_numpy()[ix]
    areas = np.asarray(shapely.area(project(geoms, local_metric(frame.total_bounds))))
    households = (
        pd.to_numeric(frame["households"], errors="coerce").to_numpy()[ix]
        if "households" in frame.columns else np.full(len(ix), np.nan)
    )
    classes = area_classes(frame, limits.area_class_attribute)
    for code, level, geom, area, held in zip(codes, levels, geoms, areas, households,
                                             strict=True):
        cls = classes.get(str(code))
        limit = limits.limit_for(str(level), cls)
        inherited = str(code) in unchanged
        found: list[tuple[str, str]] = []
        if limit.min_m2 is not None and area < limit.min_m2:
            found.append((f"{level}_too_small",
                          f"{level} {code!r}{_class_note(cls)} covers {area:.0f} m², under the "
                          f"minimum of {limit.min_m2:.0f} m²"))
        elif limit.max_m2 is not None and area > limit.max_m2:
            found.append((f"{level}_too_large",
                          f"{level} {code!r}{_class_note(cls)} covers {area:.0f} m², over the "
                          f"maximum of {limit.max_m2:.0f} m²"))
        if limit.max_households is not None and np.isfinite(held) and held > limit.max_households:
            found.append(("too_many_households",
                          f"{level} {code!r}{_class_note(cls)} holds {int(held)} households, "
                          f"over the maximum of {limit.max_households}"))
        for kind, message in found:
            if inherited:
                message += " (unchanged from the version in force)"
            problems.append(SizeProblem(
                kind, message, [str(code)], _point(geom), float(area), geom,
                blocking=limits.size_limits_block and not inherited, inherited=inherited,
                area_class=cls))
    return problems


def order_problems(
    frame: gpd.GeoDataFrame, carried: AbstractSet[str] = frozenset()
) -> list[Problem]:
    """Communities whose grid codes do not follow north→south, west→east reading order.

    Grids in ``carried`` (codes the version in force gives to the same ground) are left out:
    renumbering keeps them, so only the grids it numbers are held to reading order.
    """
    problems: list[Problem] = []
    codes = frame["code"].to_numpy(dtype=object)
    parents = frame["parent_code"].to_numpy(dtype=object)
    well_coded = np.array(
        [is_valid_code(c, "grid") and str(c).startswith(str(p)) and c not in carried
         for c, p in zip(codes, parents, strict=True)],
        dtype=bool,
    )
    ix = np.flatnonzero(_usable_grids(frame) & well_coded)
    if len(ix) == 0:
        return problems
    latitude = middle_latitude(frame.total_bounds)
    geoms = frame.geometry.to_numpy()
    for parent in sorted(set(parents[ix])):
        kids = ix[parents[ix] == parent]
        in_reading = codes[kids][reading_sequence(geoms[kids], latitude)]
        expected = sorted(codes[kids])
        misplaced = [str(a) for a, e in zip(in_reading, expected, strict=True) if a != e]
        if not misplaced:
            continue
        shown = ", ".join(misplaced[:_LISTED]) + (" …" if len(misplaced) > _LISTED else "")
        where = MultiPolygon(
            list(shapely.get_parts(geoms[kids[np.isin(codes[kids], misplaced)]]))
        )
        problems.append(Problem(
            "code_order",
            f"grids of {parent!r} are not numbered north→south, west→east: {len(misplaced)} "
            f"out of place ({shown}); renumber the draft", misplaced, _point(where), None, where))
    return problems


def layout_problems(
    frame: gpd.GeoDataFrame,
    limits: PlanningSettings,
    *,
    unchanged: AbstractSet[str] = frozenset(),
    carried: AbstractSet[str] = frozenset(),
) -> list[Problem]:
    """Every problem of a layout frame (WGS84; code, name, level, parent_code, geometry);
    ``unchanged`` and ``carried`` as :func:`size_problems` and :func:`order_problems` take them."""
    return [
        *validate_layout(frame, limits.tolerance_m2),
        *size_problems(frame, limits, unchanged),
        *order_problems(frame, carried),
    ]


def compared_with_in_force(
    conn: Connection, version_id: int, frame: gpd.GeoDataFrame
) -> tuple[set[str], set[str]]:
    """Codes of version ``version_id``'s areas unchanged from the version in force (the same
    stored row under the same code) and grid codes carried over for the same ground; for the
    version in force itself, compared with the version it replaced; empty with no such base."""
    try:
        base: int | None = versions.version_in_force(conn).id
    except NoBoundaryVersion:
        return set(), set()
    if base == version_id:
        base = store.replaced_by(conn, version_id)
    if base is None or base == version_id or len(frame) == 0:
        return set(), set()
    before = versions.load_areas(conn, base, ("grid",))
    rows = store.areas_of(conn, base, geometry=False)
    held = {(int(r.area_id), r.code) for r in rows}
    unchanged = {
        str(c) for a, c in zip(frame["area_id"], frame["code"], strict=True)
        if (int(a), c) in held
    }
    grids = frame[frame["level"] == "grid"]
    carried = carried_codes(
        zip(grids["code"], grids["parent_code"], grids.geometry, strict=True),
        zip(before["code"], before["parent_code"], before.geometry, strict=True),
    )
    return unchanged, carried


@dataclass
class ValidationReport:
    """The problems of one version, and the geometry of its areas to draw the code-only ones."""

    version: VersionInfo
    problems: list[Problem]
    area_geoms: Mapping[str, BaseGeometry] = field(default_factory=dict, repr=False)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if problem_severity(p) == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if problem_severity(p) == "warning"]

    def geometry_of(self, problem: Problem) -> BaseGeometry | None:
        """The problem's own geometry, else its first area's, else its location point."""
        if problem.geometry is not None:
            return problem.geometry
        for code in problem.codes:
            if code in self.area_geoms:
                return self.area_geoms[code]
        return shapely.Point(problem.location) if problem.location else None

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON: validity, counts by kind, and every problem with its geometry."""
        kinds: dict[str, int] = {}
        for p in self.problems:
            kinds[p.kind] = kinds.get(p.kind, 0) + 1
        return {
            "version": self.version.as_dict(),
            "valid": not self.errors,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "kinds": kinds,
            "problems": [problem_dict(p, self.geometry_of(p)) for p in self.problems],
        }

    def as_geojson(self) -> dict[str, Any]:
        """The problems as a GeoJSON layer (WGS84), one feature per problem."""
        features = []
        for p in self.problems:
            geom = self.geometry_of(p)
            features.append({
                "type": "Feature",
                "geometry": mapping(geom) if geom is not None else None,
                "properties": {**p.as_dict(), "severity": problem_severity(p)},
            })
        return {"type": "FeatureCollection", "version": self.version.as_dict(),
                "features": features}


def validation_report(
    conn: Connection, version_id: int, limits: PlanningSettings | None = None
) -> ValidationReport:
    """Validate the stored areas of version ``version_id`` (404 when there is no such version)."""
    limits = limits or PlanningSettings()
    info = versions.get_version(conn, int(version_id))
    frame = versions.load_areas(conn, info.id)
    if len(frame) == 0:
        empty = Problem("empty_version", f"version {info.label!r} holds no areas", [])
        return ValidationReport(info, [empty])
    geoms = dict(zip(frame["code"], frame.geometry, strict=True))
    unchanged, carried = compared_with_in_force(conn, int(version_id), frame)
    problems = layout_problems(frame, limits, unchanged=unchanged, carried=carried)
    return ValidationReport(info, problems, geoms)


def validation_errors(
    conn: Connection, version_id: int, limits: PlanningSettings | None = None
) -> list[Problem]:
    """The problems of version ``version_id`` that forbid publishing it (empty: publishable)."""
    return validation_report(conn, version_id, limits).errors


def check_publishable(
    conn: Connection, version_id: int, limits: PlanningSettings | None = None
) -> None:
    """Raise :class:`Conflict` (409) listing every error when the version may not be published."""
    report = validation_report(conn, version_id, limits)
    if report.errors:
        message, details = refusal(report.version.label, report.errors)
        raise Conflict(message, details=details)


def refusal(label: str, errors: list[Problem]) -> tuple[str, list[dict[str, Any]]]:
    """The message and details that refuse publishing version ``label`` for its ``errors``."""
    kinds = sorted({p.kind for p in errors})
    message = (
        f"version {label!r} has {len(errors)} validation error(s) "
        f"({', '.join(kinds)}): fix them before publishing; first: {errors[0].message}"
    )
    return message, [problem_dict(p) for p in errors]
