"""Area features of one level of the boundary version in force: the same attributes the
``grids``/``areas`` tiles carry (code, name, chain, households, population, own unit)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
from sqlalchemy import Connection

from geo_service.boundaries.versions import version_in_force
from geo_service.errors import InvalidInput, NoBoundaryVersion, NotFound
from geo_service.locator.locator import VersionInfo
from geo_service.protocols.ogc.params import ItemsQuery
from geo_service.store import versions as store
from geo_service.tiles.layers import OWN_UNIT


def version_for(conn: Connection, q: ItemsQuery) -> VersionInfo:
    """The version in force on the query's day (today when none is given)."""
    if q.interval:
        raise InvalidInput("datetime: boundary collections take one day (the version in force)")
    return version_in_force(conn, q.day)


def _feature(row: Any) -> dict[str, Any]:
    m = dict(row._mapping)
    geometry = m.pop("geometry")
    return {
        "type": "Feature",
        "id": m["code"],
        "geometry": orjson.Fragment(geometry),
        "properties": m,
    }


def area_items(
    conn: Connection, level: str, q: ItemsQuery
) -> tuple[list[dict[str, Any]], int, VersionInfo]:
    """One page of areas (by code) matching the bbox, how many match, and the version."""
    version = version_for(conn, q)
    assert version.id is not None
    total = store.count_areas(conn, version.id, level, q.bbox)
    rows = store.area_features(
        conn, version.id, level, OWN_UNIT[level], bbox=q.bbox, limit=q.limit, offset=q.offset
    )
    return [_feature(r) for r in rows], total, version


def area_item(conn: Connection, level: str, code: str, day: dt.date | None) -> dict[str, Any]:
    """One area by code in the version in force on ``day`` (404 naming it otherwise)."""
    version = version_in_force(conn, day)
    assert version.id is not None
    rows = store.area_features(conn, version.id, level, OWN_UNIT[level], code=code)
    if not rows:
        raise NotFound(f"no {level} {code!r} in boundary version {version.label!r}")
    return _feature(rows[0])


def area_extent(conn: Connection, level: str) -> tuple[list[float] | None, VersionInfo | None]:
    """Bounds of the level's areas in the version in force today, and that version."""
    try:
        version = version_in_force(conn)
    except NoBoundaryVersion:
        return None, None
    assert version.id is not None
    box = store.extent(conn, version.id, level)
    return (list(box) if box is not None else None), version
