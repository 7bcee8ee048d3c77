"""Areas of the boundary version in force, as analyses need them.

The frames and the study area are items of the per-version registry
(:mod:`geo_service.locator.registry`): read once per (version, level), dropped with everything
else derived from a version when a publish or rollback changes the schedule. Only public
attributes are kept: code, name, level, parent code, households, population — never the grid
worker's or leader's names.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

import geopandas as gpd
import numpy as np
import shapely
from sqlalchemy import Connection

from geo_service.analytics.filters import level_length
from geo_service.boundaries.codes import level_of
from geo_service.boundaries.versions import load_areas
from geo_service.errors import NotFound
from geo_service.locator.locator import VersionInfo
from geo_service.locator.registry import VersionRegistry, process_registry

PUBLIC_COLUMNS: Final = ("code", "name", "level", "parent_code", "households", "population")


def version(
    conn: Connection, as_of: dt.date | None = None, registry: VersionRegistry | None = None
) -> VersionInfo:
    """The boundary version in force on ``as_of`` (today by default), as ``registry`` (this
    process's when None) knows it."""
    return (registry or process_registry()).in_force(conn, as_of)


def areas(
    conn: Connection,
    level: str,
    as_of: dt.date | None = None,
    registry: VersionRegistry | None = None,
) -> gpd.GeoDataFrame:
    """The ``level`` areas of the version in force: public columns, households filled in.

    Where an area has no household count its grids' sum stands in, so per-household rates
    exist at every level. ``attrs["version"]`` names the version. The frame is shared: do not
    change it.
    """
    level_length(level)
    registry = registry or process_registry()
    info = registry.in_force(conn, as_of)
    return registry.get(
        conn, info, ("analytics-areas", level), lambda v: _public_areas(conn, v, level)
    )


def _public_areas(conn: Connection, info: VersionInfo, level: str) -> gpd.GeoDataFrame:
    """Read the ``level`` areas of ``info`` with public columns and households filled in."""
    frame = load_areas(conn, info.id, (level,))
    frame = frame[[*PUBLIC_COLUMNS, "geometry"]].copy()
    missing = frame["households"].isna()
    if missing.any() and level != "grid":
        grids = load_areas(conn, info.id, ("grid",))
        prefix = grids["code"].str.slice(0, level_length(level))
        sums = grids.groupby(prefix)["households"].sum(min_count=1)
        frame.loc[missing, "households"] = frame.loc[missing, "code"].map(sums)
    frame = frame.reset_index(drop=True)
    frame.attrs["version"] = info.label
    frame.attrs["version_id"] = info.id
    return frame


def coverage(
    conn: Connection,
    area: str | None = None,
    as_of: dt.date | None = None,
    registry: VersionRegistry | None = None,
) -> shapely.Geometry:
    """The study area: the union of the version's grids, or one area's polygon by code."""
    registry = registry or process_registry()
    if area is not None:
        level = _level_of(area)
        match = areas(conn, level, as_of, registry)
        hit = match.loc[match["code"] == area, "geometry"]
        if hit.empty:
            raise NotFound(f"no area {area!r} in the boundary version in force")
        return hit.iloc[0]
    info = registry.in_force(conn, as_of)

    def union(_: VersionInfo) -> shapely.Geometry:
        grids = areas(conn, "grid", as_of, registry)
        return shapely.union_all(np.asarray(grids.geometry.values), grid_size=None)

    return registry.get(conn, info, "analytics-coverage", union)


def _level_of(code: str) -> str:
    level = level_of(code)
    if level is None:
        raise NotFound(f"not an area code: {code!r}")
    return level
