"""Validation report of a boundary version: every problem with where it is, as JSON or GeoJSON.

The checks are the importer's (:func:`geo_service.boundaries.validation.validate_layout`:
invalid polygons, codes, hierarchy, children outside their parent, overlaps and gaps between
siblings) plus the planner's limits (grid area and households, from :class:`PlanningSettings`)
and the numbering order. Errors block publishing (:func:`validation_errors`); a warning does
not: codes out of reading order, which renumbering cannot always cure because unchanged grids
keep their codes.
"""

from __future__ import annotations

from collections.abc import Mapping
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
from geo_service.errors import Conflict
from geo_service.locator.locator import VersionInfo
from geo_service.metric import local_metric, project
from geo_service.planning.numbering import middle_latitude, reading_sequence
from geo_service.settings import PlanningSettings

Severity = Literal["error", "warning"]
WARNING_KINDS = frozenset({"code_order"})
_LISTED = 10  # codes named in a code-order message


def severity(kind: str) -> Severity:
    """``"warning"`` for problems that do not block publishing, ``"error"`` for the rest."""
    return "warning" if kind in WARNING_KINDS else "error"


def problem_dict(problem: Problem, geometry: BaseGeometry | None = None) -> dict[str, Any]:
    """JSON form of a problem with its severity (and a GeoJSON geometry when given)."""
    out = {**problem.as_dict(), "severity": severity(problem.kind)}
    if geometry is not None:
        out["geometry"] = mapping(geometry)
    return out


def _point(geom: BaseGeometry) -> tuple[float, float]:
    p = shapely.point_on_surface(geom)
    return (round(float(p.x), 8), round(float(p.y), 8))


def _usable_grids(frame: gpd.GeoDataFrame) -> np.ndarray:
    """Mask of grids whose geometry is valid, non-empty polygonal: the ones that can be measured."""
    geoms = frame.geometry.to_numpy()
    return (
        (frame["level"].to_numpy() == "grid")
        & shapely.is_valid(geoms)
        & ~shapely.is_empty(geoms)
        & (shapely.area(geoms) > 0)
    )


def size_problems(frame: gpd.GeoDataFrame, limits: PlanningSettings) -> list[Problem]:
    """Grids under or over the area limits, or holding more households than allowed."""
    problems: list[Problem] = []
    ix = np.flatnonzero(_usable_grids(frame))
    if len(ix) == 0:
        return problems
    codes = frame["code"].to_numpy(dtype=object)[ix]
    geoms = frame.geometry.to_numpy()[ix]
    areas = np.asarray(shapely.area(project(geoms, local_metric(frame.total_bounds))))
    for code, geom, area in zip(codes, geoms, areas, strict=True):
        if area < limits.grid_min_m2:
            problems.append(Problem(
                "grid_too_small",
                f"grid {code!r} covers {area:.0f} m², under the minimum of "
                f"{limits.grid_min_m2:.0f} m²", [code], _point(geom), float(area), geom))
        elif area > limits.grid_max_m2:
            problems.append(Problem(
                "grid_too_large",
                f"grid {code!r} covers {area:.0f} m², over the maximum of "
                f"{limits.grid_max_m2:.0f} m²", [code], _point(geom), float(area), geom))
    if "households" in frame.columns:
        households = pd.to_numeric(frame["households"], errors="coerce").to_numpy()[ix]
        for k in np.flatnonzero(households > limits.grid_max_households):
            problems.append(Problem(
                "too_many_households",
                f"grid {codes[k]!r} holds {int(households[k])} households, over the maximum of "
                f"{limits.grid_max_households}", [codes[k]], _point(geoms[k]),
                float(areas[k]), geoms[k]))
    return problems


def order_problems(frame: gpd.GeoDataFrame) -> list[Problem]:
    """Communities whose grid codes do not follow north→south, west→east reading order."""
    problems: list[Problem] = []
    codes = frame["code"].to_numpy(dtype=object)
    parents = frame["parent_code"].to_numpy(dtype=object)
    well_coded = np.array(
        [is_valid_code(c, "grid") and str(c).startswith(str(p)) for c, p in zip(codes, parents,
                                                                               strict=True)],
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


def layout_problems(frame: gpd.GeoDataFrame, limits: PlanningSettings) -> list[Problem]:
    """Every problem of a layout frame (WGS84; code, name, level, parent_code, geometry)."""
    return [
        *validate_layout(frame, limits.tolerance_m2),
        *size_problems(frame, limits),
        *order_problems(frame),
    ]


@dataclass
class ValidationReport:
    """The problems of one version, and the geometry of its areas to draw the code-only ones."""

    version: VersionInfo
    problems: list[Problem]
    area_geoms: Mapping[str, BaseGeometry] = field(default_factory=dict, repr=False)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if severity(p.kind) == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if severity(p.kind) == "warning"]

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
                "properties": {**p.as_dict(), "severity": severity(p.kind)},
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
    return ValidationReport(info, layout_problems(frame, limits), geoms)


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
