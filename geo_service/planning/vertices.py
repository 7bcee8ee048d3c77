"""Topological editing of a draft: move a boundary vertex and every grid sharing it follows.

The vertex to move is the grid vertex nearest ``from`` within the snapping tolerance, else the
nearest point of a grid edge (inserted as a vertex). Every grid whose boundary passes through
it (a shared corner, or a neighbour's straight edge through a T-junction) gets the same new
coordinates, bit for bit, so no gap or overlap can open between them. ``to`` snaps to an existing
vertex, else an existing edge, of the grids around it. Before anything is stored the affected
communities are checked: every grid valid, no overlap, gap or part outside the community larger
than before (beyond ``tolerance_m2``); otherwise 422 naming the problem and where, and the draft
is unchanged. One transaction, the draft locked, only its membership relinked
(:func:`geo_service.planning.drafts.swap_areas`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Connection

from geo_service import audit
from geo_service.auth import Principal
from geo_service.errors import InvalidInput
from geo_service.metric import local_metric, project
from geo_service.planning.drafts import StoredArea, lock_draft, members, swap_areas
from geo_service.planning.edits import summary
from geo_service.planning.topology import (
    SAME_POINT_DEG,
    XY,
    Point,
    moved,
    nearest_on_segments,
    polygons,
)

MAX_TOLERANCE_M = 100.0
_M_PER_DEG_LAT = 110_574.0
_M_PER_DEG_LON = 111_320.0


@dataclass(frozen=True)
class Snap:
    """A point snapped to the layout: where it ended and to what (vertex, edge or nothing)."""

    point: Point
    to: str  # "vertex", "edge" or "free"


def _scale(lat: float) -> tuple[float, float]:
    """Metres per degree of longitude and latitude at ``lat`` (for snapping distances)."""
    return _M_PER_DEG_LON * math.cos(math.radians(lat)), _M_PER_DEG_LAT


def _rings(geom: BaseGeometry) -> list[XY]:
    polys = polygons(geom)
    out: list[XY] = []
    for p in polys:
        out.append(np.asarray(p.exterior.coords, dtype=np.float64)[:, :2])
        out.extend(np.asarray(r.coords, dtype=np.float64)[:, :2] for r in p.interiors)
    return out


def _segments(geoms: list[BaseGeometry]) -> tuple[XY, XY]:
    """Start and end points of every boundary segment of ``geoms``."""
    starts, ends = [], []
    for g in geoms:
        for ring in _rings(g):
            starts.append(ring[:-1])
            ends.append(ring[1:])
    if not starts:
        return np.empty((0, 2)), np.empty((0, 2))
    return np.vstack(starts), np.vstack(ends)


def snap(
    point: Point, geoms: list[BaseGeometry], tolerance_m: float, *, avoid: Point | None = None
) -> Snap:
    """``point`` snapped to the nearest vertex of ``geoms`` within ``tolerance_m``, else to the
    nearest point of an edge, else left free; vertices at ``avoid`` and edges ending there are
    not snapping targets (the vertex being moved)."""
    p = np.asarray(point, dtype=np.float64)
    k = _scale(point[1])
    a, b = _segments(geoms)
    if avoid is not None and len(a):
        v = np.asarray(avoid)
        keep = ~(np.all(np.abs(a - v) <= SAME_POINT_DEG, axis=1)
                 | np.all(np.abs(b - v) <= SAME_POINT_DEG, axis=1))
        a, b = a[keep], b[keep]
    if len(a) == 0:
        return Snap(point, "free")
    dist = np.hypot(*((a - p) * np.asarray(k)).T)
    i = int(np.argmin(dist))
    if dist[i] <= tolerance_m:
        return Snap((float(a[i, 0]), float(a[i, 1])), "vertex")
    near, dist = nearest_on_segments(p, a, b, k)
    i = int(np.argmin(dist))
    if dist[i] <= tolerance_m:
        return Snap((float(near[i, 0]), float(near[i, 1])), "edge")
    return Snap(point, "free")


@dataclass(frozen=True)
class Tiling:
    """How well a community's grids tile it, in m²: overlaps between grids (by pair), the gap
    left uncovered and the grids' area outside the community."""

    overlaps: dict[tuple[str, str], float]
    gap_m2: float
    outside_m2: float
    gap: BaseGeometry
    outside: BaseGeometry


def tiling(community: BaseGeometry, grids: dict[str, BaseGeometry]) -> Tiling:
    """Measure how ``grids`` (code → lon/lat polygon) tile ``community``."""
    codes = sorted(grids)
    to_m = local_metric(shapely.bounds(community))
    geoms = [grids[c] for c in codes]
    union = shapely.union_all(geoms)
    gap = shapely.difference(community, union)
    outside = shapely.difference(union, community)
    tree = shapely.STRtree(geoms)
    overlaps: dict[tuple[str, str], float] = {}
    left, right = tree.query(geoms, predicate="intersects")
    pairs = {(int(i), int(j)) for i, j in zip(left, right, strict=True) if i < j}
    for i, j in sorted(pairs):
        inter = shapely.intersection(geoms[i], geoms[j])
        area = float(shapely.area(project(np.array([inter], dtype=object), to_m))[0])
        if area > 0:
            overlaps[(codes[i], codes[j])] = area
    gap_m2, outside_m2 = (float(v) for v in
                          shapely.area(project(np.array([gap, outside], dtype=object), to_m)))
    return Tiling(overlaps, gap_m2, outside_m2, gap, outside)


def _where(geom: BaseGeometry) -> list[float]:
    p = shapely.point_on_surface(geom) if not geom.is_empty else shapely.Point(0, 0)
    return [round(float(p.x), 7), round(float(p.y), 7)]


def check_tiling(
    name: str, before: Tiling, after: Tiling, tolerance_m2: float
) -> None:
    """422 naming the first way ``after`` tiles community ``name`` worse than ``before``."""
    if after.gap_m2 > before.gap_m2 + tolerance_m2:
        raise InvalidInput(
            f"moving the vertex would open a gap of {after.gap_m2 - before.gap_m2:.1f} m² in "
            f"community {name!r} near {_where(after.gap)}: no grid would cover it")
    if after.outside_m2 > before.outside_m2 + tolerance_m2:
        raise InvalidInput(
            f"moving the vertex would push {after.outside_m2 - before.outside_m2:.1f} m² of "
            f"grid outside community {name!r} near {_where(after.outside)}")
    for pair, area in sorted(after.overlaps.items()):
        if area > before.overlaps.get(pair, 0.0) + tolerance_m2:
            raise InvalidInput(
                f"moving the vertex would make grids {pair[0]!r} and {pair[1]!r} overlap by "
                f"{area - before.overlaps.get(pair, 0.0):.1f} m²")


def _box(p: Point, metres: float) -> tuple[float, float, float, float]:
    kx, ky = _scale(p[1])
    dx, dy = metres / kx, metres / ky
    return (p[0] - dx, p[1] - dy, p[0] + dx, p[1] + dy)


def move_vertex(
    conn: Connection,
    version_id: int,
    source: Point,
    target: Point,
    tolerance_m: float,
    tolerance_m2: float,
    *,
    principal: Principal | None = None,
) -> dict[str, Any]:
    """Move the shared vertex nearest ``source`` to ``target`` in every grid of the draft that
    passes through it (see the module docstring); 422 when nothing is within ``tolerance_m``,
    when the vertex is on a community's boundary or when the move would break the tiling."""
    if not 0 <= tolerance_m <= MAX_TOLERANCE_M:
        raise InvalidInput(f"tolerance_m must be between 0 and {MAX_TOLERANCE_M:.0f} m")
    lock_draft(conn, version_id)
    reach = max(tolerance_m, 0.01)
    near_source = members(conn, version_id, level="grid", within=_box(source, reach))
    picked = snap(source, [g.geom for g in near_source], reach)
    if picked.to == "free":
        raise InvalidInput(
            f"no grid boundary within {tolerance_m:g} m of {list(source)}: pick a vertex or an "
            "edge of a grid")
    v = picked.point
    followers: list[tuple[StoredArea, BaseGeometry]] = []
    near_target = members(conn, version_id, level="grid", within=_box(target, reach))
    dest = snap(target, [g.geom for g in near_target], tolerance_m, avoid=v)
    if math.dist(dest.point, v) <= SAME_POINT_DEG:
        raise InvalidInput("the vertex would not move: 'to' snaps back onto it")
    for g in near_source:
        new = moved(g.geom, v, dest.point)
        if new is not None:
            followers.append((g, new))
    if not followers:
        raise InvalidInput(f"no grid passes through {list(v)}")
    for g, new in followers:
        if not shapely.is_valid(new):
            raise InvalidInput(
                f"moving the vertex would make grid {g.code!r} invalid "
                f"({shapely.is_valid_reason(new)}): move it less far")
    communities = sorted({g.parent_code for g, _ in followers})
    for code in communities:
        found = members(conn, version_id, codes=[code], level="community")
        if not found:
            continue
        community = found[0].geom
        if shapely.distance(shapely.boundary(community), shapely.Point(v)) <= SAME_POINT_DEG:
            raise InvalidInput(
                f"the vertex {list(v)} lies on the boundary of community {code!r}: community "
                "boundaries are not moved by grid edits")
        kids = {g.code: g.geom for g in members(conn, version_id, level="grid", parent_code=code)}
        after = {**kids, **{g.code: new for g, new in followers if g.parent_code == code}}
        check_tiling(code, tiling(community, kids), tiling(community, after), tolerance_m2)
    old = [g for g, _ in followers]
    records = [g.record(geometry=new) for g, new in followers]
    swap_areas(conn, version_id, old, records, principal=principal)
    what = {"from": list(v), "to": list(dest.point), "grids": [g.code for g in old]}
    audit.record(conn, "boundary.vertex_move", "boundary_version", version_id, principal, what)
    return {
        "version_id": version_id,
        "from": list(v),
        "to": list(dest.point),
        "snapped": {"from": picked.to, "to": dest.to},
        "grids": [summary(r) for r in records],
    }

