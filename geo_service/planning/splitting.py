"""Split one grid into ``k`` parts of equal workload with straight parallel cuts.

Workload inside a grid is its reports (points) plus its households, spread evenly over its area
(households are only known per grid). Cuts run across the grid's long axis (the long side of
its minimum rotated rectangle, in local metres) and are placed by bisection where the share of
workload behind them reaches 1/k, 2/k ...; if a part would come out in several pieces (a
concave grid), the short axis is tried, and failing that the grid is not split. Straight cuts
keep the parts easy for a planner to read and edit; the cutting itself happens in lon/lat on
the stored polygon, so the grid's outer boundary, shared with its neighbours, is kept exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely
from pyproj import Transformer
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

from geo_service.metric import project

FloatArray = npt.NDArray[np.float64]
_BISECTIONS = 40
_MARGIN_M = 50.0


@dataclass(frozen=True)
class Split:
    """The parts of a split (lon/lat polygons) and each part's share of the grid's area."""

    parts: list[BaseGeometry]
    area_share: FloatArray


def _axes(poly_m: BaseGeometry) -> list[FloatArray]:
    """Unit vectors along the long and the short side of the minimum rotated rectangle."""
    ring = np.asarray(shapely.get_coordinates(shapely.minimum_rotated_rectangle(poly_m)))
    sides = np.diff(ring[:3], axis=0)
    lengths = np.hypot(sides[:, 0], sides[:, 1])
    if lengths.min() <= 0:
        return [np.array([1.0, 0.0]), np.array([0.0, 1.0])]
    long_ = sides[int(np.argmax(lengths))] / lengths.max()
    return [long_, np.array([-long_[1], long_[0]])]


def _band(a: FloatArray, b: FloatArray, t0: float, t1: float, v0: float, v1: float) -> Polygon:
    """The metric rectangle ``t0 <= u <= t1``, ``v0 <= v <= v1`` in axis coordinates (u, v)."""
    corners = [t0 * a + v0 * b, t1 * a + v0 * b, t1 * a + v1 * b, t0 * a + v1 * b]
    return Polygon(corners)


def cuts(
    poly_m: BaseGeometry, axis: FloatArray, u_points: FloatArray, report_share: float, k: int
) -> list[float]:
    """Positions ``u`` along ``axis`` where 1/k, 2/k ... of the workload lies behind the cut.

    ``report_share`` is the part of the grid's workload its reports make (the rest is
    households, by area); with no reports the cuts split the area evenly.
    """
    normal = np.array([-axis[1], axis[0]])
    xy = np.asarray(shapely.get_coordinates(poly_m))
    u, v = xy @ axis, xy @ normal
    u0, u1 = float(u.min()), float(u.max())
    v0, v1 = float(v.min()) - _MARGIN_M, float(v.max()) + _MARGIN_M
    total = float(shapely.area(poly_m))
    pts = np.sort(u_points)
    share = report_share if len(pts) else 0.0

    def behind(t: float) -> float:
        area = shapely.area(shapely.intersection(poly_m, _band(axis, normal, u0 - 1, t, v0, v1)))
        reports = np.searchsorted(pts, t) / len(pts) if len(pts) else 0.0
        return float(share * reports + (1 - share) * area / total)

    out = []
    lo = u0
    for i in range(1, k):
        target, a, b = i / k, lo, u1
        for _ in range(_BISECTIONS):
            mid = (a + b) / 2
            if behind(mid) < target:
                a = mid
            else:
                b = mid
        out.append((a + b) / 2)
        lo = out[-1]
    return out


def split_polygon(
    geom: BaseGeometry,
    k: int,
    to_metric: Transformer,
    lons: FloatArray,
    lats: FloatArray,
    report_share: float,
    min_area_m2: float = 0.0,
) -> Split | None:
    """``geom`` (lon/lat) cut into ``k`` single-polygon parts of equal workload, or None.

    ``lons``/``lats`` are the grid's reports. None when neither axis gives ``k`` single
    polygons each of at least ``min_area_m2``.
    """
    poly_m = project(np.array([geom], dtype=object), to_metric)[0]
    total = float(shapely.area(poly_m))
    px, py = to_metric.transform(np.asarray(lons, dtype=float), np.asarray(lats, dtype=float))
    pts_m = np.column_stack([np.asarray(px), np.asarray(py)]).reshape(-1, 2)
    for axis in _axes(poly_m):
        normal = np.array([-axis[1], axis[0]])
        positions = cuts(poly_m, axis, pts_m @ axis, report_share, k)
        xy = np.asarray(shapely.get_coordinates(poly_m))
        u, v = xy @ axis, xy @ normal
        edges = [float(u.min()) - _MARGIN_M, *positions, float(u.max()) + _MARGIN_M]
        v0, v1 = float(v.min()) - _MARGIN_M, float(v.max()) + _MARGIN_M
        # each cut line's two ends, back in lon/lat once, so neighbouring parts share them
        ends = [
            _to_lonlat(to_metric, [e * axis + v0 * normal, e * axis + v1 * normal]) for e in edges
        ]
        parts = []
        for i in range(k):
            band = Polygon([ends[i][0], ends[i + 1][0], ends[i + 1][1], ends[i][1]])
            polys = [
                p
                for p in shapely.get_parts(shapely.intersection(geom, band))
                if p.geom_type == "Polygon" and not p.is_empty
            ]
            if len(polys) != 1:
                break
            parts.append(polys[0])
        if len(parts) != k:
            continue
        areas = np.asarray(shapely.area(project(np.array(parts), to_metric)), dtype=np.float64)
        if areas.min() < min_area_m2:
            continue
        return Split(parts, areas / total)
    return None


def _to_lonlat(to_metric: Transformer, points: list[FloatArray]) -> list[tuple[float, float]]:
    xs = np.array([p[0] for p in points])
    ys = np.array([p[1] for p in points])
    lon, lat = to_metric.transform(xs, ys, direction="INVERSE")
    return [
        (float(x), float(y)) for x, y in zip(np.atleast_1d(lon), np.atleast_1d(lat), strict=True)
    ]
