"""The boundary aggregate's SQL: versions (MapIt-style generations), their areas, the areas'
``ST_Subdivide`` parts, a version's extent and its tile-ready copy (``tile_areas``).

Area rows are shared by every version they are unchanged in: :func:`add_areas` is the one way
areas enter a version (a stored row linked by id, an identical row found by content
fingerprint, or a new row with its parts), and :func:`areas_of` the one way they are read back.
Functions run in the caller's connection and transaction and return rows or plain values; the
domain (``boundaries``, ``planning``, ``protocols``, ``tiles``, ``analytics``) decides.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import (
    BigInteger,
    Connection,
    Date,
    LargeBinary,
    Row,
    String,
    Text,
    and_,
    any_,
    bindparam,
    case,
    cast,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, aggregate_order_by
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.sql import ColumnElement, Select

from geo_service.boundaries.codes import CODE_LENGTH, Level
from geo_service.db.schema import (
    AREA_LEVELS,
    area_parts,
    areas,
    boundary_versions,
    tile_area_builds,
    tile_areas,
    units,
    version_areas,
)
from geo_service.locator.locator import VersionInfo

SUBDIVIDE_MAX_VERTICES: Final = 128  # vertices per area_parts piece
PUBLISHERS_LOCK: Final = 7401  # pg_advisory_xact_lock(key): one publisher at a time
TILE_COPY_LOCK: Final = 7402  # pg_advisory_xact_lock(class, version id): one builder per copy
OFFICIAL: Final = ("published", "retired")
CHAIN: Final[tuple[Level, ...]] = AREA_LEVELS[:-1]  # above an area, top down
_CONTENT: Final = ("code", "name", "level", "parent_code", "households", "population")
_LAYOUT_COLUMNS: Final = (*_CONTENT, "geometry")

bv = boundary_versions
Box = tuple[float, float, float, float]
AnyRow = Row[*tuple[Any, ...]]  # a result row of any width
TakeBack = Literal["unscheduled", "withdrawn", "ended"]


def _array(name: str, values: Sequence[Any], item: Any) -> Any:
    """A bound PostgreSQL array parameter, for ``= ANY(...)`` (one parameter, any length)."""
    return any_(bindparam(name, list(values), type_=ARRAY(item)))


# -- versions ------------------------------------------------------------------------------------

_VERSION = select(bv.c.id, bv.c.label, bv.c.status, bv.c.effective_from, bv.c.effective_to)


def _info(row: Any) -> VersionInfo:
    return VersionInfo(row.id, row.label, row.status, row.effective_from, row.effective_to)


def in_force(conn: Connection, day: dt.date) -> VersionInfo | None:
    """The published (or since retired) version whose range holds ``day``; the latest start
    wins where ranges overlap."""
    row = conn.execute(
        _VERSION.where(
            bv.c.status.in_(OFFICIAL),
            bv.c.effective_from <= day,
            or_(bv.c.effective_to.is_(None), bv.c.effective_to > day),
        )
        .order_by(bv.c.effective_from.desc(), bv.c.id.desc())
        .limit(1)
    ).one_or_none()
    return _info(row) if row is not None else None


def by_id(conn: Connection, version_id: int, *, for_update: bool = False) -> VersionInfo | None:
    """Version ``version_id`` (row-locked to commit when ``for_update``), None if there is none."""
    query = _VERSION.where(bv.c.id == version_id)
    row = conn.execute(query.with_for_update() if for_update else query).one_or_none()
    return _info(row) if row is not None else None


def by_label(conn: Connection, label: str) -> VersionInfo | None:
    """The version labelled ``label``, None if there is none."""
    row = conn.execute(_VERSION.where(bv.c.label == label)).one_or_none()
    return _info(row) if row is not None else None


def newest_first(conn: Connection) -> list[VersionInfo]:
    """Every version, newest first."""
    return [_info(r) for r in conn.execute(_VERSION.order_by(bv.c.id.desc()))]


def scheduled(conn: Connection) -> list[VersionInfo]:
    """Published or retired versions that have a range, in the order :func:`in_force` prefers
    them (latest start first)."""
    query = _VERSION.where(bv.c.status.in_(OFFICIAL), bv.c.effective_from.is_not(None))
    return [
        _info(r) for r in conn.execute(query.order_by(bv.c.effective_from.desc(), bv.c.id.desc()))
    ]


def official(conn: Connection) -> list[AnyRow]:
    """Published and retired versions in the order they took effect (one withdrawn on its first
    day, which has no range, at its publishing day), with publish and rollback times."""
    taken_effect = func.coalesce(bv.c.effective_from, cast(bv.c.published_at, Date))
    query = (
        select(
            bv.c.id,
            bv.c.label,
            bv.c.status,
            bv.c.effective_from,
            bv.c.effective_to,
            bv.c.published_at,
            bv.c.rolled_back_at,
        )
        .where(bv.c.status.in_(OFFICIAL))
        .order_by(taken_effect, bv.c.id)
    )
    return list(conn.execute(query).all())


def label_taken(conn: Connection, label: str) -> bool:
    """Whether a version is labelled ``label`` already."""
    return conn.execute(select(bv.c.id).where(bv.c.label == label).limit(1)).first() is not None


def insert_draft(conn: Connection, label: str, source: str, source_crs: str) -> int:
    """Insert an empty draft version row; return its id."""
    stmt = (
        insert(bv)
        .values(label=label, status="draft", source=source, source_crs=source_crs)
        .returning(bv.c.id)
    )
    return int(conn.execute(stmt).scalar_one())


def lock_publishers(conn: Connection) -> None:
    """Take the publishers' transaction lock: one publish or rollback at a time."""
    conn.execute(select(func.pg_advisory_xact_lock(PUBLISHERS_LOCK)))


def published_from_or_after(conn: Connection, day: dt.date) -> str | None:
    """Label of a published version in force from ``day`` or later, if there is one."""
    query = select(bv.c.label).where(bv.c.status == "published", bv.c.effective_from >= day)
    return conn.execute(query.limit(1)).scalar_one_or_none()


def close_published(conn: Connection, day: dt.date) -> list[AnyRow]:
    """End on ``day`` the ranges of published versions still open then (retired if ``day``
    has come); return their ids and starts."""
    stmt = (
        update(bv)
        .where(
            bv.c.status == "published", or_(bv.c.effective_to.is_(None), bv.c.effective_to > day)
        )
        .values(
            effective_to=day,
            status=case((literal(day, Date) <= func.current_date(), "retired"), else_=bv.c.status),
        )
        .returning(bv.c.id, bv.c.effective_from)
    )
    return list(conn.execute(stmt).all())


def mark_published(
    conn: Connection, version_id: int, effective_from: dt.date, replaces: int | None
) -> None:
    """Record ``version_id`` as published from ``effective_from``, replacing ``replaces``."""
    conn.execute(
        update(bv)
        .where(bv.c.id == version_id)
        .values(
            status="published",
            effective_from=effective_from,
            effective_to=None,
            published_at=func.now(),
            replaces_id=replaces,
        )
    )


def replaced_by(conn: Connection, version_id: int) -> int | None:
    """The version whose range publishing ``version_id`` closed (None for the first one)."""
    query = select(bv.c.replaces_id).where(bv.c.id == version_id)
    return conn.execute(query).scalar_one_or_none()


def take_back(conn: Connection, version_id: int, mode: TakeBack, day: dt.date) -> None:
    """Leave a rolled-back version *unscheduled* (a draft again), *withdrawn* (retired, no
    range) or *ended* (retired, its range ending on ``day``)."""
    changes: dict[str, Any]
    if mode == "unscheduled":
        changes = {
            "status": "draft",
            "effective_from": None,
            "effective_to": None,
            "published_at": None,
            "replaces_id": None,
        }
    elif mode == "withdrawn":
        changes = {
            "status": "retired",
            "effective_from": None,
            "effective_to": None,
            "rolled_back_at": func.now(),
        }
    else:
        changes = {"status": "retired", "effective_to": day, "rolled_back_at": func.now()}
    conn.execute(update(bv).where(bv.c.id == version_id).values(**changes))


def reopen(conn: Connection, version_id: int) -> None:
    """Put ``version_id`` back in force: published, its range open again."""
    conn.execute(
        update(bv).where(bv.c.id == version_id).values(status="published", effective_to=None)
    )


def membership_signature(conn: Connection, version_id: int) -> str | None:
    """``status:digest of the member row ids`` of a version (None when there is no such
    version): changes with every publish and every edit, for keying caches."""
    va = version_areas
    ids = func.string_agg(cast(va.c.area_id, Text), aggregate_order_by(literal(","), va.c.area_id))
    query = (
        select(bv.c.status.concat(":").concat(func.coalesce(func.md5(ids), "")))
        .select_from(bv.outerjoin(va, va.c.version_id == bv.c.id))
        .where(bv.c.id == version_id)
        .group_by(bv.c.status)
    )
    return conn.execute(query).scalar_one_or_none()


# -- areas of a version --------------------------------------------------------------------------


def areas_of(
    conn: Connection,
    version: int | Sequence[int],
    *,
    codes: Sequence[str] | None = None,
    levels: Sequence[str] | None = None,
    parent_code: str | None = None,
    geometry: bool = True,
    within: Box | None = None,
) -> list[AnyRow]:
    """Areas of a version (or of several), filtered by codes, levels, parent and a lon/lat box
    their bounding box meets (``within``: minx, miny, maxx, maxy), by code.

    Rows: version_id, area_id, code, name, level, parent_code, households, population,
    attributes and, when ``geometry``, ``wkb`` (exact WGS84 coordinates).
    """
    va, a = version_areas, areas
    cols: list[Any] = [va.c.version_id, a.c.id.label("area_id"), va.c.code, a.c.name, va.c.level]
    cols += [a.c.parent_code, a.c.households, a.c.population, a.c.attributes]
    if geometry:
        cols.append(func.ST_AsBinary(a.c.geom, type_=LargeBinary).label("wkb"))
    query = select(*cols).select_from(va.join(a, a.c.id == va.c.area_id))
    if isinstance(version, int):
        query = query.where(va.c.version_id == version)
    else:
        query = query.where(va.c.version_id == _array("versions", version, BigInteger))
    if codes is not None:
        query = query.where(va.c.code == _array("codes", codes, String))
    if levels is not None:
        query = query.where(va.c.level == _array("levels", levels, String))
    if parent_code is not None:
        query = query.where(a.c.parent_code == parent_code)
    if within is not None:
        envelope = func.ST_MakeEnvelope(*(float(v) for v in within), 4326)
        query = query.where(a.c.geom.op("&&")(envelope))  # bounding boxes: the index alone
    return list(conn.execute(query.order_by(va.c.code, va.c.version_id)).all())


def codes_ever_used(conn: Connection, level: str) -> set[str]:
    """Every code any stored version has used at ``level``."""
    query = select(version_areas.c.code).where(version_areas.c.level == level).distinct()
    return set(conn.execute(query).scalars())


def codes_taken(
    conn: Connection, version_id: int, codes: Sequence[str], leaving: Sequence[str]
) -> list[str]:
    """Which of ``codes`` a version already has, not counting the members in ``leaving``."""
    va = version_areas
    query = (
        select(va.c.code)
        .where(
            va.c.version_id == version_id,
            va.c.code == _array("codes", codes, String),
            ~(va.c.code == _array("leaving", leaving, String)),
        )
        .order_by(va.c.code)
    )
    return list(conn.execute(query).scalars())


def unlink(conn: Connection, version_id: int, area_ids: Sequence[int]) -> None:
    """Take the rows ``area_ids`` out of a version (the rows stay for every other version)."""
    va = version_areas
    conn.execute(
        va.delete().where(
            va.c.version_id == version_id, va.c.area_id == _array("ids", area_ids, BigInteger)
        )
    )


# -- adding areas --------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A JSON-safe Python value from a pandas/numpy cell (NaN → None)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return value


def _int_or_none(value: Any) -> int | None:
    value = _plain(value)
    return None if value is None or value == "" else int(value)


def area_rows(frame: gpd.GeoDataFrame) -> list[dict[str, Any]]:
    """One insertable dict per area of a layout frame, with its content fingerprint.

    Columns other than the layout's (code, name, level, parent_code, households, population)
    become JSON attributes; the fingerprint hashes every field and the exact 2-D WKB, so only an
    identical area finds a stored row.
    """
    extra = [c for c in frame.columns if c not in _LAYOUT_COLUMNS and c != frame.geometry.name]
    wkbs = shapely.to_wkb(shapely.force_2d(frame.geometry.to_numpy()), hex=False)
    rows = []
    # records, not itertuples: attribute names need not be Python identifiers ("grid worker")
    records = pd.DataFrame(frame.drop(columns=frame.geometry.name)).to_dict("records")
    for i, r in enumerate(records):
        attrs = {c: _plain(r[c]) for c in extra if _plain(r[c]) is not None}
        row = {
            "code": r["code"],
            "name": r["name"],
            "level": r["level"],
            "parent_code": _plain(r["parent_code"]) or None,
            "households": _int_or_none(r.get("households")),
            "population": _int_or_none(r.get("population")),
            "attributes": json.dumps(attrs, ensure_ascii=False, sort_keys=True),
        }
        digest = hashlib.sha256()
        for key in (*_CONTENT, "attributes"):
            digest.update(repr(row[key]).encode())
        digest.update(wkbs[i])
        row["fingerprint"] = digest.hexdigest()
        row["wkb"] = wkbs[i]
        rows.append(row)
    return rows


@dataclass(frozen=True)
class AddedAreas:
    """What :func:`add_areas` did: the row id of each area, in order, and how many were new."""

    ids: list[int]
    inserted: int

    @property
    def shared(self) -> int:
        """Areas linked to a row that was stored already."""
        return len(self.ids) - self.inserted


_INSERT_AREAS = (
    insert(areas)
    .values(
        attributes=cast(bindparam("attributes_json", type_=Text), JSONB),
        geom=func.ST_Multi(func.ST_GeomFromWKB(bindparam("wkb", type_=LargeBinary), 4326)),
    )
    .returning(areas.c.id, areas.c.fingerprint, sort_by_parameter_order=True)
)


def add_areas(
    conn: Connection,
    version_id: int,
    frame: gpd.GeoDataFrame,
    *,
    area_ids: Sequence[int | None] | None = None,
) -> AddedAreas:
    """Make the areas of layout ``frame`` members of version ``version_id``.

    An area with an ``area_ids`` entry is linked to that stored row as it is; any other is
    linked to a stored row with the same content fingerprint, or inserted (with its
    ``ST_Subdivide`` parts) when there is none. Stored rows are never changed.
    """
    given: list[int | None] = list(area_ids) if area_ids is not None else [None] * len(frame)
    if len(given) != len(frame):
        raise ValueError(f"{len(given)} area ids for {len(frame)} areas")
    todo = [i for i, a in enumerate(given) if a is None]
    rows = area_rows(frame.iloc[todo]) if todo else []
    found: dict[str, int] = {}
    if rows:
        query = (  # the oldest row of each fingerprint, as every version before shared it
            select(areas.c.fingerprint, func.min(areas.c.id))
            .where(areas.c.fingerprint == _array("f", [r["fingerprint"] for r in rows], String))
            .group_by(areas.c.fingerprint)
        )
        found = {fp: int(i) for fp, i in conn.execute(query)}
    fresh = list({r["fingerprint"]: r for r in rows if r["fingerprint"] not in found}.values())
    if fresh:
        params = [
            {
                **{k: r[k] for k in (*_CONTENT, "fingerprint", "wkb")},
                "attributes_json": r["attributes"],
            }
            for r in fresh
        ]
        new_ids = [int(i) for i, _fp in conn.execute(_INSERT_AREAS, params)]
        found.update(zip((r["fingerprint"] for r in fresh), new_ids, strict=True))
        parts = select(areas.c.id, func.ST_Subdivide(areas.c.geom, SUBDIVIDE_MAX_VERTICES))
        conn.execute(
            insert(area_parts).from_select(
                ["area_id", "geom"],
                parts.where(areas.c.id == _array("ids", new_ids, BigInteger)),
            )
        )
    stored = iter(found[r["fingerprint"]] for r in rows)
    ids = [a if a is not None else next(stored) for a in given]
    codes, levels = frame["code"].tolist(), frame["level"].tolist()
    if ids:
        conn.execute(
            insert(version_areas),
            [
                {"version_id": version_id, "area_id": i, "code": c, "level": lvl}
                for i, c, lvl in zip(ids, codes, levels, strict=True)
            ],
        )
    return AddedAreas(ids, len(fresh))


# -- extent and map features ---------------------------------------------------------------------


def extent(conn: Connection, version_id: int, level: str | None = None) -> Box | None:
    """Bounds (west, south, east, north) of a version's areas (of one level), None if empty."""
    va, a = version_areas, areas
    query = select(func.ST_Extent(a.c.geom).label("e")).select_from(
        va.join(a, a.c.id == va.c.area_id)
    )
    query = query.where(va.c.version_id == version_id)
    if level is not None:
        query = query.where(va.c.level == level)
    e = query.subquery().c.e
    row = conn.execute(select(func.ST_XMin(e), func.ST_YMin(e), func.ST_XMax(e), func.ST_YMax(e)))
    w, s, east, n = row.one()
    if w is None:
        return None
    return float(w), float(s), float(east), float(n)


def _matching(version_id: int, level: str, bbox: Box | None, code: str | None) -> Select[Any]:
    """Ids and codes of the ``level`` areas of a version that meet ``bbox`` (or have ``code``)."""
    va, a = version_areas.alias("va"), areas.alias("a")
    query = (
        select(a.c.id, a.c.code)
        .select_from(va.join(a, a.c.id == va.c.area_id))
        .where(va.c.version_id == version_id, va.c.level == level)
    )
    if bbox is not None:
        query = query.where(a.c.geom.op("&&")(func.ST_MakeEnvelope(*bbox, 4326)))
    if code is not None:
        query = query.where(a.c.code == code)
    return query


def _features(version_id: int, level: str, unit_type: str, page: Any) -> Select[Any]:
    """The areas of ``page`` (a subquery of ids) with their chain and own unit names."""
    a = areas.alias("a_page")
    own = units.alias("own")
    cols: list[ColumnElement[Any]] = [a.c.code, a.c.name, a.c.level, a.c.parent_code]
    cols += [a.c.households, a.c.population]
    joined: Any = page.join(a, a.c.id == page.c.id)
    own_length = CODE_LENGTH[level]  # type: ignore[index]
    for up in CHAIN:
        length = CODE_LENGTH[up]
        if length >= own_length:
            break
        uva, ua = version_areas.alias(f"v_{up}"), areas.alias(f"a_{up}")
        joined = joined.outerjoin(
            uva,
            and_(uva.c.version_id == version_id, uva.c.code == func.left(a.c.code, length)),
        ).outerjoin(ua, ua.c.id == uva.c.area_id)
        cols += [uva.c.code.label(f"{up}_code"), ua.c.name.label(f"{up}_name")]
    joined = joined.outerjoin(own, and_(own.c.unit_type == unit_type, own.c.area_code == a.c.code))
    cols += [own.c.name.label("unit_name"), func.ST_AsGeoJSON(a.c.geom).label("geometry")]
    return select(*cols).select_from(joined).order_by(a.c.code)


def count_areas(conn: Connection, version_id: int, level: str, bbox: Box | None = None) -> int:
    """How many ``level`` areas of a version meet ``bbox`` (all of them without one)."""
    matching = _matching(version_id, level, bbox, None).subquery()
    return int(conn.execute(select(func.count()).select_from(matching)).scalar_one())


def area_features(
    conn: Connection,
    version_id: int,
    level: str,
    unit_type: str,
    *,
    bbox: Box | None = None,
    code: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[AnyRow]:
    """``level`` areas of a version by code (a page of those meeting ``bbox``, or the one with
    ``code``): code, name, level, parent_code, households, population, ``{up}_code`` and
    ``{up}_name`` for each level above, the own unit's name (``unit_type``) and GeoJSON."""
    matching = _matching(version_id, level, bbox, code)
    page = matching.order_by(matching.selected_columns.code).limit(limit).offset(offset)
    return list(conn.execute(_features(version_id, level, unit_type, page.subquery("page"))).all())


# -- tile-ready copies ---------------------------------------------------------------------------


def _fill_copy(version_id: int, own_unit: Mapping[str, str]) -> Any:
    """INSERT … SELECT of a version's tile-ready rows: each area with the codes and names of
    the areas above it (by code prefix) and the name of its own unit (``own_unit[level]``)."""
    va, a, un = version_areas.alias("va"), areas.alias("a"), units.alias("un")
    cols: list[Any] = [va.c.version_id, a.c.id, va.c.level, a.c.code, a.c.name]
    cols += [a.c.parent_code, a.c.households, a.c.population]
    joined: Any = va.join(a, a.c.id == va.c.area_id)
    for up in CHAIN:
        length = CODE_LENGTH[up]
        longer = func.length(a.c.code) > length
        uva, ua = version_areas.alias(f"v_{up}"), areas.alias(f"a_{up}")
        joined = joined.outerjoin(
            uva,
            and_(
                uva.c.version_id == va.c.version_id,
                uva.c.code == func.left(a.c.code, length),
                longer,
            ),
        ).outerjoin(ua, ua.c.id == uva.c.area_id)
        cols += [case((longer, func.left(a.c.code, length))), ua.c.name]
    own_type = case(dict(own_unit), value=va.c.level)
    joined = joined.outerjoin(un, and_(un.c.area_code == a.c.code, un.c.unit_type == own_type))
    cols += [un.c.name, func.ST_Transform(a.c.geom, 3857)]
    names = ["version_id", "area_id", "level", "code", "name", "parent_code", "households"]
    names += ["population"] + [f"{up}_{part}" for up in CHAIN for part in ("code", "name")]
    names += ["unit_name", "geom"]
    rows = select(*cols).select_from(joined).where(va.c.version_id == version_id)
    return insert(tile_areas).from_select(names, rows)


def refresh_tile_copy(
    conn: Connection, version_id: int, generation: int, own_unit: Mapping[str, str]
) -> bool:
    """(Re)build a version's ``tile_areas`` copy unless one at ``generation`` or later exists,
    under the copy's lock, in the caller's transaction; ``own_unit`` maps a level to the unit
    type named on its areas. Returns whether it built."""
    builds = tile_area_builds
    conn.execute(select(func.pg_advisory_xact_lock(TILE_COPY_LOCK, version_id)))
    built = conn.execute(
        select(builds.c.generation).where(builds.c.version_id == version_id)
    ).scalar_one_or_none()
    if built is not None and built >= generation:
        return False
    conn.execute(tile_areas.delete().where(tile_areas.c.version_id == version_id))
    conn.execute(_fill_copy(version_id, own_unit))
    mark = pg_insert(builds).values(version_id=version_id, generation=generation)
    conn.execute(
        mark.on_conflict_do_update(
            index_elements=[builds.c.version_id],
            set_={"generation": mark.excluded.generation, "built_at": func.now()},
        )
    )
    return True
