"""History import: read a file of past reports (CSV, GeoJSON, GeoParquet) and store it fast.

``read_history`` turns a file into a frame with a ``row`` number per record (from 1, after a
CSV's header; features and Parquet rows likewise) and never fails on a bad record: what it
cannot read becomes that row's ``read_problem``. ``import_history`` checks every row
(:mod:`~geo_service.reports.history_check`), locates and routes them as intake does, and
stores them in chunks by COPY (:mod:`~geo_service.reports.history_store`), one transaction
per chunk, idempotent by ``external_id`` (key ``import:<external_id>``).
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
import pandas as pd
import pyarrow.parquet as pq
import pyogrio
import shapely
from pyproj import CRS
from sqlalchemy import Engine, text

from geo_service.errors import InvalidInput
from geo_service.locator import Locator
from geo_service.reports.history import DEFAULT_SEED, synthesize_year
from geo_service.reports.history_check import Refusal, check_history
from geo_service.reports.history_store import ChunkResult, reserve_ids, stage, store_chunk
from geo_service.routing import RoutingTable

Progress = Callable[[int, int], None]
FORMATS: Final = {
    ".csv": "csv",
    ".txt": "csv",
    ".geojson": "geojson",
    ".json": "geojson",
    ".parquet": "parquet",
    ".geoparquet": "parquet",
}
ENCODINGS: Final = ("utf-8-sig", "gb18030")  # Excel in China saves CSV as GB18030 (GBK)
_COUNT_PREFIX = text("SELECT count(*) FROM reports WHERE idempotency_key LIKE :pattern")


# --------------------------------------------------------------------------- reading


def read_history(path: str | Path) -> pd.DataFrame:
    """A history file as a frame: its columns as given, ``row`` (from 1) and, for records
    that could not be read whole, ``read_problem``. Points come from ``lon``/``lat`` columns
    (CSV, plain Parquet) or the geometry (GeoJSON, GeoParquet: it wins over such columns).

    Raises :class:`InvalidInput` when the file as a whole cannot be read.
    """
    p = Path(path)
    if not p.is_file():
        raise InvalidInput(f"no such file: {p}")
    kind = FORMATS.get(p.suffix.lower())
    if kind is None:
        raise InvalidInput(
            f"cannot read {p.name}: use a .csv, .geojson or .parquet (GeoParquet) file"
        )
    if kind == "csv":
        return _read_csv(p)
    try:
        if kind == "geojson":
            frame = _from_geo(pyogrio.read_dataframe(p, datetime_as_string=True))
        elif b"geo" in (pq.read_schema(p).metadata or {}):
            frame = _from_geo(gpd.read_parquet(p))
        else:
            frame = pd.read_parquet(p)
    except (OSError, ValueError, pyogrio.errors.DataSourceError) as exc:
        raise InvalidInput(f"cannot read {p.name}: {exc}") from exc
    frame = frame.reset_index(drop=True)
    frame["row"] = np.arange(1, len(frame) + 1)
    return frame


def _read_csv(path: Path) -> pd.DataFrame:
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
    number = 0
    try:
        for record in reader:
            if not any(f.strip() for f in record):
                continue  # blank line
            number += 1
            problem = None
            if len(record) > width:
                problem = f"has {len(record)} fields, the header {width}"
            records.append((record + [""] * width)[:width])
            numbers.append(number)
            problems.append(problem)
    except csv.Error as exc:
        raise InvalidInput(f"cannot read {path.name} after row {number}: {exc}") from exc
    frame = pd.DataFrame(records, columns=header, dtype=object)
    frame["row"] = numbers
    if any(problems):
        frame["read_problem"] = problems
    return frame


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
    """What an import did. ``refused`` lists (row, reasons) for rows not stored."""

    rows: int  # rows in the frame
    stored: int = 0  # new reports
    skipped: int = 0  # already stored by an earlier import of the same external_id
    outside_coverage: int = 0  # of the stored: in no grid (kept, flagged, routed to the district)
    events: int = 0  # loop events written
    seconds: float = 0.0
    refused: list[Refusal] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)


def import_history(
    engine: Engine,
    frame: pd.DataFrame,
    locator: Locator,
    routing: RoutingTable,
    *,
    chunk: int = 20_000,
    workers: int = 2,
    progress: Progress | None = None,
    now: dt.datetime | None = None,
) -> ImportStats:
    """Store a history frame (from :func:`read_history`, ``synthesize_year``, or a
    GeoDataFrame of points).

    Rows are checked (bad ones refused with their row numbers, the others stored), located
    with ``locator`` and routed with ``routing`` as at intake, keeping their historical status,
    step times (as events), closing time, rating and flags. ``chunk`` reports go in per
    transaction, ``workers`` transactions at a time (the database checks foreign keys row by
    row: two connections keep two cores busy); ids are reserved in time order first, so they
    follow ``reported_at`` whatever order chunks finish in. ``progress(done, total)`` is
    called before the first chunk and after each one. A failing chunk stops the import; the
    chunks already committed stay, and running the import again adds only what is missing.
    ``now`` (default: the clock) is what "in the future" is measured against.
    """
    started = time.perf_counter()
    if isinstance(frame, gpd.GeoDataFrame):  # points as geometries
        frame = _from_geo(frame)
    checked = check_history(frame, now=now)
    stats = ImportStats(
        len(frame), refused=checked.refused, ignored_columns=checked.ignored_columns
    )
    staged = stage(checked.frame, locator, routing)
    chunks = staged.chunks(chunk)
    with engine.connect() as conn:
        ids = [reserve_ids(conn, len(c)) for c in chunks]
    total = len(staged.reports)
    if progress is not None:
        progress(0, total)

    def run(i: int) -> tuple[int, ChunkResult]:
        with engine.begin() as conn:
            return len(chunks[i]), store_chunk(conn, chunks[i], ids[i], locator.version.id)

    done = 0
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [pool.submit(run, i) for i in range(len(chunks))]
        try:
            for future in as_completed(futures):
                size, result = future.result()
                stats.stored += result.stored
                stats.outside_coverage += result.outside
                stats.events += result.events
                done += size
                if progress is not None:
                    progress(done, total)
        except BaseException:
            for f in futures:
                f.cancel()
            raise
    stats.skipped = total - stats.stored
    stats.seconds = time.perf_counter() - started
    return stats


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
    """The demo's synthetic year (:func:`synthesize_year`), stored once: None when all ``n``
    of its reports are already there (an interrupted load is completed)."""
    with engine.connect() as conn:
        have = conn.execute(_COUNT_PREFIX, {"pattern": f"import:{prefix}-%"}).scalar_one()
    if have >= n:
        return None
    frame = synthesize_year(locator, n=n, seed=seed, end=end, prefix=prefix)
    return import_history(engine, frame, locator, routing, progress=progress)
