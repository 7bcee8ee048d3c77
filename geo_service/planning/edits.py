"""Grid-by-grid edits of a draft: replace a grid's geometry, split it by a line, merge two.

Every edit locks the draft, refuses anything but a draft (409), and changes only the draft's
membership (:func:`geo_service.planning.drafts.swap_areas`); stored area rows are never altered.
A replaced grid keeps its code; split pieces and merged grids take free numbers of their
community (:func:`geo_service.planning.renumber.codes_in_use`). Households and population of a
split grid are shared by area (largest remainder, so they add up); a merge adds them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry
from shapely.ops import split
from sqlalchemy import Connection

from geo_service import audit
from geo_service.auth import Principal
from geo_service.boundaries.reader import MAX_VERTICES_PER_FEATURE
from geo_service.coords import to_wgs84
from geo_service.errors import InvalidCoordinates, InvalidGeometry, InvalidInput, TooLarge
from geo_service.metric import local_metric, project
from geo_service.planning.drafts import StoredArea, grid, lock_draft, members, swap_areas
from geo_service.planning.numbering import free_grid_codes, middle_latitude, reading_sequence
from geo_service.planning.renumber import codes_in_use
from geo_service.planning.topology import SAME_POINT_DEG, inserted

POLYGONAL = ("Polygon", "MultiPolygon")
LINEAR = ("LineString", "MultiLineString")
MIN_SHARED_EDGE_M = 1.0  # neighbours share at least this much boundary
EDGE_TOLERANCE_M = 0.01  # boundaries this close count as one line (float noise of splits)


_DEPTH = {"LineString": 2, "MultiLineString": 3, "Polygon": 3, "MultiPolygon": 4}


def _positions(coords: Any, depth: int, what: str) -> list[tuple[float, float]]:
    """The (x, y) positions of GeoJSON ``coordinates`` nested ``depth`` deep, checked as read:
    numbers only, the right nesting, at most :data:`MAX_VERTICES_PER_FEATURE` of them."""
    out: list[tuple[float, float]] = []
    stack = [(coords, depth)]
    while stack:
        item, level = stack.pop()
        if not isinstance(item, list | tuple):
            raise InvalidGeometry(f"{what} is not a readable GeoJSON geometry: "
                                  f"expected an array, found {type(item).__name__}")
        if level == 1:
            if len(item) < 2 or not all(isinstance(v, int | float) and not isinstance(v, bool)
                                        for v in item):
                raise InvalidGeometry(f"{what} is not a readable GeoJSON geometry: position "
                                      f"{list(item)[:3]!r} is not [x, y]")
            out.append((float(item[0]), float(item[1])))
            if len(out) > MAX_VERTICES_PER_FEATURE:
                break
        else:
            stack.extend((child, level - 1) for child in item)
    return out


def geometry_from_geojson(
    obj: Mapping[str, Any] | None, crs: str | None, kinds: Sequence[str], what: str
) -> BaseGeometry:
    """A WGS84 shapely geometry from a GeoJSON geometry object in ``crs``, checked before GEOS
    works on it: type, vertex count, finite coordinates in range."""
    gtype = obj.get("type") if isinstance(obj, Mapping) else None
    if obj is None or gtype not in kinds:
        raise InvalidGeometry(
            f"{what} must be a GeoJSON {' or '.join(kinds)} geometry, not {gtype!r}"
        )
    points = _positions(obj.get("coordinates"), _DEPTH[str(gtype)], what)
    if len(points) > MAX_VERTICES_PER_FEATURE:
        raise TooLarge(f"{what} has {len(points)} vertices, over {MAX_VERTICES_PER_FEATURE}")
    if not np.isfinite(np.asarray(points, dtype=np.float64)).all():
        raise InvalidCoordinates(f"{what} has non-finite coordinates (NaN or infinity)")
    try:
        geom = shape(dict(obj))
    except (ValueError, TypeError, KeyError, IndexError, AttributeError,
            shapely.errors.ShapelyError) as exc:
        raise InvalidGeometry(f"{what} is not a readable GeoJSON {gtype}: {exc}") from exc
    if geom.is_empty:
        raise InvalidGeometry(f"{what} is empty")
    xy = shapely.get_coordinates(geom)
    x, y = to_wgs84(xy[:, 0], xy[:, 1], crs)  # checks lon/lat; WGS84/CGCS2000 kept as given
    return shapely.set_coordinates(geom, np.column_stack([x, y]))


def _valid_polygonal(geom: BaseGeometry, what: str) -> BaseGeometry:
    """``geom`` when it is a valid polygon or multipolygon; 422 naming the fault otherwise."""
    if not shapely.is_valid(geom):
        raise InvalidGeometry(f"{what} is not a valid polygon: {shapely.is_valid_reason(geom)}")
    return geom


def _editable(area: StoredArea) -> StoredArea:
    """``area`` when its stored geometry is valid; 422 asking to replace it first otherwise."""
    if not shapely.is_valid(area.geom):
        raise InvalidGeometry(
            f"grid {area.code!r} has an invalid stored geometry "
            f"({shapely.is_valid_reason(area.geom)}): replace it before splitting or merging"
        )
    return area


def area_m2(geom: BaseGeometry) -> float:
    """Area of a lon/lat geometry in m² (local equal-area projection)."""
    metric = project(np.array([geom], dtype=object), local_metric(shapely.bounds(geom)))
    return float(shapely.area(metric)[0])


def summary(record: Mapping[str, Any]) -> dict[str, Any]:
    """What the API says about an edited grid."""
    return {
        "code": record["code"],
        "name": record["name"],
        "parent_code": record["parent_code"],
        "households": record["households"],
        "area_m2": round(area_m2(record["geometry"]), 1),
    }


def _share(total: int | None, weights: np.ndarray) -> list[int | None]:
    """``total`` split in proportion to ``weights`` by largest remainder (sums to ``total``)."""
    if total is None:
        return [None] * len(weights)
    exact = total * weights / weights.sum()
    out = np.floor(exact).astype(int)
    for k in np.argsort(-(exact - out), kind="stable")[: total - int(out.sum())]:
        out[k] += 1
    return [int(v) for v in out]


def _add(a: int | None, b: int | None) -> int | None:
    return None if a is None and b is None else (a or 0) + (b or 0)


def replace_grid(
    conn: Connection,
    version_id: int,
    code: str,
    geom: BaseGeometry,
    households: int | None = None,
    *,
    principal: Principal | None = None,
) -> dict[str, Any]:
    """Give grid ``code`` of the draft a new geometry (and households, when given); audited
    as done by ``principal`` (None: the local account), as every edit here."""
    lock_draft(conn, version_id)
    old = grid(conn, version_id, code)
    geom = _valid_polygonal(geom, f"the new geometry of {code!r}")
    record = old.record(
        geometry=geom, households=old.households if households is None else households
    )
    swap_areas(conn, version_id, [old], [record], principal=principal)
    what = {"code": code, "households": record.get("households")}
    audit.record(conn, "boundary.grid_replace", "boundary_version", version_id, principal, what)
    return summary(record)


def split_grid(
    conn: Connection,
    version_id: int,
    code: str,
    line: BaseGeometry,
    *,
    principal: Principal | None = None,
) -> list[dict[str, Any]]:
    """Cut grid ``code`` of the draft along ``line``: every piece becomes a grid of the same
    community with a new code, numbered in reading order."""
    lock_draft(conn, version_id)
    old = _editable(grid(conn, version_id, code))
    pieces = [p for p in shapely.get_parts(split(old.geom, line)) if p.area > 0]
    # the pieces (and, below, their neighbours) share the crossing points bit for bit
    if len(pieces) < 2:
        raise InvalidInput(
            f"the line does not cut grid {code!r} in pieces: it must cross the grid from one "
            "edge to another"
        )
    order = reading_sequence(pieces, middle_latitude(shapely.bounds(old.geom)))
    pieces = [pieces[int(i)] for i in order]
    weights = np.array([area_m2(p) for p in pieces])
    codes = free_grid_codes(
        old.parent_code, codes_in_use(conn, version_id, old.parent_code) | {code}, len(pieces)
    )
    households, population = _share(old.households, weights), _share(old.population, weights)
    records = [
        old.record(code=c, name=f"{old.name}-{k}", geometry=p, households=h, population=n)
        for k, (c, p, h, n) in enumerate(
            zip(codes, pieces, households, population, strict=True), 1
        )
    ]
    swap_areas(conn, version_id, [old], records, principal=principal)
    stitch_neighbours(conn, version_id, old, pieces, principal=principal)
    what = {"code": code, "created": [str(r["code"]) for r in records]}
    audit.record(conn, "boundary.grid_split", "boundary_version", version_id, principal, what)
    return [summary(r) for r in records]


def stitch_neighbours(
    conn: Connection,
    version_id: int,
    old: StoredArea,
    pieces: Sequence[BaseGeometry],
    *,
    principal: Principal | None = None,
) -> list[str]:
    """Make the points where a split's line crossed grid ``old``'s boundary vertices of the
    neighbouring grids too (the same coordinates, bit for bit), so the pieces and their
    neighbours share every vertex: no sliver gap or overlap from float noise. The codes of the
    neighbours changed."""
    before = {tuple(c) for c in shapely.get_coordinates(old.geom).tolist()}
    boundary = shapely.boundary(old.geom)
    crossings = sorted(
        c for c in {tuple(c) for p in pieces for c in shapely.get_coordinates(p).tolist()}
        if c not in before and shapely.distance(boundary, shapely.Point(c)) <= SAME_POINT_DEG
    )
    if not crossings:
        return []
    minx, miny, maxx, maxy = shapely.bounds(old.geom)
    pad = 10 * SAME_POINT_DEG
    near = members(conn, version_id, level="grid", within=(minx - pad, miny - pad,
                                                           maxx + pad, maxy + pad))
    leaving, records = [], []
    for n in near:
        geom = n.geom
        for c in crossings:
            with_it = inserted(geom, (c[0], c[1]))
            geom = geom if with_it is None else with_it
        if geom is not n.geom:
            leaving.append(n)
            records.append(n.record(geometry=geom))
    if leaving:
        swap_areas(conn, version_id, leaving, records, principal=principal)
    return [n.code for n in leaving]


def shared_edge_m(a: BaseGeometry, b: BaseGeometry) -> float:
    """Length in metres of the boundary two polygons share (within :data:`EDGE_TOLERANCE_M`)."""
    to_m = local_metric(shapely.bounds(shapely.union(a, b)))
    am, bm = project(np.array([a, b], dtype=object), to_m)
    near = shapely.buffer(shapely.boundary(bm), EDGE_TOLERANCE_M)
    return float(shapely.length(shapely.intersection(shapely.boundary(am), near)))


def merge_grids(
    conn: Connection,
    version_id: int,
    codes: Sequence[str],
    *,
    principal: Principal | None = None,
) -> dict[str, Any]:
    """Merge two neighbouring grids of one community of the draft into one grid with a new code.

    The grids must share an edge (a corner is not enough). The merged grid takes the name and
    attributes of the lower code and the sum of their households and population.
    """
    if len(codes) != 2 or codes[0] == codes[1]:
        raise InvalidInput("merge takes two different grid codes")
    lock_draft(conn, version_id)
    first, second = sorted((_editable(grid(conn, version_id, c)) for c in codes),
                           key=lambda g: g.code)
    if first.parent_code != second.parent_code:
        raise InvalidInput(
            f"grids {first.code!r} (community {first.parent_code!r}) and {second.code!r} "
            f"(community {second.parent_code!r}) are in different communities: only grids of "
            "one community merge"
        )
    if shared_edge_m(first.geom, second.geom) < MIN_SHARED_EDGE_M:
        raise InvalidInput(
            f"grids {first.code!r} and {second.code!r} share no edge: only neighbours along a "
            "boundary line merge"
        )
    merged = _polygonal_union(first, second)
    taken = codes_in_use(conn, version_id, first.parent_code)
    (code,) = free_grid_codes(first.parent_code, taken, 1)
    record = first.record(
        code=code,
        geometry=merged,
        households=_add(first.households, second.households),
        population=_add(first.population, second.population),
    )
    swap_areas(conn, version_id, [first, second], [record], principal=principal)
    what = {"codes": [first.code, second.code], "created": [code]}
    audit.record(conn, "boundary.grids_merge", "boundary_version", version_id, principal, what)
    return summary(record)


def _polygonal_union(a: StoredArea, b: StoredArea) -> BaseGeometry:
    """The union of two grids, polygons only (slivers of line or point dropped), checked valid."""
    union = shapely.union(a.geom, b.geom)
    parts = [p for p in shapely.get_parts(union) if p.geom_type in POLYGONAL]
    merged = parts[0] if len(parts) == 1 else shapely.multipolygons(parts)
    return _valid_polygonal(merged, f"the union of {a.code!r} and {b.code!r}")


EDITABLE_ATTRIBUTES = ("grid_worker", "grid_leader", "area_class")


def edit_attributes(
    conn: Connection,
    version_id: int,
    code: str,
    changes: Mapping[str, Any],
    *,
    principal: Principal | None = None,
) -> dict[str, Any]:
    """Change grid ``code``'s name, households, population or attributes (grid worker, grid
    leader, area class) in the draft; the geometry and code stay. ``None`` clears an attribute;
    a key not given is kept."""
    lock_draft(conn, version_id)
    old = grid(conn, version_id, code)
    fields: dict[str, Any] = {}
    for key, value in changes.items():
        if key == "name" and (value is None or not str(value).strip()):
            raise InvalidInput("a grid needs a name")
        if key not in ("name", "households", "population", *EDITABLE_ATTRIBUTES):
            raise InvalidInput(f"{key!r} is not an editable grid attribute")
        fields[key] = value.strip() if isinstance(value, str) else value
    if not fields:
        raise InvalidInput("nothing to change: give name, households, population or an attribute")
    record = old.record(**fields)
    swap_areas(conn, version_id, [old], [record], principal=principal)
    audit.record(conn, "boundary.grid_attributes", "boundary_version", version_id, principal,
                 {"code": code, "changed": sorted(fields)})
    out = summary(record)
    out.update({k: record.get(k) for k in ("population", *EDITABLE_ATTRIBUTES)})
    return out
