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
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine

from geo_service.locator.registry import VersionRegistry
from geo_service.store import versions as store
from geo_service.tiles.layers import OWN_UNIT


def build(conn: Connection, version_id: int, generation: int) -> bool:
    """(Re)build a version's copy unless one at ``generation`` or later exists; in the
    caller's transaction. Returns whether it built."""
    return store.refresh_tile_copy(conn, version_id, generation, OWN_UNIT)


@dataclass
class TileCopy:
    """What this process knows of a version's copy: the ``boundaries`` generation it is built
    at or after. Held in the per-version registry (kind ``"tile-copy"``), so a publish drops it
    with everything else derived from the version; a new note costs one check in
    ``tile_area_builds``."""

    generation: int = -1
    lock: threading.Lock = field(default_factory=threading.Lock)


class PreparedVersions:
    """The version in force on a day as of a ``boundaries`` generation, with its copy
    prepared: a view of the per-version registry for one engine (copies are built in
    transactions of their own)."""

    def __init__(self, engine: Engine, registry: VersionRegistry) -> None:
        self.engine = engine
        self.registry = registry

    def in_force(self, conn: Connection, day: dt.date, generation: int) -> int:
        """The id of the version in force on ``day`` (404 naming the day when none is), its
        copy built at ``generation`` or later. The registry re-reads the published versions
        first when ``generation`` is newer than any it has seen, so a tile keyed by a
        generation is never drawn from the version in force before it."""
        info = self.registry.in_force(conn, day, layer_generation=generation)
        assert info.id is not None, "versions read from the database have ids"
        note = self.registry.get(conn, info, "tile-copy", lambda _: TileCopy())
        self.ensure(note, info.id, generation)
        return info.id

    def ensure(self, note: TileCopy, version_id: int, generation: int) -> None:
        """Make sure ``tile_areas`` holds the version as of ``generation`` (or later)."""
        if note.generation >= generation:
            return
        with note.lock:
            if note.generation >= generation:
                return
            with self.engine.begin() as conn:
                build(conn, version_id, generation)
            note.generation = generation
