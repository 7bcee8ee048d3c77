"""The Locator: routing code's point → grid contract, from a boundary version or a file.

``Locator.locate`` answers in bulk from the compiled cell index (PostGIS-exact, lowest grid code
wins on shared edges and vertices). Metric details (distance to the grid boundary, runner-up
grid, nearest grid outside coverage) are computed on demand in a local equal-area projection.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely
from pyproj import Transformer

from geo_service.coords import to_wgs84
from geo_service.db.schema import AREA_LEVELS
from geo_service.errors import InvalidInput
from geo_service.locator import kernels
from geo_service.locator.index import GridIndex
from geo_service.metric import local_metric, project

if TYPE_CHECKING:
    from sqlalchemy import Connection

FloatArray = npt.NDArray[np.float64]
CHAIN_LEVELS: Final = AREA_LEVELS[:-1]  # the levels above a grid, top down
_HARD_M: Final = 1e-6  # closer to a boundary than this, in or out is GEOS's to say


@dataclass(frozen=True)
class VersionInfo:
    """The boundary version a Locator answers for."""

    id: int | None
    label: str
    status: str = "file"
    effective_from: dt.date | None = None
    effective_to: dt.date | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "label": self.label,
            "status": self.status,
            "effective_from": self.effective_from.isoformat() if self.effective_from else None,
            "effective_to": self.effective_to.isoformat() if self.effective_to else None,
        }


@dataclass(eq=False)
class LocateResult:
    """Answers for a batch of points, in input order; ``grid_index`` -1 means no grid."""

    grid_index: npt.NDArray[np.int32]
    lons: FloatArray
    lats: FloatArray
    locator: Locator = field(repr=False)

    def __len__(self) -> int:
        return len(self.grid_index)

    @property
    def found(self) -> npt.NDArray[np.bool_]:
        return self.grid_index >= 0

    @property
    def grid_code(self) -> npt.NDArray[np.object_]:
        """Grid code of each point, ``None`` where no grid covers it."""
        return self.locator._codes_or_none[self.grid_index]

    @property
    def grid_name(self) -> npt.NDArray[np.object_]:
        return self.locator._names_or_none[self.grid_index]

    def boundary_distance_m(self) -> FloatArray:
        """Metres from each located point to its grid's boundary (NaN where not located)."""
        return self.locator.boundary_distance_m(self.grid_index, self.lons, self.lats)


class Locator:
    """In-memory point → grid index of one boundary version (see the module docstring)."""

    def __init__(self, grids: gpd.GeoDataFrame, version: VersionInfo, cell_m: float = 0.0) -> None:
        if "code" not in grids.columns:
            raise InvalidInput("grid layer has no 'code' column")
        frame = grids.sort_values("code", kind="stable").reset_index(drop=True)
        if frame["code"].duplicated().any():
            dup = frame.loc[frame["code"].duplicated(), "code"].iloc[0]
            raise InvalidInput(f"duplicate grid code {dup!r}")
        if "name" not in frame.columns:
            frame["name"] = frame["code"]
        self.grids: gpd.GeoDataFrame = frame
        self.version = version
        self.index = GridIndex.build(frame.geometry.to_numpy(), cell_m=cell_m)
        # index -1 (no grid) picks the trailing None
        self._codes_or_none = np.array([*frame["code"], None], dtype=object)
        self._names_or_none = np.array([*frame["name"], None], dtype=object)
        self._row_by_code = {code: i for i, code in enumerate(frame["code"])}

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def from_frame(
        cls, areas: gpd.GeoDataFrame, version: VersionInfo | None = None, cell_m: float = 0.0
    ) -> Locator:
        """From a layout frame of any levels (code, name, level, parent_code, geometry).

        Grids are the rows of level ``grid`` (every row when there is no ``level`` column);
        their code chain is resolved through ``parent_code``.
        """
        grids = areas
        if "level" in areas.columns:
            grids = areas[areas["level"] == "grid"]
        grids = grids.copy()
        if "parent_code" in areas.columns:
            grids = _with_chain(grids, areas)
        return cls(grids, version or VersionInfo(None, "frame"), cell_m=cell_m)

    @classmethod
    def from_file(cls, path: str | Path, crs: str | None = None, cell_m: float = 0.0) -> Locator:
        """From a layout file (GeoJSON, GeoPackage, zipped Shapefile) in any supported CRS."""
        from geo_service.boundaries.reader import read_layout

        layout = read_layout(path, crs=crs)
        return cls.from_frame(
            layout.frame, VersionInfo(None, Path(path).name, status="file"), cell_m=cell_m
        )

    @classmethod
    def from_database(
        cls, url: str, as_of: dt.date | str | None = None, version: int | str | None = None
    ) -> Locator:
        """From the boundary version in force on ``as_of`` (today when None) in PostGIS.

        ``version`` (id or label) picks a version explicitly instead, drafts included.
        """
        from geo_service.db.engine import make_engine

        engine = make_engine(url, pool_size=1)
        try:
            with engine.connect() as conn:
                return cls.from_connection(conn, as_of, version)
        finally:
            engine.dispose()

    @classmethod
    def from_connection(
        cls, conn: Connection, as_of: dt.date | str | None = None, version: int | str | None = None
    ) -> Locator:
        """:meth:`from_database` on an open connection (inside the caller's transaction)."""
        from geo_service.boundaries import versions

        if version is not None:
            info = versions.get_version(conn, version)
        else:
            info = versions.version_in_force(conn, versions.parse_date(as_of))
        return cls.from_frame(versions.load_areas(conn, info.id), info)

    # -- queries -----------------------------------------------------------------------------

    def locate(
        self, lons: npt.ArrayLike, lats: npt.ArrayLike, crs: str | None = "wgs84"
    ) -> LocateResult:
        """Owner grid of each point given in ``crs`` (wgs84, cgcs2000, gcj02, bd09, EPSG:n)."""
        x, y = to_wgs84(lons, lats, crs)
        return LocateResult(self.index.locate(x, y), x, y, self)

    def __len__(self) -> int:
        return len(self.grids)

    def row(self, code: str) -> pd.Series:
        """The grid's attributes (code, name, chain columns, households...)."""
        return self.grids.iloc[self._row_by_code[code]]

    def chain(self, grid_index: int) -> list[dict[str, Any]] | None:
        """Codes and names from the district down to the grid of ``grid_index``; None for a
        negative index (``LocateResult.grid_index`` is -1 where no grid covers the point), and
        :class:`IndexError` past the last grid, never another grid's chain."""
        i = int(grid_index)
        if i < 0:
            return None
        if i >= len(self.grids):
            raise IndexError(f"grid index {i} is out of range: the Locator has {len(self)} grids")
        row = self.grids.iloc[i]
        out = []
        for level in CHAIN_LEVELS:
            code = row.get(f"{level}_code")
            if isinstance(code, str) and code:
                out.append({"level": level, "code": code, "name": row.get(f"{level}_name")})
        out.append({"level": "grid", "code": row["code"], "name": row["name"]})
        return out

    # -- metric details ----------------------------------------------------------------------

    @cached_property
    def _to_metric(self) -> Transformer:
        return local_metric(self.grids.total_bounds)

    @cached_property
    def _metric_geoms(self) -> npt.NDArray[np.object_]:
        return project(self.grids.geometry.to_numpy(), self._to_metric)

    @cached_property
    def _metric_boundaries(self) -> npt.NDArray[np.object_]:
        boundaries = shapely.boundary(self._metric_geoms)
        shapely.prepare(boundaries)
        return boundaries

    @cached_property
    def _metric_tree(self) -> shapely.STRtree:
        return shapely.STRtree(self._metric_geoms)

    def _metric_points(self, lons: FloatArray, lats: FloatArray) -> npt.NDArray[np.object_]:
        mx, my = self._to_metric.transform(lons, lats)
        return shapely.points(mx, my)

    def boundary_distance_m(
        self, grid_index: npt.NDArray[np.int32], lons: FloatArray, lats: FloatArray
    ) -> FloatArray:
        """Metres from each point to the boundary of grid ``grid_index`` (NaN for -1)."""
        out = np.full(len(grid_index), np.nan)
        ok = grid_index >= 0
        if ok.any():
            pts = self._metric_points(lons[ok], lats[ok])
            out[ok] = shapely.distance(self._metric_boundaries[grid_index[ok]], pts)
        return out

    def neighbours_within(
        self,
        grid_index: npt.NDArray[np.int32],
        lons: FloatArray,
        lats: FloatArray,
        within_m: float,
    ) -> tuple[npt.NDArray[np.int32], FloatArray]:
        """For each point, the nearest grid other than its own within ``within_m`` metres.

        Returns (grid index or -1, distance in metres or NaN). For points outside coverage
        this is the nearest grid at all within the distance.
        """
        n = len(grid_index)
        best = np.full(n, -1, dtype=np.int32)
        dist = np.full(n, np.nan)
        if n == 0:
            return best, dist
        pts = self._metric_points(lons, lats)
        pi, gi = self._metric_tree.query(pts, predicate="dwithin", distance=within_m)
        other = gi != grid_index[pi]
        pi, gi = pi[other], gi[other]
        if len(pi) == 0:
            return best, dist
        d = shapely.distance(self._metric_geoms[gi], pts[pi])
        order = np.lexsort((gi, d, pi))  # nearest first, then lowest code
        pi, gi, d = pi[order], gi[order], d[order]
        first = np.unique(pi, return_index=True)[1]
        best[pi[first]] = gi[first]
        dist[pi[first]] = d[first]
        return best, dist

    @cached_property
    def _metric_frame(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        """The grids' coordinates in the metric frame, laid out as the cell index's (its ring
        offsets apply), and each grid's metric bounds."""
        xy = shapely.get_coordinates(self._metric_geoms)
        if len(xy) != len(self.index.xs):
            raise AssertionError("metric coordinates do not follow the index's layout")
        bounds = np.ascontiguousarray(shapely.bounds(self._metric_geoms))
        return np.ascontiguousarray(xy[:, 0]), np.ascontiguousarray(xy[:, 1]), bounds

    def point_details(
        self, grid_index: int, lon: float, lat: float, within_m: float
    ) -> tuple[float, int, float]:
        """One WGS84 point's :meth:`boundary_distance_m` and :meth:`neighbours_within`:
        (metres to the boundary of grid ``grid_index``, NaN for -1; the nearest other grid
        within ``within_m``, -1 if none; its distance, NaN if none), equal to theirs to the
        last bit, without the array handling that costs one point more than the answer.

        A compiled kernel measures with GEOS's own arithmetic; a point within a micrometre of
        another grid's boundary (where only GEOS's exact predicate may say in or out) is
        measured by GEOS itself.
        """
        mx, my = self._to_metric.transform(lon, lat)
        xs, ys, bounds = self._metric_frame
        own, best, best_d, hard = kernels.point_details(
            grid_index, mx, my, xs, ys, self.index.ring_off, self.index.poly_off,
            self.index.geom_off, bounds, within_m, _HARD_M,
        )  # fmt: skip
        if not hard:
            return float(own), int(best), float(best_d)
        pt = shapely.Point(mx, my)
        own = math.nan
        if grid_index >= 0:
            own = float(shapely.distance(self._metric_boundaries[grid_index], pt))
        best, best_d = -1, math.nan
        for g in self._metric_tree.query(pt, predicate="dwithin", distance=within_m).tolist():
            if g == grid_index:
                continue
            d = float(shapely.distance(self._metric_geoms[g], pt))
            if best < 0 or d < best_d or (d == best_d and g < best):  # nearest, lowest code
                best, best_d = g, d
        return own, best, best_d


def _with_chain(grids: gpd.GeoDataFrame, areas: pd.DataFrame) -> gpd.GeoDataFrame:
    """Add ``<level>_code`` / ``<level>_name`` columns for the grid's ancestors."""
    by_code = areas.drop_duplicates("code").set_index("code")
    parent = grids["parent_code"]
    for _ in range(len(CHAIN_LEVELS)):
        known = parent.isin(by_code.index)
        if not known.any():
            break
        levels = by_code["level"].reindex(parent.where(known)).to_numpy()
        names = by_code["name"].reindex(parent.where(known)).to_numpy()
        for level in CHAIN_LEVELS:
            mask = known.to_numpy() & (levels == level)
            if mask.any():
                if f"{level}_code" not in grids.columns:
                    grids[f"{level}_code"] = None
                    grids[f"{level}_name"] = None
                grids.loc[mask, f"{level}_code"] = parent[mask].to_numpy()
                grids.loc[mask, f"{level}_name"] = names[mask]
        parent = by_code["parent_code"].reindex(parent.where(known)).reset_index(drop=True)
        parent.index = grids.index
    return grids
