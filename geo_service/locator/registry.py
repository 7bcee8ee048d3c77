"""The per-version registry: everything this process derives from a boundary version, held in
one place under one rule for when it is stale.

What it holds, by kind (each item built once per key by whoever asks first; others wait):

* ``"locator"``: the version's :class:`Locator` (built by :meth:`Locator.from_connection`,
  the one way a stored version becomes a Locator): locate, intake, Open311;
* ``"areas"``: the version's areas at every level, exact WGS84 (with the Locator: an impact
  :class:`~geo_service.planning.impact.Side`, suggestions, the diff map);
* ``("analytics-areas", level)`` and ``"analytics-coverage"``: the public area frames and the
  study area of :mod:`geo_service.analytics.areas`;
* ``"tile-copy"``: :mod:`geo_service.tiles.prepared`'s note of the boundaries layer generation
  the version's ``tile_areas`` copy is known to be built at.

Keys are ``(database, version id, generation, membership, kind)``. The *generation* counts the
publishes and rollbacks this process has seen in that database; *membership* is None for a
published or retired version (its areas never change) and the digest of its area rows for a
draft (an edit makes a new key). Items are bounded by their estimated bytes (least recently
used first out; the last one used always stays).

**When does a publish show everywhere?** A publish or rollback changes the *schedule*: the
published and retired versions with their ranges and publish/rollback times, read as one
digest (:meth:`Schedule.read`). When the digest this registry knows changes, the generation
moves once, every item of that database is dropped at once (each is rebuilt on first use)
and the version in force on each day is looked up again. That happens:

1. in the process that publishes, at commit: the publish path
   (:mod:`geo_service.boundaries.publish`) reads the digest inside its transaction and hands
   it to :meth:`VersionRegistry.switched` after the commit;
2. in every other process (another worker, a replica, a service after a CLI publish), within
   ``recheck_s`` (``GEO_LOCATE_VERSION_RECHECK_S``, 2 s): every lookup re-reads the digest
   (one small query) once its copy is older than that;
3. at once for tiles: a caller that has seen a newer ``boundaries`` layer generation
   (:mod:`geo_service.tiles.generations`) passes it and the digest is re-read first, so a tile
   keyed by a generation is never drawn from the version in force before it.

A request already holding an item finishes with it (items are replaced, never changed; the
tile-copy note only moves forward). An item whose build began under an older generation is
handed to its caller but not kept. Builders read through the caller's connection: ask from a
read-committed connection with no uncommitted boundary writes.

One registry per process (:func:`process_registry`): the service's lifespan makes it and holds
it on ``app.state.registry``; commands and notebooks get the same one by default. Keys start
with the database, so it serves every engine of the process.

Not here, on purpose: the routing table (:mod:`geo_service.api.routing_cache`) is about units
and rules, which change without a publish; it is re-read every 30 s and whenever this
registry's generation moves (a publish seeds units). Tiles and analysis results
(:mod:`geo_service.tiles.cache`, :class:`geo_service.tiles.features.AnalysisCache`) depend on
reports too and are keyed by the layer generations, which every publish also moves. The
parts of a locate answer (:mod:`geo_service.api.locate_fastpath`) are weakly keyed by the
Locator object, so they go with it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import math
import sys
import threading
import time
import weakref
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import numpy as np
import pandas as pd
import shapely
from sqlalchemy import Connection, Engine

from geo_service.boundaries import versions
from geo_service.locator.locator import Locator, VersionInfo
from geo_service.store import versions as store

T = TypeVar("T")
OFFICIAL: Final = frozenset(store.OFFICIAL)  # statuses whose areas never change
DEFAULT_MAX_BYTES: Final = 512 * 1024 * 1024
DEFAULT_RECHECK_S: Final = 2.0
_MAX_DAYS: Final = 1024  # days remembered per generation (as_of lookups)
Key = tuple[str, int, int, str | None, Hashable]  # database, version, generation, members, kind


@dataclass(frozen=True)
class Schedule:
    """The published and retired versions of a database as one transaction sees them, as a
    digest: it changes with every publish and every rollback, and with nothing else."""

    digest: str

    @classmethod
    def read(cls, conn: Connection) -> Schedule:
        """The schedule in the caller's transaction (one query over the official versions)."""
        rows = [tuple(r) for r in store.official(conn)]
        return cls(hashlib.sha256(repr(rows).encode()).hexdigest())


@dataclass
class _Database:
    """What the registry knows of one database: its schedule, generation and days."""

    digest: str | None = None
    generation: int = 0
    read_at: float = -math.inf  # monotonic time the digest was read (or published)
    seen_layer_generation: int = -1  # the highest boundaries layer generation synced for
    in_force: dict[dt.date, VersionInfo] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)  # one digest reader


@dataclass
class _Slot:
    """One item: built once under ``lock``; ``nbytes`` counted once filled."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    filled: bool = False
    value: Any = None
    nbytes: int = 0


_DATABASE_NAMES: weakref.WeakKeyDictionary[Engine, str] = weakref.WeakKeyDictionary()


def database_of(bind: Connection | Engine) -> str:
    """The database a connection or engine talks to (its URL without the password): ids of
    versions collide across databases, so every key starts with it."""
    engine = bind.engine if isinstance(bind, Connection) else bind
    name = _DATABASE_NAMES.get(engine)
    if name is None:
        name = _DATABASE_NAMES[engine] = engine.url.render_as_string(hide_password=True)
    return name


def _object_bytes(values: np.ndarray) -> int:
    """Bytes held by an object array: the pointers, geometries by their coordinates, and
    other objects (codes, names) by their own size."""
    flat = values.ravel()
    is_geom = shapely.is_geometry(flat)
    total = int(values.nbytes) + 100 * int(is_geom.sum())
    if is_geom.any():
        total += 16 * int(shapely.get_num_coordinates(flat[is_geom]).sum())
    return total + sum(sys.getsizeof(v) for v in flat[~is_geom])


def estimate_bytes(value: Any, _seen: set[int] | None = None, _depth: int = 0) -> int:
    """A close estimate of the memory ``value`` holds: numpy buffers, frames (geometries by
    their coordinates), containers and object attributes, each object counted once."""
    seen = set() if _seen is None else _seen
    if id(value) in seen or _depth > 6:
        return 0
    seen.add(id(value))
    if isinstance(value, np.ndarray):
        return _object_bytes(value) if value.dtype == object else int(value.nbytes)
    if isinstance(value, shapely.Geometry):
        return 100 + 16 * int(shapely.get_num_coordinates(value))
    if isinstance(value, pd.DataFrame | pd.Series):
        columns = [value] if isinstance(value, pd.Series) else [value[c] for c in value.columns]
        total = int(value.index.memory_usage())
        for column in columns:
            if isinstance(column.dtype, np.dtype) and column.dtype != object:
                total += int(column.to_numpy().nbytes)
            else:  # objects, strings, geometries
                total += _object_bytes(np.asarray(column.to_numpy(), dtype=object))
        return total
    if isinstance(value, dict):
        return sys.getsizeof(value) + sum(
            estimate_bytes(k, seen, _depth + 1) + estimate_bytes(v, seen, _depth + 1)
            for k, v in value.items()
        )
    if isinstance(value, list | tuple | set | frozenset):
        return sys.getsizeof(value) + sum(estimate_bytes(v, seen, _depth + 1) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return sys.getsizeof(value) + sum(
            estimate_bytes(getattr(value, f.name), seen, _depth + 1)
            for f in dataclasses.fields(value)
        )
    if hasattr(value, "__dict__") and not isinstance(value, type):
        return sys.getsizeof(value) + estimate_bytes(vars(value), seen, _depth + 1)
    return sys.getsizeof(value)


class VersionRegistry:
    """Items derived from boundary versions, keyed and invalidated as the module says.

    Thread-safe: the service builds and reads items in worker threads; the one coroutine,
    :meth:`locator_in_force`, answers from memory when it can and otherwise in a thread.
    """

    def __init__(
        self, max_bytes: int = DEFAULT_MAX_BYTES, recheck_s: float = DEFAULT_RECHECK_S
    ) -> None:
        self.max_bytes = max_bytes
        self.recheck_s = recheck_s
        self.builds: Counter[tuple[str, int, Hashable]] = Counter()  # (database, version, kind)
        self.drops: Counter[tuple[str, int, Hashable]] = Counter()
        self._items: OrderedDict[Key, _Slot] = OrderedDict()
        self._bytes = 0
        self._databases: dict[str, _Database] = {}
        self._lock = threading.Lock()

    # -- the schedule and its generation ---------------------------------------------------

    def _database(self, database: str) -> _Database:
        with self._lock:
            state = self._databases.get(database)
            if state is None:
                state = self._databases[database] = _Database()
            return state

    def generation(self, conn: Connection, layer_generation: int | None = None) -> int:
        """The generation of ``conn``'s database, after re-reading its schedule when the
        copy is older than ``recheck_s`` or than ``layer_generation`` (a boundaries layer
        generation the caller has seen)."""
        database = database_of(conn)
        state = self._database(database)
        if not self._stale(state, layer_generation):
            return state.generation
        with state.lock:
            if self._stale(state, layer_generation):
                started = time.monotonic()
                schedule = Schedule.read(conn)
                self._adopt(database, state, schedule.digest, started)
                if layer_generation is not None:
                    state.seen_layer_generation = max(
                        state.seen_layer_generation, layer_generation
                    )
        return state.generation

    def known_generation(self, database: str) -> int:
        """The generation of ``database`` as last read, without reading (for tables that must
        follow a publish, such as the routing table's units)."""
        state = self._databases.get(database)
        return state.generation if state is not None else 0

    def _stale(self, state: _Database, layer_generation: int | None) -> bool:
        if layer_generation is not None and layer_generation > state.seen_layer_generation:
            return True
        return time.monotonic() - state.read_at >= self.recheck_s

    def _adopt(self, database: str, state: _Database, digest: str, read_at: float) -> None:
        """Take ``digest`` as the schedule; a different one moves the generation once."""
        with self._lock:
            if state.digest is not None and state.digest != digest:
                state.generation += 1
                state.in_force.clear()
                self._drop(database)
            state.digest = digest
            state.read_at = max(state.read_at, read_at)

    def switched(self, bind: Connection | Engine, schedule: Schedule) -> None:
        """A publish or rollback has committed ``schedule`` (read inside its transaction):
        move the generation now, once, rather than at the next re-check."""
        database = database_of(bind)
        state = self._database(database)
        with state.lock:
            self._adopt(database, state, schedule.digest, time.monotonic())

    def _drop(self, database: str) -> None:
        """Forget every item of ``database`` (caller holds ``_lock``)."""
        for key in [k for k in self._items if k[0] == database]:
            slot = self._items.pop(key)
            if slot.filled:
                self._bytes -= slot.nbytes
                self.drops[(database, key[1], key[4])] += 1

    # -- versions in force -----------------------------------------------------------------

    def in_force(
        self, conn: Connection, as_of: dt.date | None = None, layer_generation: int | None = None
    ) -> VersionInfo:
        """The version in force on ``as_of`` (today when None; 404 naming the day when none
        is), remembered per day until the generation moves."""
        day = as_of or dt.date.today()
        database = database_of(conn)
        generation = self.generation(conn, layer_generation)
        state = self._database(database)
        with self._lock:
            hit = state.in_force.get(day) if state.generation == generation else None
        if hit is not None:
            return hit
        info = versions.version_in_force(conn, day)
        with self._lock:
            if state.generation == generation:
                if len(state.in_force) >= _MAX_DAYS:
                    state.in_force.clear()
                state.in_force[day] = info
        return info

    # -- items -----------------------------------------------------------------------------

    def get(
        self,
        conn: Connection,
        version: int | VersionInfo,
        kind: Hashable,
        build: Callable[[VersionInfo], T],
    ) -> T:
        """The ``kind`` item of ``version`` (an id, 404 when there is none, or the info of a
        version read in this generation), built with ``build(info)`` when missing."""
        generation = self.generation(conn)
        info = version if isinstance(version, VersionInfo) else versions.get_version(conn, version)
        assert info.id is not None, "stored versions have ids"
        members = None
        if info.status not in OFFICIAL:
            members = store.membership_signature(conn, info.id) or ""
        key: Key = (database_of(conn), info.id, generation, members, kind)
        return self._get(key, lambda: build(info))

    def locator(self, conn: Connection, version: int | VersionInfo) -> Locator:
        """The Locator of ``version`` (see :meth:`get`)."""
        return self.get(conn, version, "locator", lambda v: _build_locator(conn, v))

    async def locator_in_force(self, engine: Engine, as_of: dt.date | None = None) -> Locator:
        """The Locator of the version in force on ``as_of`` (today when None): from memory
        when the schedule is fresh, else looked up and, if need be, built in a thread."""
        day = as_of or dt.date.today()
        hit = self._fresh_locator(database_of(engine), day)
        if hit is not None:
            return hit
        return await asyncio.to_thread(self._locator_in_force, engine, day)

    def _fresh_locator(self, database: str, day: dt.date) -> Locator | None:
        with self._lock:
            state = self._databases.get(database)
            if state is None or time.monotonic() - state.read_at >= self.recheck_s:
                return None
            info = state.in_force.get(day)
            if info is None or info.id is None:
                return None
            key: Key = (database, info.id, state.generation, None, "locator")
            slot = self._items.get(key)
            if slot is None or not slot.filled:
                return None
            self._items.move_to_end(key)
            value: Locator = slot.value
            return value

    def _locator_in_force(self, engine: Engine, day: dt.date) -> Locator:
        with engine.connect() as conn:  # released before waiting on a build
            info = self.in_force(conn, day)
            generation = self._database(database_of(conn)).generation
        assert info.id is not None and info.status in OFFICIAL

        def build() -> Locator:
            with engine.connect() as conn:
                return _build_locator(conn, info)

        return self._get((database_of(engine), info.id, generation, None, "locator"), build)

    def _get(self, key: Key, build: Callable[[], T]) -> T:
        """The item of ``key``, built once (concurrent askers wait for the first)."""
        database = key[0]
        with self._lock:
            state = self._databases.get(database)
            current = state is not None and state.generation == key[2]
            slot = self._items.get(key)
            if slot is None and current:
                slot = self._items[key] = _Slot()
            elif slot is not None:
                self._items.move_to_end(key)
        if slot is None:  # the generation moved meanwhile: answer, keep nothing
            return build()
        with slot.lock:
            if slot.filled:
                kept: T = slot.value
                return kept
            try:
                value = build()
            except BaseException:
                with self._lock:
                    if self._items.get(key) is slot:
                        del self._items[key]
                raise
            nbytes = estimate_bytes(value)
            with self._lock:
                slot.value, slot.nbytes, slot.filled = value, nbytes, True
                self.builds[(database, key[1], key[4])] += 1
                if self._items.get(key) is slot:
                    self._bytes += nbytes
                    self._evict(key)
            return value

    def _evict(self, keep: Key) -> None:
        """Drop least recently used items until within ``max_bytes`` (caller holds ``_lock``)."""
        for key in list(self._items):
            if self._bytes <= self.max_bytes:
                return
            slot = self._items[key]
            if key == keep or not slot.filled:
                continue
            del self._items[key]
            self._bytes -= slot.nbytes

    # -- looking inside (operations, tests) --------------------------------------------------

    def held(self, database: str) -> list[tuple[int, Hashable]]:
        """(version id, kind) of every item held for ``database``, least recently used first."""
        with self._lock:
            return [(k[1], k[4]) for k, s in self._items.items() if k[0] == database and s.filled]

    @property
    def nbytes(self) -> int:
        """Estimated bytes of every item held."""
        return self._bytes


def _build_locator(conn: Connection, info: VersionInfo) -> Locator:
    return Locator.from_connection(conn, version=info.id)


_PROCESS: VersionRegistry | None = None
_PROCESS_LOCK = threading.Lock()


def process_registry(
    max_bytes: int | None = None, recheck_s: float | None = None
) -> VersionRegistry:
    """This process's registry, made on first call (the service's lifespan, or the first
    analysis or publish of a command); bounds given later retune it. Keys start with the
    database, so one registry serves every engine of the process."""
    global _PROCESS
    with _PROCESS_LOCK:
        if _PROCESS is None:
            _PROCESS = VersionRegistry()
        if max_bytes is not None:
            _PROCESS.max_bytes = max_bytes
        if recheck_s is not None:
            _PROCESS.recheck_s = recheck_s
        return _PROCESS
