"""Area features of one level of the boundary version in force: the same attributes the
``grids``/``areas`` tiles carry (code, name, chain, households, population, own unit)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
from sqlalchemy import Connection, Integer, String, and_, column, func, select, table
from sqlalchemy.sql import Select

from geo_service.boundaries.codes import CODE_LENGTH
from geo_service.boundaries.versions import version_in_force
from geo_service.errors import InvalidInput, NoBoundaryVersion, NotFound
from geo_service.locator.locator import VersionInfo
from geo_service.protocols.ogc.params import ItemsQuery
from geo_service.tiles.layers import OWN_UNIT

areas = table(
    "areas",
    column("id", Integer),
    column("code", String),
    column("name", String),
    column("level", String),
    column("parent_code", String),
    column("households", Integer),
    column("population", Integer),
    column("geom"),
)
version_areas = table(
    "version_areas",
    column("version_id", Integer),
    column("area_id", Integer),
    column("code", String),
    column("level", String),
)
units = table("units", column("name", String), column("unit_type", String), column("area_code"))
CHAIN = ("district", "town", "community")
A = areas.alias("a")
VA = version_areas.alias("va")
Box = tuple[float, float, float, float]


def version_for(conn: Connection, q: ItemsQuery) -> VersionInfo:
    """The version in force on the query's day (today when none is given)."""
    if q.interval:
        raise InvalidInput("datetime: boundary collections take one day (the version in force)")
    return version_in_force(conn, q.day)


def _matching(version_id: int, level: str, bbox: Box | None, code: str | None) -> Select[Any]:
    """Ids and codes of the ``level`` areas of a version that meet ``bbox`` (or have ``code``)."""
    query = (
        select(A.c.id, A.c.code)
        .select_from(VA.join(A, A.c.id == VA.c.area_id))
        .where(VA.c.version_id == version_id, VA.c.level == level)
    )
    if bbox is not None:
        query = query.where(A.c.geom.op("&&")(func.ST_MakeEnvelope(*bbox, 4326)))
    if code is not None:
        query = query.where(A.c.code == code)
    return query


def _features(version_id: int, level: str, page: Any) -> Select[Any]:
    """The areas of ``page`` (a subquery of ids) with their chain names and own unit."""
    a = areas.alias("a_page")
    own = units.alias("own")
    cols: list[Any] = [a.c.code, a.c.name, a.c.level, a.c.parent_code, a.c.households]
    cols.append(a.c.population)
    joined: Any = page.join(a, a.c.id == page.c.id)
    own_length = CODE_LENGTH[level]  # type: ignore[index]
    for up in CHAIN:
        length = CODE_LENGTH[up]  # type: ignore[index]
        if length >= own_length:
            break
        uva, ua = version_areas.alias(f"v_{up}"), areas.alias(f"a_{up}")
        joined = joined.outerjoin(
            uva,
            and_(uva.c.version_id == version_id, uva.c.code == func.left(a.c.code, length)),
        ).outerjoin(ua, ua.c.id == uva.c.area_id)
        cols += [uva.c.code.label(f"{up}_code"), ua.c.name.label(f"{up}_name")]
    joined = joined.outerjoin(
        own, and_(own.c.unit_type == OWN_UNIT[level], own.c.area_code == a.c.code)
    )
    cols += [own.c.name.label("unit_name"), func.ST_AsGeoJSON(a.c.geom).label("geometry")]
    return select(*cols).select_from(joined).order_by(a.c.code)


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
    matching = _matching(version.id, level, q.bbox, None)
    total = conn.execute(select(func.count()).select_from(matching.subquery())).scalar_one()
    page = matching.order_by(A.c.code).limit(q.limit).offset(q.offset).subquery("page")
    rows = conn.execute(_features(version.id, level, page)).all()
    return [_feature(r) for r in rows], int(total), version


def area_item(conn: Connection, level: str, code: str, day: dt.date | None) -> dict[str, Any]:
    """One area by code in the version in force on ``day`` (404 naming it otherwise)."""
    version = version_in_force(conn, day)
    assert version.id is not None
    page = _matching(version.id, level, None, code).subquery("page")
    row = conn.execute(_features(version.id, level, page)).one_or_none()
    if row is None:
        raise NotFound(f"no {level} {code!r} in boundary version {version.label!r}")
    return _feature(row)


def area_extent(conn: Connection, level: str) -> tuple[list[float] | None, VersionInfo | None]:
    """Bounds of the level's areas in the version in force today, and that version."""
    try:
        version = version_in_force(conn)
    except NoBoundaryVersion:
        return None, None
    va, a = VA, A
    extent = func.ST_Extent(a.c.geom).label("e")
    sub = (
        select(extent)
        .select_from(va.join(a, a.c.id == va.c.area_id))
        .where(va.c.version_id == version.id, va.c.level == level)
        .subquery()
    )
    row = conn.execute(
        select(*(fn(sub.c.e) for fn in (func.ST_XMin, func.ST_YMin, func.ST_XMax, func.ST_YMax)))
    ).one()
    if row[0] is None:
        return None, version
    return [float(v) for v in row], version
