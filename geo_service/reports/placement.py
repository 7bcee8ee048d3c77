"""Placement: where reports are (grid and its code chain) and who answers them (level, unit).

Shared by intake (a request's few reports) and the history importer (hundreds of thousands of
rows), so the same point and category get the same grid, handling level and unit either way.
Everything is column arrays; routing is cached per (category, level, grid), as every report of
a kind in one grid goes to the same unit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from geo_service.locator import Locator
from geo_service.locator.locator import CHAIN_LEVELS
from geo_service.reports.taxonomy import CATEGORY_BY_CODE, next_level
from geo_service.routing import RoutingTable

ObjectArray = npt.NDArray[np.object_]
Strings = Sequence[str] | ObjectArray


@dataclass(frozen=True)
class Placement:
    """The grid and code chain of each point (WGS84), in input order; -1 / None outside."""

    grid_index: npt.NDArray[np.int32]
    grid_code: ObjectArray
    grid_name: ObjectArray
    community_code: ObjectArray
    town_code: ObjectArray
    district_code: ObjectArray  # the default district outside coverage, as routing answers

    @property
    def in_coverage(self) -> npt.NDArray[np.bool_]:
        return self.grid_index >= 0

    def __len__(self) -> int:
        return len(self.grid_index)

    def take(self, index: npt.NDArray[np.intp]) -> Placement:
        """The placements of the listed positions."""
        return Placement(
            self.grid_index[index],
            self.grid_code[index],
            self.grid_name[index],
            self.community_code[index],
            self.town_code[index],
            self.district_code[index],
        )

    def chain(self, i: int) -> dict[str, str] | None:
        """Level → code from the district down to the grid (None outside coverage)."""
        if self.grid_index[i] < 0:
            return None
        out = {"grid": str(self.grid_code[i])}
        for level, col in (
            ("district", self.district_code),
            ("town", self.town_code),
            ("community", self.community_code),
        ):
            if isinstance(col[i], str):
                out[level] = col[i]
        return out


def locate(
    locator: Locator, routing: RoutingTable, lon: npt.ArrayLike, lat: npt.ArrayLike
) -> Placement:
    """The owner grid and code chain of WGS84 points (see :class:`Placement`)."""
    x = np.asarray(lon, dtype=np.float64)
    y = np.asarray(lat, dtype=np.float64)
    located = locator.locate(x, y)
    found = located.grid_index
    grids = locator.grids
    inside = found >= 0
    safe = np.where(inside, found, 0)
    columns: dict[str, ObjectArray] = {}
    for level in CHAIN_LEVELS:
        out = np.full(len(found), None, dtype=object)
        if f"{level}_code" in grids and len(grids):
            col = grids[f"{level}_code"].to_numpy(dtype=object)[safe]
            ok = inside & np.array([isinstance(v, str) for v in col], dtype=bool)
            out[ok] = col[ok]
        columns[level] = out
    columns["district"][~inside] = routing.default_district
    return Placement(
        found,
        located.grid_code,
        located.grid_name,
        columns["community"],
        columns["town"],
        columns["district"],
    )


def base_level(category: str, hard: bool) -> str:
    """Where a case is handled first: its category's level, one up for a hard case."""
    level = CATEGORY_BY_CODE[category].level
    return (next_level(level) or level) if hard else level


def base_levels(categories: Strings, hard: Sequence[bool] | npt.NDArray[np.bool_]) -> ObjectArray:
    """:func:`base_level` of each case."""
    out = np.empty(len(categories), dtype=object)
    for i, (code, is_hard) in enumerate(zip(categories, hard, strict=True)):
        out[i] = base_level(code, bool(is_hard))
    return out


def route(
    placement: Placement,
    routing: RoutingTable,
    categories: Strings,
    levels: Strings,
) -> tuple[ObjectArray, ObjectArray]:
    """The unit id (or None) and ``routed_by`` of each placed report at its handling level."""
    n = len(placement)
    units = np.empty(n, dtype=object)
    routed_by = np.empty(n, dtype=object)
    cache: dict[tuple[str, str, int], tuple[int | None, str]] = {}
    grid_index = placement.grid_index.tolist()
    for i, (category, level, g) in enumerate(zip(categories, levels, grid_index, strict=True)):
        key = (category, level, g)
        hit = cache.get(key)
        if hit is None:
            r = routing.route(category, level, placement.chain(i))
            hit = cache[key] = (r.unit_id, r.routed_by)
        units[i], routed_by[i] = hit
    return units, routed_by
