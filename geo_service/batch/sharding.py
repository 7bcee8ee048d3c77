"""A sharded Locator for province-sized layouts: one Locator per district and a coarse router.

Why: a province has 10^5-10^6 grids; one cell index of all of them is gigabytes, and every
worker would hold it. Here each shard is the project's :class:`Locator` over one district's
grids (the shard key is the grid code's first 6 digits, its district), and a small uniform
**router** maps a point's coarse cell to the shards whose grids' bounding boxes touch that
cell. A worker loads only the shards its points are routed to.

Exactness is the Locator's: a point is tested in every shard its cell lists (a superset of the
shards with a grid covering it: a grid covering a point has the point inside its bounding box,
and the cell of a coordinate is computed by the same monotone float expression when the
router is built and when it is asked), and among the grids found the lowest code wins. Shards
are disjoint code ranges ordered by key (codes start with their shard's key), so "lowest code"
is "lowest (shard, local index)": no global code table is needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, cast

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd

from geo_service.boundaries.codes import CODE_LENGTH, Level
from geo_service.errors import InvalidInput
from geo_service.locator import Locator, VersionInfo
from geo_service.locator.index import DEFAULT_MAX_CELLS, M_PER_DEG_LAT, M_PER_DEG_LON_EQUATOR

IntArray = npt.NDArray[np.int32]
FloatArray = npt.NDArray[np.float64]
ObjectArray = npt.NDArray[np.object_]

SHARD_LEVEL: Final = "district"
ROUTER_CELLS: Final = 1 << 20  # 4 MB of router state at most
# A shard's cell index uses the Locator's own choice (the finest within 16 M cells) but no
# finer than this: a small town would otherwise get 2 m cells and a city's memory many times.
CELL_M_FLOOR: Final = 8.0
CODE_COLUMNS: Final = ("grid_code", "community_code", "town_code", "district_code")
LAYOUT_COLUMNS: Final = ("code", "name", "level", "parent_code")  # and the geometry
_NONE: Final = np.iinfo(np.int64).max


@dataclass(frozen=True, eq=False)
class Router:
    """Coarse uniform cells over the layout's extent → the shards that may own their points.

    ``state[cell]`` is the one shard (>= 0), none (-1), or ``-2 - j`` for the j-th cell with
    several shards, whose list is ``multi_shard[multi_start[j]:multi_start[j + 1]]``.
    """

    x0: float
    y0: float
    dx: float
    dy: float
    nx: int
    ny: int
    state: IntArray
    multi_start: npt.NDArray[np.int64]
    multi_shard: IntArray
    n_shards: int

    @classmethod
    def build(
        cls, bounds: FloatArray, shard_of: IntArray, n_shards: int, max_cells: int = ROUTER_CELLS
    ) -> Router:
        """From each grid's (minx, miny, maxx, maxy) and its shard number."""
        if len(bounds) == 0:
            raise InvalidInput("no grids to route to")
        minx, miny = float(bounds[:, 0].min()), float(bounds[:, 1].min())
        maxx, maxy = float(bounds[:, 2].max()), float(bounds[:, 3].max())
        coslat = max(math.cos(math.radians((miny + maxy) / 2)), 0.05)
        side = math.sqrt(max((maxx - minx) * coslat * (maxy - miny), 1e-12) / max_cells) * 1.01
        dx, dy = side / coslat, side
        nx = math.floor((maxx - minx) / dx) + 1
        ny = math.floor((maxy - miny) / dy) + 1
        ix0 = np.floor((bounds[:, 0] - minx) / dx).astype(np.int64)
        iy0 = np.floor((bounds[:, 1] - miny) / dy).astype(np.int64)
        ix1 = np.floor((bounds[:, 2] - minx) / dx).astype(np.int64)
        iy1 = np.floor((bounds[:, 3] - miny) / dy).astype(np.int64)
        width = ix1 - ix0 + 1
        counts = width * (iy1 - iy0 + 1)
        grid = np.repeat(np.arange(len(bounds)), counts)
        offset = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        cell = (iy0[grid] + offset // width[grid]) * nx + ix0[grid] + offset % width[grid]
        pairs = np.sort(cell * n_shards + shard_of.astype(np.int64)[grid])  # sort: no hashing
        pairs = pairs[np.r_[True, pairs[1:] != pairs[:-1]]]
        cells, shards = pairs // n_shards, (pairs % n_shards).astype(np.int32)
        first = np.flatnonzero(np.r_[True, cells[1:] != cells[:-1]])
        uniq = cells[first]
        per_cell = np.diff(np.r_[first, len(cells)])
        state = np.full(nx * ny, -1, dtype=np.int32)
        one = per_cell == 1
        state[uniq[one]] = shards[first[one]]
        many = np.flatnonzero(~one)
        state[uniq[many]] = (-2 - np.arange(len(many))).astype(np.int32)
        multi_start = np.zeros(len(many) + 1, dtype=np.int64)
        multi_start[1:] = np.cumsum(per_cell[many])
        lens = per_cell[many]
        within = np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens, lens)
        multi_shard = shards[np.repeat(first[many], lens) + within]
        return cls(minx, miny, dx, dy, nx, ny, state, multi_start, multi_shard, n_shards)

    def candidates(self, x: FloatArray, y: FloatArray) -> tuple[npt.NDArray[np.int64], IntArray]:
        """(point, shard) pairs: every shard whose grids may cover each point."""
        fx = np.floor((x - self.x0) / self.dx)
        fy = np.floor((y - self.y0) / self.dy)
        inside = (fx >= 0) & (fx < self.nx) & (fy >= 0) & (fy < self.ny)  # NaN fails all
        points = np.flatnonzero(inside)
        state = self.state[fy[points].astype(np.int64) * self.nx + fx[points].astype(np.int64)]
        single = state >= 0
        multi = state <= -2
        j = -2 - state[multi].astype(np.int64)
        lengths = self.multi_start[j + 1] - self.multi_start[j]
        starts = np.repeat(self.multi_start[j], lengths)
        within = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        pi = np.concatenate([points[single], np.repeat(points[multi], lengths)])
        si = np.concatenate([state[single], self.multi_shard[starts + within]])
        return pi, si.astype(np.int32)

    def touched(self, x: FloatArray, y: FloatArray) -> IntArray:
        """The shards some of these points are routed to, ascending."""
        return np.unique(self.candidates(x, y)[1])

    @property
    def nbytes(self) -> int:
        """Bytes of the router's arrays."""
        return int(self.state.nbytes + self.multi_start.nbytes + self.multi_shard.nbytes)


@dataclass(eq=False)
class Shard:
    """One shard: its number, key (a district code), the Locator of its grids, and each
    grid's code chain (``CODE_COLUMNS``) in the Locator's order."""

    index: int
    key: str
    locator: Locator
    codes: dict[str, ObjectArray] = field(init=False)

    def __post_init__(self) -> None:
        grids = self.locator.grids
        self.codes = {"grid_code": grids["code"].to_numpy(dtype=object)}
        for column in CODE_COLUMNS[1:]:
            values = np.full(len(grids), None, dtype=object)
            if column in grids.columns:
                col = grids[column].to_numpy(dtype=object)
                ok = np.array([isinstance(v, str) and v != "" for v in col], dtype=bool)
                values[ok] = col[ok]
            self.codes[column] = values

    @property
    def nbytes(self) -> int:
        """Bytes of the cell index (the part that grows with the layout)."""
        return int(self.locator.index.stats()["memory_mb"] * 1e6)


def shard_cell_m(bounds: FloatArray) -> float:
    """The cell side (metres) of a shard's index over grids with these bounds: what the
    Locator would pick for them alone (:data:`DEFAULT_MAX_CELLS`), at least :data:`CELL_M_FLOOR`."""
    minx, miny = bounds[:, 0].min(), bounds[:, 1].min()
    maxx, maxy = bounds[:, 2].max(), bounds[:, 3].max()
    per_deg_lon = M_PER_DEG_LON_EQUATOR * math.cos(math.radians((miny + maxy) / 2))
    area = max((maxx - minx) * per_deg_lon, 1.0) * max((maxy - miny) * M_PER_DEG_LAT, 1.0)
    return max(CELL_M_FLOOR, math.sqrt(area / DEFAULT_MAX_CELLS) * 1.05)


def load_shard(path: str, index: int, key: str, version: VersionInfo, cell_m: float) -> Shard:
    """Build a shard from its areas written by :meth:`ShardedLayout.write_parts` (on a
    worker: a pure function of a file, so Dask can rebuild it after losing a worker)."""
    return Shard(index, key, Locator.from_frame(gpd.read_parquet(path), version, cell_m=cell_m))


def locate_sharded(
    router: Router, shards: dict[int, Shard], x: FloatArray, y: FloatArray
) -> tuple[IntArray, IntArray]:
    """Owner of each WGS84 point as (shard number, grid index in that shard's Locator), -1
    where no grid covers it. ``shards`` must hold every shard the points are routed to."""
    n = len(x)
    best = np.full(n, _NONE, dtype=np.int64)
    pi, si = router.candidates(x, y)
    order = np.argsort(si, kind="stable")
    pi, si = pi[order], si[order]
    starts = np.flatnonzero(np.r_[True, si[1:] != si[:-1]]) if len(si) else np.zeros(0, int)
    for s, e in zip(starts.tolist(), [*starts[1:].tolist(), len(si)], strict=True):
        shard = shards.get(int(si[s]))
        if shard is None:
            raise RuntimeError(f"shard {int(si[s])} is needed but was not loaded")
        pts = pi[s:e]
        found = shard.locator.locate(x[pts], y[pts]).grid_index
        hit = found >= 0
        np.minimum.at(best, pts[hit], (np.int64(si[s]) << 32) | found[hit].astype(np.int64))
    located = best != _NONE
    shard_of = np.where(located, best >> 32, -1).astype(np.int32)
    local = np.where(located, best & 0xFFFFFFFF, -1).astype(np.int32)
    return shard_of, local


def chain_codes(
    shards: dict[int, Shard], shard_of: IntArray, local: IntArray
) -> dict[str, ObjectArray]:
    """The ``CODE_COLUMNS`` of located points (None where not located)."""
    n = len(shard_of)
    out = {c: np.full(n, None, dtype=object) for c in CODE_COLUMNS}
    for s in np.unique(shard_of[shard_of >= 0]).tolist():
        rows = np.flatnonzero(shard_of == s)
        for column, values in shards[s].codes.items():
            out[column][rows] = values[local[rows]]
    return out


@dataclass(eq=False)
class ShardedLayout:
    """A layout cut into shards (client side): the router and each shard's areas."""

    version: VersionInfo
    level: str
    keys: tuple[str, ...]
    router: Router
    parts: list[gpd.GeoDataFrame]
    grid_counts: list[int]
    cell_m: list[float]

    @classmethod
    def from_frame(
        cls,
        areas: gpd.GeoDataFrame,
        version: VersionInfo | None = None,
        level: str = SHARD_LEVEL,
        router_cells: int = ROUTER_CELLS,
    ) -> ShardedLayout:
        """Shard a layout frame (code, level, parent_code, geometry; a frame without
        ``level`` is all grids) by the first digits of the codes: ``level`` district or
        town. Each shard keeps its grids and their ancestors, so chains resolve."""
        if level not in ("district", "town"):
            raise InvalidInput(f"shards are districts or towns, not {level!r}")
        if "code" not in areas.columns:
            raise InvalidInput("the layout has no 'code' column")
        width = CODE_LENGTH[cast(Level, level)]
        keep = [c for c in LAYOUT_COLUMNS if c in areas.columns] + [areas.geometry.name]
        frame = gpd.GeoDataFrame(
            areas[keep].reset_index(drop=True), geometry=areas.geometry.name, crs=areas.crs
        )
        codes = frame["code"].astype(str)
        is_grid = (
            (frame["level"] == "grid").to_numpy()
            if "level" in frame.columns
            else np.ones(len(frame), dtype=bool)
        )
        if not is_grid.any():
            raise InvalidInput("the layout has no grids")
        keys = tuple(sorted(set(codes[is_grid].str.slice(0, width))))
        key_index = pd.Index(keys)
        row_key = codes.str.slice(0, width).where(codes.str.len() >= width)
        shard_of_row = key_index.get_indexer(row_key)
        parts = []
        ancestors = np.flatnonzero((codes.str.len() < width).to_numpy() & ~is_grid)
        by_shard = np.argsort(shard_of_row, kind="stable")
        bounds_of = np.searchsorted(shard_of_row[by_shard], np.arange(len(keys) + 1))
        for i, key in enumerate(keys):
            above = [a for a in ancestors.tolist() if key.startswith(codes.iloc[a])]
            own = by_shard[bounds_of[i] : bounds_of[i + 1]]
            rows = np.concatenate([np.array(above, dtype=np.int64), own])
            parts.append(frame.iloc[np.sort(rows)].reset_index(drop=True))
        grid_shards = shard_of_row[is_grid].astype(np.int32)
        bounds = np.asarray(frame.geometry[is_grid].bounds.to_numpy(), dtype=np.float64)
        router = Router.build(bounds, grid_shards, len(keys), router_cells)
        counts = np.bincount(grid_shards, minlength=len(keys)).tolist()
        cells = [shard_cell_m(bounds[grid_shards == i]) for i in range(len(keys))]
        info = version or VersionInfo(None, "frame")
        return cls(info, level, keys, router, parts, counts, cells)

    @property
    def n_grids(self) -> int:
        """Grids in all shards."""
        return sum(self.grid_counts)

    def build(self, index: int) -> Shard:
        """Build one shard here (in this process)."""
        locator = Locator.from_frame(self.parts[index], self.version, cell_m=self.cell_m[index])
        return Shard(index, self.keys[index], locator)

    def write_parts(self, folder: Path) -> list[str]:
        """Write each shard's areas as GeoParquet (``shard-NNNNN.parquet``) for the workers."""
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for i, part in enumerate(self.parts):
            path = folder / f"shard-{i:05d}.parquet"
            part.to_parquet(path, index=False)
            paths.append(str(path))
        return paths
