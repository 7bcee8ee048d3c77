"""The cell index over a set of grid polygons: build once per boundary version, query in bulk."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely
from shapely import MultiPolygon, Polygon

from geo_service.errors import InvalidGeometry
from geo_service.locator import kernels

IntArray = npt.NDArray[np.int32]
FloatArray = npt.NDArray[np.float64]

M_PER_DEG_LAT = 110_574.0
M_PER_DEG_LON_EQUATOR = 111_320.0
DEFAULT_MAX_CELLS = 1 << 24
EPS_DEG = 1e-9  # ~0.1 mm: cells this close to a boundary count as touched by it
SERIAL_BELOW = 2_000  # fewer points than this are located on the calling thread, no pool


def as_multipolygons(geoms: npt.ArrayLike) -> npt.NDArray[np.object_]:
    """Every geometry as a MultiPolygon, refusing anything that is not polygonal and valid."""
    arr = np.asarray(geoms, dtype=object)
    out: npt.NDArray[np.object_] = np.empty(len(arr), dtype=object)
    for i, geom in enumerate(arr):
        if isinstance(geom, Polygon):
            geom = MultiPolygon([geom])
        if not isinstance(geom, MultiPolygon) or geom.is_empty:
            raise InvalidGeometry(f"geometry {i} is not a polygon or multipolygon: {geom!r:.80}")
        out[i] = geom
    bad = ~shapely.is_valid(out)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InvalidGeometry(
            f"geometry {i} is invalid: {shapely.is_valid_reason(out[i])}",
            details={"index": i},
        )
    return out


@dataclass(frozen=True, eq=False)
class GridIndex:
    """Uniform cell index; see :mod:`geo_service.locator.kernels` for the cell states."""

    xs: FloatArray
    ys: FloatArray
    ring_off: npt.NDArray[np.int64]
    poly_off: npt.NDArray[np.int64]
    geom_off: npt.NDArray[np.int64]
    simple: npt.NDArray[np.int64]  # (start, end) of the ring of a one-ring grid, else (-1, -1)
    state: npt.NDArray[np.int16] | IntArray
    row_first: npt.NDArray[np.int64]
    b_start: npt.NDArray[np.int64]
    b_base: IntArray
    cand: IntArray
    x0: float
    y0: float
    dx: float
    dy: float
    nx: int
    ny: int

    @classmethod
    def build(
        cls, geoms: npt.ArrayLike, cell_m: float = 0.0, max_cells: int = DEFAULT_MAX_CELLS
    ) -> GridIndex:
        """Index valid (multi)polygons in lon/lat, in priority order (index 0 wins ties).

        ``cell_m`` is the cell side in metres; 0 picks the finest that keeps the cell count
        within ``max_cells`` (16 M cells = 64 MB).
        """
        mp = as_multipolygons(geoms)
        if len(mp) == 0:
            raise InvalidGeometry("no polygons to index")
        _, coords, (ring_off, poly_off, geom_off) = shapely.to_ragged_array(mp)
        xs = np.ascontiguousarray(coords[:, 0])
        ys = np.ascontiguousarray(coords[:, 1])
        bbox = np.ascontiguousarray(shapely.bounds(mp))
        minx, miny = bbox[:, 0].min(), bbox[:, 1].min()
        maxx, maxy = bbox[:, 2].max(), bbox[:, 3].max()
        m_per_deg_lon = M_PER_DEG_LON_EQUATOR * math.cos(math.radians((miny + maxy) / 2))
        width_m = max((maxx - minx) * m_per_deg_lon, 1.0)
        height_m = max((maxy - miny) * M_PER_DEG_LAT, 1.0)
        if cell_m <= 0:
            cell_m = max(math.sqrt(width_m * height_m / max_cells) * 1.05, 0.5)
        dx, dy = cell_m / m_per_deg_lon, cell_m / M_PER_DEG_LAT
        x0, y0 = minx - 2 * dx, miny - 2 * dy
        nx = math.ceil((maxx - x0) / dx) + 2
        ny = math.ceil((maxy - y0) / dy) + 2
        if nx * ny > 4 * max_cells:
            raise ValueError(f"cell size {cell_m} m gives {nx * ny} cells, over 4x {max_cells}")
        r_off = ring_off.astype(np.int64)
        p_off = poly_off.astype(np.int64)
        g_off = geom_off.astype(np.int64)
        state, pair_cell, pair_grid = kernels.build_cells(
            xs, ys, r_off, p_off, g_off, bbox, x0, y0, dx, dy, nx, ny, EPS_DEG
        )
        # Compact the touched (cell, grid) pairs into per-cell candidate lists, lowest code
        # first, keeping only grids that rank before the cell's wholly-covering owner.
        order = np.lexsort((pair_grid, pair_cell))
        pc, pg = pair_cell[order], pair_grid[order]
        owner = state[pc]
        keep = (owner == -1) | (pg < owner)
        pc, pg = pc[keep], pg[keep]
        cells, first = np.unique(pc, return_index=True)
        b_start = np.append(first, len(pc)).astype(np.int64)
        b_base = state[cells].astype(np.int32)
        # A touched cell stores -2 - j, j its rank among its row's touched cells (j < nx), and
        # row_first[r] + j finds its candidates: the state then fits int16 for up to 32,767
        # grids and cells per row, half the bytes, so a city's index stays in the L3 cache.
        row_first = np.searchsorted(cells // nx, np.arange(ny + 1)).astype(np.int64)
        state[cells] = -2 - (np.arange(len(cells)) - row_first[cells // nx])
        one_ring = (np.diff(g_off) == 1) & (np.diff(p_off)[g_off[:-1]] == 1)
        first_ring = r_off[p_off[g_off[:-1]]]
        simple = np.where(
            one_ring[:, None],
            np.stack([first_ring, r_off[p_off[g_off[:-1]] + 1]], axis=1),
            -1,
        ).astype(np.int64)
        small = len(geom_off) - 1 <= np.iinfo(np.int16).max and nx + 2 <= np.iinfo(np.int16).max
        return cls(
            xs,
            ys,
            r_off,
            p_off,
            g_off,
            simple,
            state.astype(np.int16) if small else state,
            row_first,
            b_start,
            b_base,
            pg.astype(np.int32),
            float(x0),
            float(y0),
            float(dx),
            float(dy),
            nx,
            ny,
        )

    @property
    def n_grids(self) -> int:
        return len(self.geom_off) - 1

    def locate(self, lons: FloatArray, lats: FloatArray, parallel: bool | None = None) -> IntArray:
        """Index of the owning polygon of each lon/lat (-1 where none covers it).

        ``parallel`` None picks by size: fewer than :data:`SERIAL_BELOW` points run on the
        calling thread (a request's few points cost less than waking numba's thread pool);
        True or False forces one kernel (both give the same answers).
        """
        x = np.ascontiguousarray(lons, dtype=np.float64)
        y = np.ascontiguousarray(lats, dtype=np.float64)
        if parallel is None:
            parallel = len(x) >= SERIAL_BELOW
        kernel = kernels.locate_points if parallel else kernels.locate_points_serial
        result: IntArray = kernel(
            x,
            y,
            self.xs,
            self.ys,
            self.ring_off,
            self.poly_off,
            self.geom_off,
            self.simple,
            self.state,
            self.row_first,
            self.b_start,
            self.b_base,
            self.cand,
            self.x0,
            self.y0,
            self.dx,
            self.dy,
            self.nx,
            self.ny,
        )
        return result

    def covers(
        self, grid: npt.ArrayLike, lons: npt.ArrayLike, lats: npt.ArrayLike
    ) -> npt.NDArray[np.bool_]:
        """PostGIS-exact ``ST_Covers(grid, point)`` for each (grid index, point) pair."""
        g = np.ascontiguousarray(grid, dtype=np.int64)
        x = np.ascontiguousarray(lons, dtype=np.float64)
        y = np.ascontiguousarray(lats, dtype=np.float64)
        result: npt.NDArray[np.bool_] = kernels.covers_many(
            g, x, y, self.xs, self.ys, self.ring_off, self.poly_off, self.geom_off
        )
        return result

    def stats(self) -> dict[str, float]:
        """Size figures: cells, share of cells needing an exact test, memory in MB."""
        n_boundary = len(self.b_base)
        arrays = (
            self.xs,
            self.ys,
            self.state,
            self.row_first,
            self.b_start,
            self.b_base,
            self.cand,
        )
        return {
            "grids": float(self.n_grids),
            "cells": float(self.nx * self.ny),
            "cell_m": self.dy * M_PER_DEG_LAT,
            "exact_cells_share": n_boundary / (self.nx * self.ny),
            "mean_candidates": len(self.cand) / max(n_boundary, 1),
            "memory_mb": sum(a.nbytes for a in arrays) / 1e6,
        }
