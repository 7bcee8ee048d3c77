"""``batch rollup``: report counts per area or H3 cell and period, by category and channel.

The numbers are the service's (``geo_service.analytics.heat``): a report counts on its Beijing
day (``reported_at``; weeks from Monday, months from the 1st); an area's count is its grids'
(``grid_code`` cut to the level's code length, reports outside coverage left out); an H3 cell
at resolution r <= 11 is the parent of the report's resolution-11 cell (``h3_11`` when the
source has it, else computed from the point), exactly as ``h3_parent`` answers in SQL, and
every report with a point counts, inside coverage or not. Above 11 the cell holds the point.

On the cluster: one task per piece counts its rows, Dask's task-based shuffle adds the partial
counts up by key (a lost worker's tasks are simply recomputed) and writes ``DST/part-NNNNN
.parquet`` with ``period`` (date), ``code`` (area code or H3 hex name), ``category``,
``channel``, ``n``. ``load_rollup`` puts them in ``batch_rollups`` for the service to serve.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, cast

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from distributed import Client
from sqlalchemy import Connection, Engine

from geo_service.analytics import h3sql
from geo_service.batch.cluster import Update, follow, wait_followed
from geo_service.batch.dataset import Piece, Source
from geo_service.batch.geoparquet import GeoColumn, read_points
from geo_service.batch.periods import PERIODS, floor_period, local_days
from geo_service.boundaries.codes import CODE_LENGTH, Level
from geo_service.errors import InvalidInput
from geo_service.store import batch as batch_store
from geo_service.store import rollups as rollups_store

AREA_LEVELS: Final = ("grid", "community", "town")
KEYS: Final = ["period", "code", "category", "channel"]
ROWS_PER_OUTPUT: Final = 20_000_000  # source rows per output partition of the reduction
SCHEMA: Final = pa.schema(
    [
        ("period", pa.date32()),
        ("code", pa.string()),
        ("category", pa.string()),
        ("channel", pa.string()),
        ("n", pa.int64()),
    ]
)
_META: Final = pd.DataFrame(
    {
        "period": pd.Series([], dtype="datetime64[s]"),
        "code": pd.Series([], dtype="str"),
        "category": pd.Series([], dtype="str"),
        "channel": pd.Series([], dtype="str"),
        "n": pd.Series([], dtype="int64"),
    }
)


@dataclass(frozen=True)
class RollupSpec:
    """What to count by: an area ``level`` or an H3 resolution ``res``, and the period."""

    by: str  # grid | community | town | h3:RES, as given
    period: str
    level: str | None = None
    res: int | None = None

    @classmethod
    def parse(cls, by: str, period: str) -> RollupSpec:
        """From the command line's ``--by`` and ``--period`` (4xx naming a bad value)."""
        if period not in PERIODS:
            raise InvalidInput(f"unknown period {period!r}: use one of {', '.join(PERIODS)}")
        value = by.strip().lower()
        if value in AREA_LEVELS:
            return cls(value, period, level=value)
        if value.startswith("h3:"):
            try:
                res = int(value[3:])
            except ValueError:
                res = -1
            if not 0 <= res <= 15:
                raise InvalidInput(f"--by {by!r}: the H3 resolution must be 0-15")
            return cls(f"h3:{res}", period, res=res)
        raise InvalidInput(f"unknown --by {by!r}: use grid, community, town or h3:RES")

    def required(self) -> tuple[str, ...]:
        """The columns every source file must have for this roll-up."""
        return ("reported_at", "category", "channel") + (("grid_code",) if self.level else ())


@dataclass
class RollupStats:
    """A whole run: source rows, rows counted, output rows and files, seconds."""

    rows: int = 0
    counted: int = 0
    groups: int = 0
    files: int = 0
    seconds: float = 0.0


def _labels(table: pa.Table, name: str) -> pd.Series:
    """A text column with missing values as '' (as the heat roll-up keeps outside coverage)."""
    return table.column(name).to_pandas().astype("str").fillna("").reset_index(drop=True)


def count_rows(
    table: pa.Table, spec: RollupSpec, geometry: GeoColumn | None, where: str, first_row: int = 0
) -> pd.DataFrame:
    """Counts of one table's rows per (period, code, category, channel), in ``_META``'s form."""
    days = floor_period(local_days(table.column("reported_at")), spec.period)
    keep = ~np.isnat(days)
    if spec.level is not None:
        grid = table.column("grid_code").to_pandas().reset_index(drop=True)
        code = grid.astype("str").str.slice(0, CODE_LENGTH[cast(Level, spec.level)])
        keep &= (grid.notna() & (grid != "")).to_numpy()
        codes: pd.Series = code
    else:
        assert spec.res is not None and geometry is not None
        x, y = read_points(table, geometry, where, first_row)
        keep &= np.isfinite(x) & np.isfinite(y)
        cells = np.zeros(len(x), dtype=np.int64)
        if spec.res <= h3sql.STORED_RES:
            have = np.zeros(len(x), dtype=bool)
            if "h3_11" in table.column_names:
                stored = table.column("h3_11")
                have = np.asarray(stored.is_valid(), dtype=bool)
                cells[have] = stored.fill_null(0).to_numpy()[have]
            todo = keep & ~have
            cells[todo] = h3sql.cells_of_points(x[todo], y[todo], h3sql.STORED_RES)
            cells = h3sql.parent(cells, spec.res)
        else:
            cells[keep] = h3sql.cells_of_points(x[keep], y[keep], spec.res)
        codes = pd.Series(cells)
    frame = pd.DataFrame(
        {
            "period": days.astype("datetime64[s]"),
            "code": codes,
            "category": _labels(table, "category"),
            "channel": _labels(table, "channel"),
        }
    )[keep]
    counts = frame.groupby(KEYS, sort=False).size().rename("n").reset_index()
    if spec.res is not None:
        unique = counts["code"].unique()
        names = dict(zip(unique.tolist(), h3sql.to_hex(unique), strict=True))
        counts["code"] = counts["code"].map(names)
    return counts.astype(_META.dtypes.to_dict())


def count_piece(piece: Piece, spec: RollupSpec, geometry: GeoColumn) -> pd.DataFrame:
    """One map task: read only the columns the roll-up needs and count them."""
    wanted = list(spec.required())
    if spec.res is not None:
        wanted += list(geometry.columns[:1])
        if "h3_11" in pq.ParquetFile(piece.path).schema_arrow.names:
            wanted.append("h3_11")
    table = piece.read(wanted)
    return count_rows(table, spec, geometry, piece.where, piece.first_row)


def _finish(frame: pd.DataFrame) -> pd.DataFrame:
    """One output partition: sorted by key, ``period`` as a date."""
    out = frame.sort_values(KEYS, kind="stable").reset_index(drop=True)
    out["period"] = out["period"].dt.date
    return out


def check_columns(source: Source, spec: RollupSpec) -> None:
    """Refuse a source that lacks a column the roll-up needs, saying which."""
    missing = [c for c in spec.required() if c not in source.columns]
    if missing:
        hint = " (re-locate the source first)" if "grid_code" in missing else ""
        raise InvalidInput(
            f"rollup --by {spec.by} needs column(s) {', '.join(missing)}{hint}, which "
            f"{source.root} lacks"
        )


def rollup(
    client: Client,
    source: Source,
    spec: RollupSpec,
    dst: str | Path,
    *,
    progress: Update | None = None,
) -> RollupStats:
    """Count ``source`` as ``spec`` says on ``client``'s cluster into ``dst`` (a new or empty
    folder); see the module docstring."""
    started = time.perf_counter()
    out = Path(dst)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InvalidInput(f"{out} exists and is not an empty folder: choose a new one")
    check_columns(source, spec)
    parts = dd.from_map(  # type: ignore[no-untyped-call]
        count_piece, list(source.pieces), spec=spec, geometry=source.geometry, meta=_META
    )
    split = max(1, math.ceil(source.rows / ROWS_PER_OUTPUT))
    sums = (
        parts.groupby(KEYS, sort=False)["n"]
        .sum(split_out=split, shuffle_method="tasks")
        .reset_index()
        .map_partitions(_finish, meta=_META.assign(period=pd.Series([], dtype=object)))
    )
    write = sums.to_parquet(
        out,
        write_index=False,
        compute=False,
        schema=SCHEMA,
        name_function=lambda i: f"part-{i:05d}.parquet",
    )
    future = client.compute(write)  # type: ignore[no-untyped-call]
    stream = follow(client, [future], progress) if progress is not None else None
    try:
        future.result()
    finally:
        wait_followed(stream)
    files = sorted(out.glob("part-*.parquet"))
    counted = pq.read_table([str(f) for f in files], columns=["n"]) if files else None
    return RollupStats(
        rows=source.rows,
        counted=int(pa.compute.sum(counted.column("n")).as_py() or 0) if counted else 0,
        groups=counted.num_rows if counted else 0,
        files=len(files),
        seconds=time.perf_counter() - started,
    )


def read_rollup(dst: str | Path) -> pd.DataFrame:
    """A roll-up written by :func:`rollup`, every partition, sorted by key."""
    files = sorted(Path(dst).glob("part-*.parquet"))
    if not files:
        return _META.assign(period=pd.Series([], dtype=object))
    frame = pq.read_table([str(f) for f in files]).to_pandas()
    return frame.sort_values(KEYS, kind="stable").reset_index(drop=True)


def load_rollup(engine: Engine, dst: str | Path, spec: RollupSpec, source: str) -> int:
    """Replace the ``(by, period)`` roll-up in ``batch_rollups`` with ``dst``'s, in one
    transaction, streaming file by file. Returns the rows loaded."""
    files = sorted(Path(dst).glob("part-*.parquet"))

    def rows() -> Iterator[batch_store.RollupRow]:
        for path in files:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=100_000):
                cols = batch.to_pydict()
                yield from zip(
                    cols["period"],
                    cols["code"],
                    cols["category"],
                    cols["channel"],
                    cols["n"],
                    strict=True,
                )

    with engine.begin() as conn:
        loaded, _ = batch_store.replace_rollup(conn, spec.by, spec.period, rows(), source)
    return loaded


def rollup_counts(
    conn: Connection,
    by: str,
    period: str,
    first: dt.date | None = None,
    stop: dt.date | None = None,
) -> pd.DataFrame:
    """A loaded roll-up as the service reads it: periods starting in ``[first, stop)``,
    columns ``period, code, category, channel, n`` sorted by key."""
    spec = RollupSpec.parse(by, period)
    rows = batch_store.rollup_rows(conn, spec.by, spec.period, first, stop)
    return rollups_store.frame(rows, [*KEYS, "n"])
