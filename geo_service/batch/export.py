"""``batch export``: stored reports → GeoParquet 1.1, hive-partitioned by month and district.

Memory stays bounded whatever the table's size: one query per Beijing month streams rows
through a server-side cursor ``chunk_rows`` at a time, ordered by district, so exactly one
Parquet writer is open (``month=YYYY-MM/district=CODE/part-NNNNN.parquet``, a new part every
``rows_per_file`` rows). Each file is written under a hidden name and renamed when complete:
an interrupted export leaves no half-written partition behind.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Engine

from geo_service.batch.dataset import NO_DISTRICT
from geo_service.batch.geoparquet import open_writer, with_points
from geo_service.batch.periods import LOCAL_TZ
from geo_service.errors import InvalidInput
from geo_service.reports.schemas import CHINA_TZ
from geo_service.store.batch import EXPORT_COLUMNS, export_query, export_window

CHUNK_ROWS: Final = 50_000
ROWS_PER_FILE: Final = 2_000_000
EXPORT_SCHEMA: Final = pa.schema(
    [
        ("id", pa.int64()),
        ("reported_at", pa.timestamp("us", tz=LOCAL_TZ)),
        ("channel", pa.string()),
        ("category", pa.string()),
        ("status", pa.string()),
        ("in_coverage", pa.bool_()),
        ("grid_code", pa.string()),
        ("community_code", pa.string()),
        ("town_code", pa.string()),
        ("district_code", pa.string()),
        ("boundary_version_id", pa.int32()),
        ("h3_11", pa.int64()),
    ]
)
Progress = Callable[[int, int], None]


@dataclass
class ExportStats:
    """What an export wrote: rows, files, the (month, district) partitions, seconds."""

    rows: int = 0
    files: list[str] = field(default_factory=list)
    partitions: set[tuple[str, str]] = field(default_factory=set)
    seconds: float = 0.0


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), tzinfo=CHINA_TZ)


def _months(first: dt.datetime, last: dt.datetime) -> list[dt.date]:
    """First days of the Beijing months from ``first``'s to ``last``'s."""
    month = first.astimezone(CHINA_TZ).date().replace(day=1)
    end = last.astimezone(CHINA_TZ).date()
    out = []
    while month <= end:
        out.append(month)
        month = (month + dt.timedelta(days=32)).replace(day=1)
    return out


class _PartitionWriter:
    """The one open file: rows of one (month, district), rolled over every ``rows_per_file``."""

    def __init__(self, root: Path, rows_per_file: int, stats: ExportStats) -> None:
        self.root = root
        self.rows_per_file = rows_per_file
        self.stats = stats
        self.key: tuple[str, str] | None = None
        self.writer: pq.ParquetWriter | None = None
        self.tmp: Path | None = None
        self.final: Path | None = None
        self.rows = 0
        self.part = 0

    def write(self, key: tuple[str, str], table: pa.Table) -> None:
        """Append rows of partition ``key``, opening that partition's next file if needed."""
        if key != self.key:
            self.close()
            self.key, self.part = key, 0
        elif self.rows >= self.rows_per_file:
            self.close()
            self.key, self.part = key, self.part + 1
        if self.writer is None:
            month, district = key
            folder = self.root / f"month={month}" / f"district={district}"
            self.final = folder / f"part-{self.part:05d}.parquet"
            self.tmp = folder / f".part-{self.part:05d}.parquet.tmp"
            self.writer = open_writer(self.tmp, table.schema)
            self.rows = 0
            self.stats.partitions.add(key)
        self.writer.write_table(table)
        self.rows += table.num_rows

    def abort(self) -> None:
        """Drop the file being written (the export failed)."""
        if self.writer is not None and self.tmp is not None:
            self.writer.close()
            self.tmp.unlink(missing_ok=True)
            self.writer = None
            self.key = None

    def close(self) -> None:
        """Finish the file being written and give it its final name."""
        if self.writer is not None and self.tmp is not None and self.final is not None:
            self.writer.close()
            os.replace(self.tmp, self.final)
            self.stats.files.append(str(self.final.relative_to(self.root)))
            self.writer = None
            self.key = None


def _chunk_table(rows: Sequence[Any]) -> pa.Table:
    """A chunk of result rows as a GeoParquet-ready Arrow table."""
    columns = list(zip(*rows, strict=True))
    arrays = [
        pa.array(columns[i], type=EXPORT_SCHEMA.field(name).type)
        for i, name in enumerate(EXPORT_COLUMNS)
    ]
    table = pa.Table.from_arrays(arrays, schema=EXPORT_SCHEMA)
    lon = np.asarray(columns[len(EXPORT_COLUMNS)], dtype=np.float64)
    lat = np.asarray(columns[len(EXPORT_COLUMNS) + 1], dtype=np.float64)
    return with_points(table, lon, lat)


def _check_empty(out_dir: Path) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise InvalidInput(f"{out_dir} exists and is not an empty folder: choose a new one")


def export_reports(
    engine: Engine,
    out_dir: str | Path,
    since: dt.date | None = None,
    until: dt.date | None = None,
    *,
    chunk_rows: int = CHUNK_ROWS,
    rows_per_file: int = ROWS_PER_FILE,
    progress: Progress | None = None,
) -> ExportStats:
    """Write the reports of Beijing days ``[since, until)`` (None: unbounded) to ``out_dir``
    (a new or empty folder) as described in the module docstring."""
    started = time.perf_counter()
    root = Path(out_dir)
    _check_empty(root)
    if since is not None and until is not None and since >= until:
        raise InvalidInput("the export window is empty: --from must be before --to")
    lower = None if since is None else _midnight(since)
    upper = None if until is None else _midnight(until)
    root.mkdir(parents=True, exist_ok=True)
    stats = ExportStats()
    with engine.connect() as conn:
        first, last, total = export_window(conn, lower, upper)
    if not total or first is None or last is None:
        stats.seconds = time.perf_counter() - started
        return stats
    writer = _PartitionWriter(root, rows_per_file, stats)
    try:
        for month in _months(first, last):
            nxt = (month + dt.timedelta(days=32)).replace(day=1)
            a = _midnight(month) if lower is None else max(lower, _midnight(month))
            b = _midnight(nxt) if upper is None else min(upper, _midnight(nxt))
            key_month = month.strftime("%Y-%m")
            with engine.connect() as conn:
                result = conn.execution_options(stream_results=True, yield_per=chunk_rows).execute(
                    export_query(a, b)
                )
                for rows in result.partitions(chunk_rows):
                    table = _chunk_table(rows)
                    district = table.column("district_code").to_numpy(zero_copy_only=False)
                    # rows come ordered by district: write each run of one district
                    change = np.flatnonzero(district[1:] != district[:-1]) + 1
                    bounds = [0, *change.tolist(), len(district)]
                    for s, e in itertools.pairwise(bounds):
                        code = district[s]
                        key = (key_month, NO_DISTRICT if code is None else str(code))
                        writer.write(key, table.slice(s, e - s))
                    stats.rows += table.num_rows
                    if progress is not None:
                        progress(stats.rows, int(total))
            writer.close()
    except BaseException:
        writer.abort()
        raise
    stats.seconds = time.perf_counter() - started
    return stats
