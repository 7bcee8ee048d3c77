"""Topology of lon/lat polygons for the grid edits: one vertex shared bit for bit by every
polygon through it. Move a vertex in all of them, or insert one into the polygons whose edge
passes through it, so neighbours never drift apart by float noise (no sliver gap, no overlap)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from geo_service.errors import InvalidInput

SAME_POINT_DEG = 1e-8  # about a millimetre: vertices this close are one vertex
Point = tuple[float, float]
XY = npt.NDArray[np.float64]


def polygons(geom: BaseGeometry) -> list[Polygon]:
    if isinstance(geom, MultiPolygon):
        return list(geom.geoms)
    if isinstance(geom, Polygon):
        return [geom]
    raise InvalidInput(f"a grid must be a polygon, not a {geom.geom_type}")


def nearest_on_segments(p: XY, a: XY, b: XY, k: tuple[float, float]) -> tuple[XY, XY]:
    """The nearest point of each segment ``a``-``b`` to ``p`` and its distance in metres
    (``k``: metres per degree in x and y)."""
    scale = np.asarray(k)
    am, bm, pm = a * scale, b * scale, p * scale
    d = bm - am
    length2 = np.einsum("ij,ij->i", d, d)
    t = np.where(length2 > 0, np.einsum("ij,ij->i", pm - am, d) / np.where(length2 > 0, length2, 1),
                 0.0)
    t = np.clip(t, 0.0, 1.0)
    near = a + t[:, None] * (b - a)
    return near, np.hypot(*((near - p) * scale).T)


def moved_ring(ring: XY, v: XY, dst: XY) -> XY | None:
    """``ring`` with its vertex at ``v`` moved to ``dst`` (inserted first when ``v`` lies on one
    of its edges); None when the ring does not pass through ``v``."""
    hit = np.all(np.abs(ring - v) <= SAME_POINT_DEG, axis=1)
    if hit.any():
        out = ring.copy()
        out[hit] = dst
        return out
    a, b = ring[:-1], ring[1:]
    near, _ = nearest_on_segments(v, a, b, (1.0, 1.0))
    gap = np.max(np.abs(near - v), axis=1)
    i = int(np.argmin(gap))
    if gap[i] > SAME_POINT_DEG:
        return None
    return np.vstack([ring[: i + 1], dst[None, :], ring[i + 1:]])


def moved(geom: BaseGeometry, v: Point, dst: Point) -> BaseGeometry | None:
    """``geom`` (Polygon or MultiPolygon) with the vertex ``v`` moved to ``dst``; None when its
    boundary does not pass through ``v``."""
    vv, dd = np.asarray(v), np.asarray(dst)
    polys = polygons(geom)
    changed = False
    out = []
    for p in polys:
        rings = [np.asarray(p.exterior.coords)[:, :2],
                 *(np.asarray(r.coords)[:, :2] for r in p.interiors)]
        new = []
        for ring in rings:
            m = moved_ring(ring, vv, dd)
            changed |= m is not None
            new.append(ring if m is None else m)
        out.append(Polygon(new[0], new[1:]))
    if not changed:
        return None
    return MultiPolygon(out) if isinstance(geom, MultiPolygon) else out[0]




def inserted(geom: BaseGeometry, point: Point) -> BaseGeometry | None:
    """``geom`` with ``point`` made a vertex of the edge it lies on (within
    :data:`SAME_POINT_DEG`); None when ``geom`` has it already or its boundary misses it."""
    xy = shapely.get_coordinates(geom)
    if np.all(np.abs(xy - np.asarray(point)) <= SAME_POINT_DEG, axis=1).any():
        return None
    return moved(geom, point, point)
