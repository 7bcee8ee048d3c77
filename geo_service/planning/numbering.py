"""Grid numbering: the reading order of a community's grids and the free numbers left in it.

Reading order is :func:`geo_service.boundaries.codes.reading_order` on centroids in local
equirectangular metres (x scaled by cos of the layout's middle latitude), as the demo builder
numbers grids, so a layout numbered by it reads as in order here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.base import BaseGeometry

from geo_service.boundaries.codes import band_for, child_code, is_valid_code, reading_order
from geo_service.errors import Conflict, InvalidInput

MAX_GRID_NUMBER = 999
SAME_GROUND = 0.5  # intersection over union at which a reshaped grid still names its ground
_M_PER_DEG = math.radians(1.0) * 6_371_008.8


def middle_latitude(bounds: npt.ArrayLike) -> float:
    """Middle latitude of ``(minx, miny, maxx, maxy)``: where the metric scale is taken."""
    b = np.asarray(bounds, dtype=np.float64).ravel()
    return float((b[1] + b[3]) / 2)


def reading_sequence(
    geoms: Sequence[BaseGeometry] | npt.NDArray[np.object_], latitude: float
) -> npt.NDArray[np.intp]:
    """Indices of ``geoms`` (lon/lat polygons) north→south, then west→east: numbering order.

    Bands are the median side of the polygons (:func:`band_for`); ``latitude`` fixes the
    east-west scale, so give every community of a layout the same one.
    """
    g = np.asarray(geoms, dtype=object)
    if g.size == 0:
        return np.empty(0, dtype=np.intp)
    kx = math.cos(math.radians(latitude)) * _M_PER_DEG
    xy = shapely.get_coordinates(shapely.centroid(g))
    areas = np.asarray(shapely.area(g), dtype=np.float64) * kx * _M_PER_DEG
    return reading_order(xy[:, 0] * kx, xy[:, 1] * _M_PER_DEG, band_for(areas))


def free_grid_codes(community: str, taken: Iterable[str], count: int) -> list[str]:
    """The ``count`` lowest grid codes of ``community`` not in ``taken`` (409: too few left)."""
    if not is_valid_code(community, "community"):
        raise InvalidInput(f"{community!r} is not a community code: its grids cannot be numbered")
    used = set(taken)
    out: list[str] = []
    for seq in range(1, MAX_GRID_NUMBER + 1):
        if len(out) == count:
            break
        code = child_code(community, seq, "grid")
        if code not in used:
            out.append(code)
    if len(out) < count:
        raise Conflict(
            f"community {community!r} has {len(out)} free grid number(s) left, {count} needed"
        )
    return out


def same_ground(a: BaseGeometry, b: BaseGeometry) -> bool:
    """Whether two lon/lat polygons are mostly the same piece of ground (intersection over
    union at least :data:`SAME_GROUND`): a grid whose boundary moved keeps naming its ground."""
    if not (shapely.is_valid(a) and shapely.is_valid(b)):
        return bool(shapely.equals(a, b))
    union = float(shapely.area(shapely.union(a, b)))
    return union > 0 and float(shapely.area(shapely.intersection(a, b))) / union >= SAME_GROUND


def carried_codes(
    draft: Iterable[tuple[str, str, BaseGeometry]],
    in_force: Iterable[tuple[str, str, BaseGeometry]],
) -> set[str]:
    """Codes of ``draft`` grids (code, community, geometry) that the version in force gives to
    mostly the same ground in the same community: renumbering keeps them, and their order is
    the version in force's business, not the draft's."""
    known = {(code, parent): geom for code, parent, geom in in_force}
    return {
        code
        for code, parent, geom in draft
        if (old := known.get((code, parent))) is not None and same_ground(geom, old)
    }
