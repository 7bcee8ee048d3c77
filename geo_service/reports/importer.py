"""History import: read a file of past reports (CSV, GeoJSON, GeoParquet) and store it fast.

``read_history`` turns a file into a frame with a ``row`` number per record (from 1, after a
CSV's header; features and Parquet rows likewise) and never fails on a bad record: what it
cannot read becomes that row's ``read_problem``. ``import_history`` checks every row
(:mod:`~geo_service.reports.import_check`), locates each in the boundary version in force on
its day (:mod:`~geo_service.reports.import_versions`), routes them as intake does, and stores
them in chunks by COPY (:mod:`~geo_service.reports.import_store`), idempotent by
``external_id`` (key ``import:<external_id>``): either all-or-nothing in one transaction
(``atomic``, what ``geo-service reports import`` does) or a transaction per chunk, refusing
only the bad rows (the demo year, resumable).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow.parquet as pq
import pyogrio
import shapely
from pyproj import CRS
from sqlalchemy import Engine

from geo_service.demo.year import DEFAULT_SEED, synthesize_year
from geo_service.errors import InvalidInput
from geo_service.locator import Locator
from geo_service.reports.import_check import KEY_PREFIX, Refusal, check_history
from geo_service.reports.import_store import Chunk, reserve_ids, stage, store_chunk
from geo_service.reports.import_versions import NONE, BoundaryTimeline
from geo_service.reports.schemas import CHINA_TZ
from geo_service.routing import RoutingTable
from geo_service.store import reports as store
from geo_service.store.report_copy import ChunkResult

Progress = Callable[[int, int], None]
KINDS: Final = ("csv", "geojson", "parquet")
FORMATS: Final = {
    ".csv": "csv",
    ".txt": "csv",
    ".geojson": "geojson",
    ".json": "geojson",
    ".parquet": "parquet",
    ".geoparquet": "parquet",
}
ENCODINGS: Final = ("utf-8-sig", "gb18030")  # Excel in China saves CSV as GB18030 (GBK)


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class HistoryFile:
    """A history file read: its frame (see :func:`read_history`), its kind, and for CSV the
    line each row starts on, so that refusals point where an editor shows them."""

    frame: pd.DataFrame
    kind: str  # csv | geojson | parquet
    lines: dict[int, int] = field(default_factory=dict)

    def where(self, row: int) -> str:
        """``line 12`` (CSV), ``feature 3`` (GeoJSON) or ``row 7`` (Parquet) of a row number."""
        if self.kind == "csv":
            return f"line {self.lines.get(row, row + 1)}"
        return f"{'feature' if self.kind == 'geojson' else 'row'} {row}"


def read_history(path: str | Path, fmt: str | None = None) -> pd.DataFrame:
    """A history file as a frame: its columns as given, ``row`` (from 1) and, for records
    that could not be read whole, ``read_problem``. Points come from ``lon``/``lat`` columns
    (CSV, plain Parquet) or the geometry (GeoJSON, GeoParquet: it wins over such columns).

    ``fmt`` (csv, geojson, parquet) overrides the kind the file's suffix tells. Raises
    :class:`InvalidInput` when the file as a whole cannot be read.
    """
    return open_history(path, fmt).frame


def open_history(path: str | Path, fmt: str | None = None) -> HistoryFile:
    """:func:`read_history`, keeping the file's kind and CSV line numbers."""
    p = Path(path)
    if not p.is_file():
        raise InvalidInput(f"no such file: {p}")
    if fmt is not None and fmt.lower() not in KINDS:
        raise InvalidInput(f"unknown format {fmt!r}: use one of {', '.join(KINDS)}")
    kind = fmt.lower() if fmt else FORMATS.get(p.suffix.lower())
    if kind is None:
        raise InvalidInput(
            f"cannot read {p.name}: use a .csv, .geojson or .parquet (GeoParquet) file, "
            "or say which it is with --format"
        )
    if kind == "csv":
        frame, lines = _read_csv(p)
        return HistoryFile(frame, kind, lines)
    try:
        if kind == "geojson":
            frame = _from_geo(pyogrio.read_dataframe(p, datetime_as_string=True))
        elif b"geo" in (pq.read_schema(p).metadata or {}):
            frame = _from_geo(gpd.read_parquet(p))
        else:
            frame = pd.read_parquet(p)
    except (OSError, ValueError, pyogrio.errors.DataSourceError) as exc:
        raise InvalidInput(f"cannot read {p.name} as {kind}: {exc}") from exc
    frame = frame.reset_index(drop=True)
    frame["row"] = np.arange(1, len(frame) + 1)
    return HistoryFile(frame, kind)


def _read_csv(path: Path) -> tuple[pd.DataFrame, dict[int, int]]:
    data = path.read_bytes()
    for encoding in ENCODINGS:
        try:
            content = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise InvalidInput(f"cannot read {path.name}: it is neither UTF-8 nor GB18030 text")
    reader = csv.reader(io.StringIO(content, newline=""))
    header = [h.strip() for h in next(reader, [])]
    if not header or not any(header):
        raise InvalidInput(f"cannot read {path.name}: it has no header row")
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        raise InvalidInput(f"{path.name} repeats the column(s) {', '.join(repeated)}")
    width = len(header)
    records: list[list[str]] = []
    numbers: list[int] = []
    problems: list[str | None] = []
    lines: dict[int, int] = {}
    number = 0
    last_line = reader.line_num
    try:
        for record in reader:
            first_line, last_line = last_line + 1, reader.line_num
            if not any(f.strip() for f in record):
                continue  # blank line
            number += 1
            lines[number] = first_line
            problem = None
            if len(record) > width:
                problem = f"has {len(record)} fields, the header {width}"
            records.append((record + [""] * width)[:width])
            numbers.append(number)
            problems.append(problem)
    except csv.Error as exc:
        raise InvalidInput(f"cannot read {path.name} at line {reader.line_num}: {exc}") from exc
    frame = pd.DataFrame(records, columns=header, dtype=object)
    frame["row"] = numbers
    if any(problems):
        frame["read_problem"] = problems
    return frame, lines


def _from_geo(gdf: gpd.GeoDataFrame) -> pd.DataFrame:
    """Properties plus ``lon``/``lat`` of point geometries (others: a read problem).

    A layer declared in a projected or other CRS says so through ``crs`` unless rows carry
    their own (GeoJSON always claims WGS84, also when the points came from a GCJ-02 map).
    """
    frame = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
    geoms = gdf.geometry.to_numpy()
    kind = shapely.get_type_id(geoms)
    point = kind == shapely.GeometryType.POINT
    point[point] = ~shapely.is_empty(geoms[point])
    problem = np.full(len(frame), None, dtype=object)
    for i in np.flatnonzero(~point).tolist():
        g = geoms[i]
        problem[i] = (
            "no point geometry"
            if g is None or g.is_empty
            else (f"geometry is a {g.geom_type}, not a Point")
        )
    # rows refused for their geometry get placeholder numbers, so only that problem is told
    frame["lon"] = np.where(point, shapely.get_x(geoms), 0.0)
    frame["lat"] = np.where(point, shapely.get_y(geoms), 0.0)
    if (~point).any():
        frame["read_problem"] = problem
    if gdf.crs is not None and "crs" not in frame:
        declared = CRS.from_user_input(gdf.crs)
        epsg = declared.to_epsg()
        if not declared.equals(CRS.from_epsg(4326), ignore_axis_order=True):
            if epsg is None:
                raise InvalidInput(f"the layer's CRS is not one we can convert: {declared.name}")
            frame["crs"] = f"EPSG:{epsg}"
    return frame


# --------------------------------------------------------------------------- storing


@dataclass
class ImportStats:
    """What an import did. ``refused`` lists (row, reasons) for rows not stored; ``written``
    says whether anything was (not when ``refuse_any`` met a bad row)."""

    rows: int  # rows in the frame
    stored: int = 0  # new reports
    skipped: int = 0  # already stored by an earlier import of the same external_id
    outside_coverage: int = 0  # of the stored: in no grid (kept, flagged, routed to the district)
    events: int = 0  # loop events written
    seconds: float = 0.0
    refused: list[Refusal] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    by_version: dict[str, int] = field(default_factory=dict)  # rows placed per boundary version
    written: bool = False

    def add(self, size: int, result: ChunkResult) -> None:
        """Count one stored chunk of ``size`` reports."""
        self.stored += result.stored
        self.skipped += size - result.stored
        self.outside_coverage += result.outside
        self.events += result.events


def import_history(
    engine: Engine,
    frame: pd.DataFrame,
    locator: Locator | BoundaryTimeline,
    routing: RoutingTable,
    *,
    chunk: int = 20_000,
    workers: int = 2,
    progress: Progress | None = None,
    now: dt.datetime | None = None,
    default_crs: str = "wgs84",
    atomic: bool = False,
    refuse_any: bool = False,
) -> ImportStats:
    """Store a history frame (from :func:`read_history`, ``synthesize_year``, or a
    GeoDataFrame of points).

    Rows are checked (bad ones refused with their row numbers), located in the boundary
    version in force on their Beijing day (``locator`` a :class:`BoundaryTimeline`; a plain
    Locator places every row in its own version; a day with no version in force refuses the
    row) and routed with ``routing`` as at intake, keeping their historical status, step times
    (as events), closing time, rating and flags. ``default_crs`` is the CRS of rows that name
    none. ``progress(done, total)`` is called before the first chunk and after each one;
    ``now`` (default: the clock) is what "in the future" is measured against.

    ``refuse_any``: one refused row refuses the whole frame, and nothing is written.
    ``atomic``: every chunk of ``chunk`` reports goes in one transaction on one connection, so
    a failure leaves nothing. Not atomic: ``chunk`` reports per transaction, ``workers``
    transactions at a time (foreign keys are checked row by row: two connections keep two
    cores busy); a failing chunk stops the import, the chunks already committed stay, and
    running it again adds only what is missing. Either way ids are reserved in time order, so
    they follow ``reported_at``.
    """
    started = time.perf_counter()
    if isinstance(frame, gpd.GeoDataFrame):  # points as geometries
        frame = _from_geo(frame)
    checked = check_history(frame, now=now, default_crs=default_crs)
    timeline = locator if isinstance(locator, BoundaryTimeline) else BoundaryTimeline.of(locator)
    pos = timeline.in_force(checked.frame["reported_at"])
    placed = pos != NONE
    stats = ImportStats(
        len(frame),
        refused=sorted(checked.refused + _unplaced(checked.frame, placed, timeline)),
        ignored_columns=checked.ignored_columns,
        by_version=timeline.counts(pos),
    )
    if refuse_any and stats.refused:
        stats.seconds = time.perf_counter() - started
        return stats
    staged = stage(checked.frame[placed], timeline, routing, pos[placed])
    chunks = staged.chunks(chunk)
    total = len(staged.reports)
    if progress is not None:
        progress(0, total)
    if atomic:
        _store_in_one_transaction(engine, chunks, stats, progress, total)
    else:
        _store_concurrently(engine, chunks, stats, progress, total, workers)
    stats.written = stats.stored > 0
    stats.seconds = time.perf_counter() - started
    return stats


def _unplaced(
    checked: pd.DataFrame, placed: npt.NDArray[np.bool_], timeline: BoundaryTimeline
) -> list[Refusal]:
    """Refusals of valid rows from a day no boundary version was in force."""
    if placed.all():
        return []
    first = timeline.first_day()
    hint = f"; the first is in force from {first.isoformat()}" if first else "; none is published"
    days = checked["reported_at"].dt.tz_convert(CHINA_TZ).dt.date
    return [
        Refusal(
            int(checked["row"].iloc[i]), f"no boundary version was in force on {days.iloc[i]}{hint}"
        )
        for i in np.flatnonzero(~placed).tolist()
    ]


def _store_in_one_transaction(
    engine: Engine, chunks: list[Chunk], stats: ImportStats, progress: Progress | None, total: int
) -> None:
    done = 0
    with engine.begin() as conn:
        for c in chunks:
            stats.add(len(c), store_chunk(conn, c, reserve_ids(conn, len(c))))
            done += len(c)
            if progress is not None:
                progress(done, total)


def _store_concurrently(
    engine: Engine,
    chunks: list[Chunk],
    stats: ImportStats,
    progress: Progress | None,
    total: int,
    workers: int,
) -> None:
    with engine.connect() as conn:
        ids = [reserve_ids(conn, len(c)) for c in chunks]

    def run(i: int) -> tuple[int, ChunkResult]:
        with engine.begin() as conn:
            return len(chunks[i]), store_chunk(conn, chunks[i], ids[i])

    done = 0
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [pool.submit(run, i) for i in range(len(chunks))]
        try:
            for future in as_completed(futures):
                size, result = future.result()
                stats.add(size, result)
                done += size
                if progress is not None:
                    progress(done, total)
        except BaseException:
            for f in futures:
                f.cancel()
            raise


def demo_reports_stored(engine: Engine, prefix: str = "demo") -> int:
    """How many reports of the demo year ``prefix`` the database holds."""
    with engine.connect() as conn:
        return store.count_keys_starting(conn, f"{KEY_PREFIX}{prefix}-")


def load_demo_history(
    engine: Engine,
    locator: Locator,
    routing: RoutingTable,
    *,
    n: int = 200_000,
    seed: int = DEFAULT_SEED,
    end: dt.date | None = None,
    prefix: str = "demo",
    progress: Progress | None = None,
) -> ImportStats | None:
    """The demo's synthetic year (:func:`synthesize_year` over ``locator``'s grids, and
    placed in them), stored once: None when all ``n`` of its reports are already there (an
    interrupted load is completed).
    """
    if demo_reports_stored(engine, prefix) >= n:
        return None
    frame = synthesize_year(locator, n=n, seed=seed, end=end, prefix=prefix)
    return import_history(engine, frame, locator, routing, progress=progress)
