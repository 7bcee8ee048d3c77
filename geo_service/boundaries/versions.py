"""Boundary versions in PostGIS: which is in force, their areas, publishing on a date."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import shapely
from sqlalchemy import Connection, text

from geo_service.errors import Conflict, InvalidInput, NoBoundaryVersion, NotFound
from geo_service.locator.locator import VersionInfo

SELECT_VERSION = "SELECT id, label, status, effective_from, effective_to FROM boundary_versions "


def parse_date(value: dt.date | str | None) -> dt.date | None:
    """A date from ``YYYY-MM-DD`` (or a date, or None), with a 4xx error naming a bad value."""
    if value is None or isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput(f"not a date (YYYY-MM-DD): {value!r}") from exc


def _info(row: Any) -> VersionInfo:
    return VersionInfo(row.id, row.label, row.status, row.effective_from, row.effective_to)


def version_in_force(conn: Connection, as_of: dt.date | None = None) -> VersionInfo:
    """The published (or since retired) version whose effective range holds ``as_of``."""
    day = as_of or dt.date.today()
    row = conn.execute(
        text(
            SELECT_VERSION + "WHERE status IN ('published', 'retired') AND effective_from <= :day "
            "AND (effective_to IS NULL OR effective_to > :day) "
            "ORDER BY effective_from DESC, id DESC LIMIT 1"
        ),
        {"day": day},
    ).one_or_none()
    if row is None:
        raise NoBoundaryVersion(f"no boundary version is in force on {day.isoformat()}")
    return _info(row)


def get_version(conn: Connection, key: int | str) -> VersionInfo:
    """A version by id or label."""
    if isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
        row = conn.execute(
            text(SELECT_VERSION + "WHERE id = :k"),
            {"k": int(key)},
        ).one_or_none()
    else:
        row = conn.execute(
            text(SELECT_VERSION + "WHERE label = :k"),
            {"k": key},
        ).one_or_none()
    if row is None:
        raise NotFound(f"no boundary version {key!r}")
    return _info(row)


def list_versions(conn: Connection) -> list[VersionInfo]:
    """Every version, newest first."""
    rows = conn.execute(text(SELECT_VERSION + "ORDER BY id DESC")).all()
    return [_info(r) for r in rows]


def load_areas(
    conn: Connection, version_id: int | None, levels: tuple[str, ...] | None = None
) -> gpd.GeoDataFrame:
    """The areas of a version (all levels unless ``levels``), WGS84, exact coordinates."""
    rows = conn.execute(
        text(
            "SELECT a.id, a.code, a.name, a.level, a.parent_code, a.households, a.population, "
            "a.attributes, ST_AsBinary(a.geom) AS wkb "
            "FROM version_areas va JOIN areas a ON a.id = va.area_id "
            "WHERE va.version_id = :v AND (CAST(:levels AS text[]) IS NULL "
            "OR va.level = ANY(CAST(:levels AS text[]))) ORDER BY a.code"
        ),
        {"v": version_id, "levels": list(levels) if levels else None},
    ).all()
    data = [
        {
            "area_id": r.id,
            "code": r.code,
            "name": r.name,
            "level": r.level,
            "parent_code": r.parent_code or "",
            "households": r.households,
            "population": r.population,
            **(r.attributes or {}),
        }
        for r in rows
    ]
    geoms = shapely.from_wkb([bytes(r.wkb) for r in rows])
    return gpd.GeoDataFrame(data, geometry=list(geoms), crs="EPSG:4326")


def publish(conn: Connection, version_id: int, effective_from: dt.date) -> VersionInfo:
    """Make a draft the version in force from ``effective_from``, closing the one before.

    Runs in the caller's transaction, so the switch is atomic. A version already scheduled
    on or after that date is a conflict: publish dates move forward only.
    """
    info = get_version(conn, version_id)
    if info.status != "draft":
        raise Conflict(f"version {info.label!r} is {info.status}, only a draft can be published")
    conn.execute(text("SELECT pg_advisory_xact_lock(7401)"))  # one publisher at a time
    later = conn.execute(
        text(
            "SELECT label FROM boundary_versions WHERE status = 'published' "
            "AND effective_from >= :d"
        ),
        {"d": effective_from},
    ).first()
    if later is not None:
        raise Conflict(
            f"version {later.label!r} is in force from {effective_from.isoformat()} or later: "
            "publish with a later effective date"
        )
    closed = conn.execute(
        text(
            "UPDATE boundary_versions SET effective_to = :d, "
            "status = CASE WHEN :d <= CURRENT_DATE THEN 'retired' ELSE status END "
            "WHERE status = 'published' AND (effective_to IS NULL OR effective_to > :d) "
            "RETURNING id, effective_from"
        ),
        {"d": effective_from},
    ).all()
    replaced = max(closed, key=lambda r: (r.effective_from, r.id)).id if closed else None
    conn.execute(
        text(
            "UPDATE boundary_versions SET status = 'published', effective_from = :d, "
            "effective_to = NULL, published_at = now(), replaces_id = :r WHERE id = :v"
        ),
        {"d": effective_from, "v": version_id, "r": replaced},
    )
    return get_version(conn, version_id)


# how a rolled-back version is left, by when it came into force (see rollback)
_TAKE_BACK = {
    "unscheduled": text(
        "UPDATE boundary_versions SET status = 'draft', effective_from = NULL, "
        "effective_to = NULL, published_at = NULL, replaces_id = NULL WHERE id = :v"
    ),
    "withdrawn": text(
        "UPDATE boundary_versions SET status = 'retired', effective_from = NULL, "
        "effective_to = NULL, rolled_back_at = now() WHERE id = :v"
    ),
    "ended": text(
        "UPDATE boundary_versions SET status = 'retired', effective_to = :d, "
        "rolled_back_at = now() WHERE id = :v"
    ),
}


@dataclass(frozen=True)
class Rollback:
    """What a rollback did: the version taken back, the one restored, and how (see rollback)."""

    rolled_back: VersionInfo
    restored: VersionInfo
    mode: str  # "unscheduled", "withdrawn" or "ended"


def replaced_by_publish(conn: Connection, version_id: int) -> int | None:
    """The version whose range publishing ``version_id`` closed (None for the first one)."""
    return conn.execute(
        text("SELECT replaces_id FROM boundary_versions WHERE id = :v"), {"v": version_id}
    ).scalar_one_or_none()


def rollback(conn: Connection, version_id: int, today: dt.date | None = None) -> Rollback:
    """Take back the latest published version and put the one it replaced back in force.

    Runs in the caller's transaction, under the publishers' lock. The version taken back is
    *unscheduled* (back to draft) if it was not yet in force, *withdrawn* (retired with no
    range) if it came into force today, else *ended* (retired, its range ending today, so
    ``as_of`` still answers it for the days it was in force). The restored version's range is
    reopened; where ranges then overlap, the later start wins (as :func:`version_in_force`).
    """
    day = today or dt.date.today()
    conn.execute(text("SELECT pg_advisory_xact_lock(7401)"))  # one publisher at a time
    info = get_version(conn, version_id)
    if info.status != "published" or info.effective_to is not None:
        raise Conflict(
            f"version {info.label!r} is {info.status}"
            + (f" until {info.effective_to.isoformat()}" if info.effective_to else "")
            + ": only the latest published version can be rolled back"
        )
    previous = replaced_by_publish(conn, version_id)
    if previous is None:
        raise Conflict(f"version {info.label!r} replaced no version: nothing to roll back to")
    assert info.effective_from is not None
    if info.effective_from > day:
        mode = "unscheduled"
    else:
        mode = "withdrawn" if info.effective_from == day else "ended"
    conn.execute(_TAKE_BACK[mode], {"v": version_id, "d": day})
    conn.execute(
        text(
            "UPDATE boundary_versions SET status = 'published', effective_to = NULL "
            "WHERE id = :p"
        ),
        {"p": previous},
    )
    return Rollback(get_version(conn, version_id), get_version(conn, previous), mode)
