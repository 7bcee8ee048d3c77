"""``batch relocate``: locate every point of a GeoParquet source on a Dask cluster.

The layout is cut into district shards (:mod:`geo_service.batch.sharding`) whose areas go to
``DST/_layout/``. A worker plugin (:class:`ShardCache`) carries the router (a few MB) to every
worker once, including workers that join or restart later; there each task routes its points,
and the shards they touch are built from their files the first time that worker needs them
and kept for its later tasks (least recently used dropped past a memory budget). So the
Locator reaches a worker once, never once per task, and a worker holds only the shards its
partitions touch: a city layout is one shard on every worker, a province's districts are
spread over the workers whose pieces lie in them. A killed worker's tasks are retried by Dask
elsewhere, where the shards they need are built again from the same files.

Each task reads one piece, locates its points and writes them, keeping every input column but
the geometry: the input's code columns become ``old_*``, the new ``grid_code``,
``community_code``, ``town_code``, ``district_code`` are added and, when the input had a
``grid_code``, ``moved`` (the grid changed; outside coverage counts as a grid of its own).
Output is GeoParquet (WGS84 points, bbox covering) partitioned by Beijing month of
``reported_at`` (when present) and the new district:
``DST/month=YYYY-MM/district=CODE/part-NNNNN.parquet``, NNNNN the piece, so a retried task
rewrites exactly its own files (through a temporary name, so never half of one).
"""

from __future__ import annotations

import dataclasses
import shutil
import threading
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numba
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from distributed import Client, Future, Worker, get_worker
from distributed.diagnostics.plugin import WorkerPlugin

from geo_service.batch.cluster import Update, follow, wait_followed
from geo_service.batch.dataset import NO_DISTRICT, NO_MONTH, Piece, Source
from geo_service.batch.geoparquet import GeoColumn, read_points, with_points, write_atomic
from geo_service.batch.periods import local_days, month_keys
from geo_service.batch.sharding import (
    CODE_COLUMNS,
    Router,
    Shard,
    ShardedLayout,
    chain_codes,
    load_shard,
    locate_sharded,
)
from geo_service.errors import InvalidInput
from geo_service.locator import VersionInfo

SHARD_CACHE_BYTES: Final = 2_000_000_000  # cell indexes a worker keeps between tasks
LAYOUT_DIR: Final = "_layout"  # '_' prefix: Parquet readers skip it as not data
OLD_PREFIX: Final = "old_"


@dataclass(frozen=True)
class PieceResult:
    """What one task did."""

    index: int
    rows: int
    located: int
    no_point: int
    moved: int | None
    files: tuple[str, ...]
    worker: str
    shards: tuple[int, ...]


@dataclass
class RelocateStats:
    """A whole run: rows, located, moved (None without old codes), files, seconds; the
    shards each piece touched, those each worker's tasks touched, and how often each worker
    built each shard."""

    rows: int = 0
    located: int = 0
    no_point: int = 0
    moved: int | None = None
    files: int = 0
    seconds: float = 0.0
    shards: int = 0
    shards_used: dict[str, set[int]] = field(default_factory=dict)
    shard_loads: dict[str, dict[int, int]] = field(default_factory=dict)
    touched: dict[int, tuple[int, ...]] = field(default_factory=dict)


@contextmanager
def _numba_threads(n: int) -> Iterator[None]:
    """Run the Locator's kernels on ``n`` threads here: a Dask worker thread is one core."""
    before = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(before)


class ShardCache(WorkerPlugin):
    """The sharded Locator on a worker: the router, and the shards built so far.

    Registered once per run under a unique name; Dask installs it on every worker, also on
    one that starts later. ``loads`` counts each shard's builds on this worker.
    """

    def __init__(
        self,
        name: str,
        paths: list[str],
        layout: ShardedLayout,
        budget_bytes: int = SHARD_CACHE_BYTES,
    ) -> None:
        self.name = name
        self.router: Router = layout.router
        self.paths = paths
        self.keys = layout.keys
        self.cell_m = layout.cell_m
        self.version = layout.version
        self.budget_bytes = budget_bytes
        self._lock = threading.Lock()
        self._shards: OrderedDict[int, Shard] = OrderedDict()
        self.loads: Counter[int] = Counter()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_lock=None, _shards=OrderedDict(), loads=Counter())
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def teardown(self, worker: Worker) -> None:
        """Free the shards when the run is over (the plugin is removed)."""
        self._shards.clear()

    def shards(self, ids: npt.NDArray[np.int32]) -> dict[int, Shard]:
        """The shards ``ids``, built here on first use; the least recently used others are
        dropped while the kept ones exceed the budget."""
        wanted = [int(i) for i in ids]
        with self._lock:
            for i in wanted:
                if i not in self._shards:
                    self._shards[i] = load_shard(
                        self.paths[i], i, self.keys[i], self.version, self.cell_m[i]
                    )
                    self.loads[i] += 1
                self._shards.move_to_end(i)
            held = sum(s.nbytes for s in self._shards.values())
            for i in list(self._shards):
                if held <= self.budget_bytes:
                    break
                if i not in wanted:
                    held -= self._shards.pop(i).nbytes
            return {i: self._shards[i] for i in wanted}


def _cache(name: str) -> ShardCache:
    plugin = get_worker().plugins.get(name)
    if not isinstance(plugin, ShardCache):
        raise RuntimeError(f"worker plugin {name!r} is not installed on this worker")
    return plugin


def _partitions(table: pa.Table, district: npt.NDArray[np.object_]) -> dict[tuple[str, ...], Any]:
    """Output folder → the rows that go there: (month=…, district=…) by Beijing month of
    ``reported_at`` and the new district, or (district=…) without ``reported_at``."""
    keys = {"district": pd.Series(district, dtype=object).fillna(NO_DISTRICT)}
    if "reported_at" in table.column_names:
        months = month_keys(local_days(table.column("reported_at")))
        keys = {"month": pd.Series(months, dtype=object).fillna(NO_MONTH), **keys}
    groups = pd.DataFrame(keys).groupby(list(keys), sort=True).indices
    folders = {}
    for key, rows in groups.items():
        values = key if isinstance(key, tuple) else (key,)
        folders[tuple(f"{n}={v}" for n, v in zip(keys, values, strict=True))] = rows
    return folders


def relocate_rows(
    table: pa.Table,
    geometry: GeoColumn,
    x: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    codes: dict[str, npt.NDArray[np.object_]],
) -> tuple[pa.Table, int | None]:
    """The output table of located rows (see the module docstring) and how many moved."""
    previous = {f"{OLD_PREFIX}{c}" for c in CODE_COLUMNS} | {"moved"}
    dropped = set(geometry.columns) | previous
    keep = [c for c in table.column_names if c not in dropped]
    out = table.select(keep).rename_columns(
        [f"{OLD_PREFIX}{c}" if c in CODE_COLUMNS else c for c in keep]
    )
    out = out.replace_schema_metadata(None)
    for column in CODE_COLUMNS:
        out = out.append_column(column, pa.array(codes[column], type=pa.string()))
    moved: int | None = None
    if "grid_code" in keep:
        old = table.column("grid_code").cast(pa.string())
        new = out.column("grid_code")
        same = pc.or_(
            pc.fill_null(pc.equal(old, new), False),
            pc.and_(pc.is_null(old), pc.is_null(new)),
        )
        changed = pc.invert(same)
        out = out.append_column("moved", changed)
        moved = int(pc.sum(changed).as_py() or 0)
    return with_points(out, x, y), moved


Shards = Callable[[npt.NDArray[np.int32]], dict[int, Shard]]


def locate_and_write(
    piece: Piece, geometry: GeoColumn, dst: str, router: Router, shards: Shards
) -> PieceResult:
    """Read a piece, route its points, locate them in the shards ``shards(ids)`` gives and
    write its output files: the whole of a task, whatever provides the shards."""
    table = piece.read()
    x, y = read_points(table, geometry, piece.where, piece.first_row)
    touched = router.touched(x, y)
    loaded = shards(touched)
    with _numba_threads(1):
        shard_of, local = locate_sharded(router, loaded, x, y)
    codes = chain_codes(loaded, shard_of, local)
    out, moved = relocate_rows(table, geometry, x, y, codes)
    files = []
    for key, rows in sorted(_partitions(table, codes["district_code"]).items()):
        relative = Path(*key, f"part-{piece.index:05d}.parquet")
        write_atomic(Path(dst) / relative, out.take(pa.array(rows, type=pa.int64())))
        files.append(str(relative))
    return PieceResult(
        piece.index,
        table.num_rows,
        int((shard_of >= 0).sum()),
        int((~(np.isfinite(x) & np.isfinite(y))).sum()),
        moved,
        tuple(files),
        "",
        tuple(int(i) for i in touched),
    )


def relocate_piece(piece: Piece, geometry: GeoColumn, dst: str, cache: str) -> PieceResult:
    """One task: :func:`locate_and_write` with this worker's shard cache."""
    plugin = _cache(cache)
    result = locate_and_write(piece, geometry, dst, plugin.router, plugin.shards)
    return dataclasses.replace(result, worker=get_worker().address)


def _loads(dask_worker: Worker, name: str) -> dict[int, int]:
    plugin = dask_worker.plugins.get(name)
    return dict(plugin.loads) if isinstance(plugin, ShardCache) else {}


def open_layout(
    url: Callable[[], str],
    *,
    version: str | None = None,
    as_of: str | None = None,
    layout: str | Path | None = None,
) -> ShardedLayout:
    """The sharded layout of exactly one of: a stored version (label or id), the version in
    force on a date, or a layout file. ``url()`` gives the database URL when one is needed."""
    given = [name for name, v in (("--version", version), ("--as-of", as_of),
                                   ("--layout", layout)) if v]  # fmt: skip
    if len(given) != 1:
        raise InvalidInput(
            "give exactly one of --version LABEL, --as-of DATE or --layout FILE"
            + (f" (not {' and '.join(given)})" if given else "")
        )
    from geo_service.boundaries import versions
    from geo_service.boundaries.reader import read_layout
    from geo_service.db.engine import make_engine

    if layout is not None:
        frame = read_layout(layout).frame
        return ShardedLayout.from_frame(frame, VersionInfo(None, Path(layout).name, "file"))
    engine = make_engine(url(), pool_size=1)
    try:
        with engine.connect() as conn:
            if version is not None:
                info = versions.get_version(conn, version)
            else:
                info = versions.version_in_force(conn, versions.parse_date(as_of))
            areas = versions.load_areas(conn, info.id)
    finally:
        engine.dispose()
    return ShardedLayout.from_frame(areas, info)


def _check_destination(dst: Path, source: Source) -> None:
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise InvalidInput(f"{dst} exists and is not an empty folder: choose a new one")
    if dst.resolve() == source.root.resolve():
        raise InvalidInput("the destination must not be the source")


def _tidy(dst: Path) -> None:
    """Remove the shard files and any temporary file a killed task left behind."""
    shutil.rmtree(dst / LAYOUT_DIR, ignore_errors=True)
    for tmp in dst.rglob(".*.tmp"):
        tmp.unlink(missing_ok=True)


def relocate(
    client: Client,
    source: Source,
    layout: ShardedLayout,
    dst: str | Path,
    *,
    cache_bytes: int = SHARD_CACHE_BYTES,
    progress: Update | None = None,
) -> RelocateStats:
    """Re-locate every point of ``source`` in ``layout`` on ``client``'s cluster and write
    the result to ``dst`` (a new or empty folder); see the module docstring. ``progress``
    gets ``(done, total)`` tasks from the scheduler."""
    started = time.perf_counter()
    out = Path(dst)
    _check_destination(out, source)
    out.mkdir(parents=True, exist_ok=True)
    run = uuid.uuid4().hex[:8]
    name = f"geo-shards-{run}"
    stats = RelocateStats(shards=len(layout.keys))
    registered = False
    try:
        paths = layout.write_parts(out / LAYOUT_DIR)
        client.register_plugin(ShardCache(name, paths, layout, cache_bytes))
        registered = True
        tasks = [
            client.submit(
                relocate_piece,
                piece,
                source.geometry,
                str(out),
                name,
                key=f"geo-relocate-{run}-{piece.index:05d}",
            )
            for piece in source.pieces
        ]
        results: list[PieceResult] = _gather(client, tasks, progress)
        loads = client.run(_loads, name=name)
        stats.shard_loads = {w: {int(k): int(v) for k, v in d.items()} for w, d in loads.items()}
    finally:
        if registered:
            client.unregister_worker_plugin(name)  # type: ignore[no-untyped-call]
        _tidy(out)
    for r in results:
        stats.rows += r.rows
        stats.located += r.located
        stats.no_point += r.no_point
        stats.files += len(r.files)
        stats.shards_used.setdefault(r.worker, set()).update(r.shards)
        stats.touched[r.index] = r.shards
        if r.moved is not None:
            stats.moved = (stats.moved or 0) + r.moved
    stats.seconds = time.perf_counter() - started
    return stats


def _gather(client: Client, futures: list[Future], update: Update | None) -> list[Any]:
    """Results of ``futures`` in order; the first error cancels the rest and is raised."""
    stream = follow(client, futures, update) if update is not None and futures else None
    try:
        return list(client.gather(futures))  # type: ignore[no-untyped-call]
    except BaseException:
        client.cancel(futures)  # type: ignore[no-untyped-call]
        raise
    finally:
        wait_followed(stream)
