"""Boundary versions in PostGIS: which is in force, their areas, publishing on a date."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import geopandas as gpd
import shapely
from sqlalchemy import Connection

from geo_service.errors import Conflict, InvalidInput, NoBoundaryVersion, NotFound
from geo_service.locator.locator import VersionInfo
from geo_service.store import versions as store


def parse_date(value: dt.date | str | None) -> dt.date | None:
    """A date from ``YYYY-MM-DD`` (or a date, or None), with a 4xx error naming a bad value."""
    if value is None or isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput(f"not a date (YYYY-MM-DD): {value!r}") from exc


def version_in_force(conn: Connection, as_of: dt.date | None = None) -> VersionInfo:
    """The published (or since retired) version whose effective range holds ``as_of``."""
    day = as_of or dt.date.today()
    info = store.in_force(conn, day)
    if info is None:
        raise NoBoundaryVersion(f"no boundary version is in force on {day.isoformat()}")
    return info


def get_version(conn: Connection, key: int | str) -> VersionInfo:
    """A version by id or label."""
    if isinstance(key, int) or (isinstance(key, str) and key.isascii() and key.isdigit()):
        number = int(key)  # a version id is a PostgreSQL integer: past it, no such version
        info = store.by_id(conn, number) if 0 < number < 2**31 else None
    else:
        info = store.by_label(conn, key)
    if info is None:
        raise NotFound(f"no boundary version {key!r}")
    return info


def list_versions(conn: Connection) -> list[VersionInfo]:
    """Every version, newest first."""
    return store.newest_first(conn)


def load_areas(
    conn: Connection, version_id: int | None, levels: tuple[str, ...] | None = None
) -> gpd.GeoDataFrame:
    """The areas of a version (all levels unless ``levels``), WGS84, exact coordinates."""
    rows = (
        store.areas_of(conn, version_id, levels=levels or None) if version_id is not None else []
    )
    data = [
        {
            "area_id": r.area_id,
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
    store.lock_publishers(conn)
    later = store.published_from_or_after(conn, effective_from)
    if later is not None:
        raise Conflict(
            f"version {later!r} is in force from {effective_from.isoformat()} or later: "
            "publish with a later effective date"
        )
    closed = store.close_published(conn, effective_from)
    replaced = max(closed, key=lambda r: (r.effective_from, r.id)).id if closed else None
    store.mark_published(conn, version_id, effective_from, replaced)
    return get_version(conn, version_id)


@dataclass(frozen=True)
class Rollback:
    """What a rollback did: the version taken back, the one restored, and how (see rollback)."""

    rolled_back: VersionInfo
    restored: VersionInfo
    mode: store.TakeBack  # "unscheduled", "withdrawn" or "ended"


def replaced_by_publish(conn: Connection, version_id: int) -> int | None:
    """The version whose range publishing ``version_id`` closed (None for the first one)."""
    return store.replaced_by(conn, version_id)


def rollback(conn: Connection, version_id: int, today: dt.date | None = None) -> Rollback:
    """Take back the latest published version and put the one it replaced back in force.

    Runs in the caller's transaction, under the publishers' lock. The version taken back is
    *unscheduled* (back to draft) if it was not yet in force, *withdrawn* (retired with no
    range) if it came into force today, else *ended* (retired, its range ending today, so
    ``as_of`` still answers it for the days it was in force). The restored version's range is
    reopened; where ranges then overlap, the later start wins (as :func:`version_in_force`).
    """
    day = today or dt.date.today()
    store.lock_publishers(conn)
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
    mode: store.TakeBack
    if info.effective_from > day:
        mode = "unscheduled"
    else:
        mode = "withdrawn" if info.effective_from == day else "ended"
    store.take_back(conn, version_id, mode, day)
    store.reopen(conn, previous)
    return Rollback(get_version(conn, version_id), get_version(conn, previous), mode)
