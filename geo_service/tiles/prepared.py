"""Tile-ready copies of a version's areas (``tile_areas``, migration 0005): Web Mercator
geometry with the chain names and the area's own unit flattened in, so an area tile is one
index probe, no join and no reprojection per request.

A copy is rebuilt when the ``boundaries`` generation it was built at is behind the one the
caller read (any change to versions, areas or units); workers agree through
``tile_area_builds`` and an advisory lock, so one of them builds and the others reuse it.
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Final

from sqlalchemy import Connection, Engine, text

from geo_service.boundaries.versions import version_in_force
from geo_service.tiles.layers import OWN_UNIT

_LOCK_CLASS: Final = 7402  # pg_advisory_xact_lock(class, version id)
_BUILT = text("SELECT generation FROM tile_area_builds WHERE version_id = :v")
_CLEAR = text("DELETE FROM tile_areas WHERE version_id = :v")
_FILL = text("""
    INSERT INTO tile_areas (version_id, area_id, level, code, name, parent_code, households,
        population, district_code, district_name, town_code, town_name, community_code,
        community_name, unit_name, geom)
    SELECT va.version_id, a.id, va.level, a.code, a.name, a.parent_code, a.households,
        a.population,
        CASE WHEN length(a.code) > 6 THEN left(a.code, 6) END, ad.name,
        CASE WHEN length(a.code) > 9 THEN left(a.code, 9) END, atn.name,
        CASE WHEN length(a.code) > 12 THEN left(a.code, 12) END, ac.name,
        un.name, ST_Transform(a.geom, 3857)
    FROM version_areas va
    JOIN areas a ON a.id = va.area_id
    LEFT JOIN version_areas vd
        ON vd.version_id = va.version_id AND vd.code = left(a.code, 6) AND length(a.code) > 6
    LEFT JOIN areas ad ON ad.id = vd.area_id
    LEFT JOIN version_areas vt
        ON vt.version_id = va.version_id AND vt.code = left(a.code, 9) AND length(a.code) > 9
    LEFT JOIN areas atn ON atn.id = vt.area_id
    LEFT JOIN version_areas vc
        ON vc.version_id = va.version_id AND vc.code = left(a.code, 12) AND length(a.code) > 12
    LEFT JOIN areas ac ON ac.id = vc.area_id
    LEFT JOIN units un ON un.area_code = a.code AND un.unit_type = (
        SELECT u.t FROM unnest(CAST(:levels AS text[]), CAST(:types AS text[])) AS u(l, t)
        WHERE u.l = va.level)
    WHERE va.version_id = :v
""")
_MARK = text(
    "INSERT INTO tile_area_builds (version_id, generation) VALUES (:v, :g) "
    "ON CONFLICT (version_id) DO UPDATE SET generation = EXCLUDED.generation, built_at = now()"
)


def build(conn: Connection, version_id: int, generation: int) -> bool:
    """(Re)build a version's copy unless one at ``generation`` or later exists; in the
    caller's transaction. Returns whether it built."""
    conn.execute(text("SELECT pg_advisory_xact_lock(:c, :v)"), {"c": _LOCK_CLASS, "v": version_id})
    built = conn.execute(_BUILT, {"v": version_id}).scalar_one_or_none()
    if built is not None and built >= generation:
        return False
    conn.execute(_CLEAR, {"v": version_id})
    conn.execute(
        _FILL,
        {"v": version_id, "levels": list(OWN_UNIT), "types": list(OWN_UNIT.values())},
    )
    conn.execute(_MARK, {"v": version_id, "g": generation})
    return True


class PreparedVersions:
    """Which version is in force on a day, and which versions this process knows to be
    prepared, as of a ``boundaries`` generation."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._ready: dict[int, int] = {}
        self._in_force: dict[tuple[dt.date, int], int] = {}
        self._lock = threading.Lock()

    def in_force(self, conn: Connection, day: dt.date, generation: int) -> int:
        """The id of the version in force on ``day`` (404 naming the day when none is),
        prepared; remembered per (day, generation): only a boundary write, which moves the
        generation, can change the answer for a given day."""
        key = (day, generation)
        with self._lock:
            found = self._in_force.get(key)
        if found is None:
            version_id = version_in_force(conn, day).id
            assert version_id is not None, "versions read from the database have ids"
            self.ensure(version_id, generation)
            with self._lock:
                if len(self._in_force) > 1000:
                    self._in_force.clear()
                self._in_force[key] = found = version_id
        return found

    def ensure(self, version_id: int, generation: int) -> None:
        """Make sure ``tile_areas`` holds the version as of ``generation`` (or later)."""
        with self._lock:
            if self._ready.get(version_id, -1) >= generation:
                return
        with self.engine.begin() as conn:
            build(conn, version_id, generation)
        with self._lock:
            self._ready[version_id] = max(self._ready.get(version_id, -1), generation)
