"""A GeoParquet source (one file or a hive-partitioned folder) cut into pieces for tasks.

Everything a run can refuse up front is refused here, on the client, before a task starts:
no Parquet files, a file without a point geometry or without a required column, files that
disagree on geometry column or CRS, an empty partition. The footers give each file's row
groups, which are packed into pieces of about ``rows_per_piece`` rows: one task each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from geo_service.batch.geoparquet import GeoColumn, geo_column
from geo_service.errors import InvalidInput

ROWS_PER_PIECE: Final = 1_000_000
# partition values for a missing key: readable, and unlike Hive's null marker they do not trip
# pandas' reading of dictionary-encoded partition columns
NO_DISTRICT: Final = "outside"
NO_MONTH: Final = "unknown"


@dataclass(frozen=True)
class Piece:
    """Row groups of one file that one task reads."""

    index: int
    path: str
    row_groups: tuple[int, ...]
    rows: int
    first_row: int  # of the file, for messages naming rows

    @property
    def where(self) -> str:
        """The file (and row groups when not all) for messages."""
        return self.path

    def read(self, columns: Sequence[str] | None = None) -> pa.Table:
        """The piece's rows (only ``columns`` when given), without hive partition columns."""
        return pq.ParquetFile(self.path).read_row_groups(
            list(self.row_groups), columns=None if columns is None else list(columns)
        )


@dataclass(frozen=True)
class Source:
    """A validated GeoParquet source: its files' shared geometry column, the columns every
    file has, and the pieces."""

    root: Path
    files: tuple[str, ...]
    geometry: GeoColumn
    columns: tuple[str, ...]
    pieces: tuple[Piece, ...]

    @property
    def rows(self) -> int:
        """Rows of every piece."""
        return sum(p.rows for p in self.pieces)

    def relative(self, path: str) -> str:
        """A file's path below the source root (its name for a single-file source)."""
        p = Path(path)
        return p.name if self.root.is_file() else str(p.relative_to(self.root))


def _files(root: Path) -> list[str]:
    if root.is_file():
        return [str(root)]
    if not root.is_dir():
        raise InvalidInput(f"no such file or folder: {root}")
    # hive discovery as pyarrow does it: names starting with '.' or '_' are not data
    found = ds.dataset(root, format="parquet", partitioning="hive").files
    return sorted(str(f) for f in found)


def open_source(
    src: str | Path, require: Sequence[str] = ("id",), rows_per_piece: int = ROWS_PER_PIECE
) -> Source:
    """Check a GeoParquet source and plan its pieces (see the module docstring).

    ``require`` names columns every file must have (``id`` for re-location). Raises
    :class:`InvalidInput` naming the file and the problem.
    """
    root = Path(src)
    try:
        files = _files(root)
    except (OSError, pa.ArrowInvalid) as exc:
        raise InvalidInput(f"cannot read {root} as Parquet: {exc}") from exc
    if not files:
        raise InvalidInput(f"{root} holds no Parquet files")
    pieces: list[Piece] = []
    first: GeoColumn | None = None
    common: list[str] | None = None
    for path in files:
        try:
            meta = pq.ParquetFile(path).metadata
        except (OSError, pa.ArrowInvalid) as exc:
            raise InvalidInput(f"{path} is not a Parquet file: {exc}") from exc
        schema = meta.schema.to_arrow_schema()
        geo = geo_column(schema, path)
        if first is None:
            first = geo
        elif (geo.name, geo.encoding, geo.crs) != (first.name, first.encoding, first.crs):
            raise InvalidInput(
                f"{path}: its geometry ({geo.name}, {geo.encoding}, {geo.crs_name}) differs "
                f"from {files[0]}'s ({first.name}, {first.encoding}, {first.crs_name})"
            )
        missing = [c for c in require if c not in schema.names]
        if missing:
            raise InvalidInput(f"{path} has no {', '.join(map(repr, missing))} column")
        if meta.num_rows == 0:
            raise InvalidInput(
                f"{path} is an empty partition (no rows): remove it, or export again"
            )
        common = list(schema.names) if common is None else [c for c in common if c in schema.names]
        group: list[int] = []
        rows = start = offset = 0
        for rg in range(meta.num_row_groups):
            n = meta.row_group(rg).num_rows
            if group and rows + n > rows_per_piece:
                pieces.append(Piece(len(pieces), path, tuple(group), rows, start))
                group, rows, start = [], 0, offset
            group.append(rg)
            rows += n
            offset += n
        if group:
            pieces.append(Piece(len(pieces), path, tuple(group), rows, start))
    assert first is not None and common is not None
    return Source(root, tuple(files), first, tuple(common), tuple(pieces))
