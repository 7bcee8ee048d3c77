"""H3 cells as 64-bit integers: parents in SQL and numpy, zoom → resolution, cell geometry.

Reports keep their resolution-11 cell (``reports.h3_11``); every coarser cell is a bit
operation away (:func:`parent`, SQL ``h3_parent``), so no H3 library is needed in PostGIS.
Cells leave the service as H3's usual 15-character hex strings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import h3
import numpy as np
import numpy.typing as npt
import shapely
from h3.api import basic_int as h3i
from sqlalchemy import Integer, func, literal
from sqlalchemy.sql.elements import ColumnElement

from geo_service.errors import InvalidInput

STORED_RES: Final = 11  # reports.h3_11
ROLLUP_RES: Final = 9  # heat_rollup.h3_9
MIN_RES: Final = 6
MAX_RES: Final = 11
# web-map zoom → H3 resolution, so that a cell spans roughly 12-40 screen pixels at the
# latitude of the Yangtze delta (a res-r cell is ~2.6x the edge of a res-(r+1) cell, a zoom
# level 2x): z <= 8 → 6, 9-10 → 7, 11-12 → 8, 13 → 9, 14 → 10, >= 15 → 11
_ZOOM_STEPS: Final = ((8, 6), (10, 7), (12, 8), (13, 9), (14, 10))

Cells = npt.NDArray[np.int64]


def res_for_zoom(zoom: float) -> int:
    """The H3 resolution drawn at web-map ``zoom`` (see the table above)."""
    if not 0 <= zoom <= 24:
        raise InvalidInput(f"zoom must be between 0 and 24, not {zoom}")
    for max_zoom, res in _ZOOM_STEPS:
        if zoom <= max_zoom:
            return res
    return MAX_RES


def check_res(res: int, low: int = MIN_RES, high: int = MAX_RES) -> int:
    """``res`` itself, or a 4xx naming the allowed range."""
    if not low <= res <= high:
        raise InvalidInput(f"H3 resolution must be between {low} and {high}, not {res}")
    return res


def sql_parent(cell: ColumnElement[int], res: int) -> ColumnElement[int]:
    """SQL expression: the resolution-``res`` parent of the bigint cell column ``cell``."""
    return func.h3_parent(cell, literal(check_res(res, 0, 15), Integer))


def parent(cells: npt.ArrayLike, res: int) -> Cells:
    """The resolution-``res`` parents of ``cells`` (bigints), by the same bit operations."""
    c = np.asarray(cells, dtype=np.int64)
    keep = ~np.int64(15 << 52)
    return (c & keep) | np.int64(res << 52) | np.int64((1 << (3 * (15 - res))) - 1)


def cells_of_points(lon: npt.ArrayLike, lat: npt.ArrayLike, res: int = STORED_RES) -> Cells:
    """The cells (bigints) holding WGS84 points."""
    xs = np.asarray(lon, dtype=np.float64).tolist()
    ys = np.asarray(lat, dtype=np.float64).tolist()
    return np.fromiter(
        (h3i.latlng_to_cell(y, x, res) for x, y in zip(xs, ys, strict=True)),
        dtype=np.int64,
        count=len(xs),
    )


def to_hex(cells: npt.ArrayLike) -> list[str]:
    """H3's hex-string names of bigint cells."""
    return [h3.int_to_str(int(c)) for c in np.asarray(cells, dtype=np.int64)]


def from_hex(names: Sequence[str]) -> Cells:
    """Bigint cells from hex-string names (4xx for a name that is not a valid cell)."""
    out = np.empty(len(names), dtype=np.int64)
    for i, name in enumerate(names):
        if not h3.is_valid_cell(name):
            raise InvalidInput(f"not an H3 cell: {name!r}")
        out[i] = h3.str_to_int(name)
    return out


def centres(cells: npt.ArrayLike) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Longitudes and latitudes of the cells' centres."""
    c = np.asarray(cells, dtype=np.int64)
    ll = np.array([h3i.cell_to_latlng(int(x)) for x in c], dtype=np.float64).reshape(-1, 2)
    return ll[:, 1], ll[:, 0]


def polygons(cells: npt.ArrayLike) -> npt.NDArray[np.object_]:
    """The cells' outlines as shapely polygons in lon/lat order (H3 answers lat/lon)."""
    c = np.asarray(cells, dtype=np.int64)
    rings = [[(lng, lat) for lat, lng in h3i.cell_to_boundary(int(x))] for x in c]
    return np.array([shapely.Polygon(r) for r in rings], dtype=object)


def cells_in(geometry: shapely.Geometry, res: int) -> Cells:
    """The resolution-``res`` cells whose centre lies in a (multi)polygon in lon/lat."""
    if shapely.is_empty(geometry):
        return np.empty(0, dtype=np.int64)
    shape = h3.geo_to_h3shape(geometry)
    return np.array(sorted(h3i.h3shape_to_cells(shape, res)), dtype=np.int64)


def study_area_cells(geometry: shapely.Geometry, res: int, counted: npt.ArrayLike) -> Cells:
    """The cells of a study area: those whose centre lies in it, plus ``counted`` cells (cells
    with reports) that overlap its edge. Cells wholly outside — reports outside coverage —
    are left out: as spatial outliers they would only stretch the distance band."""
    inside = cells_in(geometry, res)
    extra = np.setdiff1d(np.asarray(counted, dtype=np.int64), inside)
    if extra.size:
        extra = extra[shapely.intersects(polygons(extra), geometry)]
    return np.union1d(inside, extra)


def edge_m(res: int) -> float:
    """The average edge length of a resolution-``res`` cell, in metres."""
    return float(h3.average_hexagon_edge_length(res, unit="m"))
