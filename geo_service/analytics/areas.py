"""Areas of the boundary version in force, as analyses need them (cached per version).

Published versions do not change, so their areas are read once per (version, level). Only
public attributes are kept: code, name, level, parent code, households, population — never the
grid worker's or leader's names.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from typing import Final

import geopandas as gpd
import numpy as np
import shapely
from sqlalchemy import Connection, text

from geo_service.analytics.filters import level_length
from geo_service.boundaries.codes import level_of
from geo_service.boundaries.versions import load_areas, version_in_force
from geo_service.errors import NotFound
from geo_service.locator.locator import VersionInfo

PUBLIC_COLUMNS: Final = ("code", "name", "level", "parent_code", "households", "population")
_CACHE_SIZE: Final = 8
# keyed by database too: one process may serve (or test) several databases whose ids collide
_cache: OrderedDict[tuple[str, int | None, str], gpd.GeoDataFrame] = OrderedDict()
_coverage: OrderedDict[tuple[str, int | None], shapely.Geometry] = OrderedDict()
_lock = threading.Lock()


def _remember(store: OrderedDict, key: object, value: object) -> None:
    with _lock:
        store[key] = value
        store.move_to_end(key)
        while len(store) > _CACHE_SIZE:
            store.popitem(last=False)


def _database(conn: Connection, version_id: int | None) -> str:
    """Which database ``conn`` talks to and which area rows the version holds: a draft rolled
    back and edited keeps its id but not its areas, and ids collide across databases."""
    rows = conn.execute(
        text("SELECT count(*), coalesce(sum(area_id), 0) FROM version_areas WHERE version_id = :v"),
        {"v": version_id},
    ).one()
    return f"{conn.engine.url.render_as_string(hide_password=True)}#{rows[0]}:{rows[1]}"


def version(conn: Connection, as_of: dt.date | None = None) -> VersionInfo:
    """The boundary version in force on ``as_of`` (today by default)."""
    return version_in_force(conn, as_of)


def areas(conn: Connection, level: str, as_of: dt.date | None = None) -> gpd.GeoDataFrame:
    """The ``level`` areas of the version in force: public columns, households filled in.

    Where an area has no household count its grids' sum stands in, so per-household rates
    exist at every level. ``attrs["version"]`` names the version.
    """
    level_length(level)
    info = version(conn, as_of)
    key = (_database(conn, info.id), info.id, level)
    with _lock:
        hit = _cache.get(key)
    if hit is not None:
        return hit
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
    _remember(_cache, key, frame)
    return frame


def coverage(
    conn: Connection, area: str | None = None, as_of: dt.date | None = None
) -> shapely.Geometry:
    """The study area: the union of the version's grids, or one area's polygon by code."""
    if area is not None:
        level = _level_of(area)
        match = areas(conn, level, as_of)
        hit = match.loc[match["code"] == area, "geometry"]
        if hit.empty:
            raise NotFound(f"no area {area!r} in the boundary version in force")
        return hit.iloc[0]
    info = version(conn, as_of)
    key = (_database(conn, info.id), info.id)
    with _lock:
        geom = _coverage.get(key)
    if geom is None:
        grids = areas(conn, "grid", as_of)
        geom = shapely.union_all(np.asarray(grids.geometry.values), grid_size=None)
        _remember(_coverage, key, geom)
    return geom


def _level_of(code: str) -> str:
    level = level_of(code)
    if level is None:
        raise NotFound(f"not an area code: {code!r}")
    return level
