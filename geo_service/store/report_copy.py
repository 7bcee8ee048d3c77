"""Reports in bulk by COPY: intake and the history import load through one staging mechanism,
and planning reads every report's point back as binary arrays.

Why COPY: a bulk of 10,000 reports sent as array parameters spends most of its time in the
driver quoting array elements in Python; a COPY of the same rows costs a few milliseconds.

Loading (:class:`Staging`): rows are copied into a temporary table of the session, created
once per pooled connection and emptied at each commit (``ON COMMIT DELETE ROWS``) and before
each use, so loading adds no catalog churn per request; then one statement inserts the new
reports (``ON CONFLICT (idempotency_key) DO NOTHING``) with their events (and, at intake,
their reporters' contacts) and answers what it stored. Intake copies typed tuples in binary;
the history import copies CSV that Arrow writes from its frames (faster than any per-row
Python loop).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg import sql
from sqlalchemy import (
    DOUBLE_PRECISION,
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    Integer,
    MetaData,
    SmallInteger,
    Table,
    Text,
    delete,
    func,
    select,
    text,
)
from sqlalchemy.schema import CreateTable
from sqlalchemy.types import TypeEngine

from geo_service.db.schema import OPEN_STATUSES

_TEMP = MetaData()
_TYPES: Final[dict[str, TypeEngine[Any]]] = {
    "int8": BigInteger(),
    "int4": Integer(),
    "int2": SmallInteger(),
    "float8": DOUBLE_PRECISION(),
    "text": Text(),
    "bool": Boolean(),
    "timestamptz": DateTime(timezone=True),
}


def _raw(conn: Connection) -> psycopg.Connection[Any]:
    """The psycopg connection under ``conn`` (COPY is the driver's, not SQLAlchemy's)."""
    raw: psycopg.Connection[Any] | None = conn.connection.driver_connection
    if raw is None:
        raise RuntimeError("the connection is closed")
    return raw


def local_settings(conn: Connection, settings: Mapping[str, str]) -> None:
    """Set run-time parameters until the transaction ends (``SET LOCAL``), values bound."""
    for name, value in settings.items():
        conn.execute(select(func.set_config(name, value, True)))


class Staging:
    """A temporary table of the session that rows are copied into before one statement
    stores them (see the module docstring)."""

    def __init__(self, name: str, columns: Sequence[tuple[str, str]]) -> None:
        self.columns: tuple[tuple[str, str], ...] = tuple(columns)
        self.names: tuple[str, ...] = tuple(c for c, _ in self.columns)
        self.table = Table(
            name,
            _TEMP,
            *(Column(c, _TYPES[t]) for c, t in self.columns),
            prefixes=["TEMPORARY"],
            postgresql_on_commit="DELETE ROWS",
        )
        self._create = CreateTable(self.table, if_not_exists=True)
        target = sql.SQL("COPY {} ({}) FROM STDIN ").format(
            sql.Identifier(name), sql.SQL(", ").join(map(sql.Identifier, self.names))
        )
        self._copy_binary = target + sql.SQL("(FORMAT binary)")
        self._copy_csv = target + sql.SQL("(FORMAT csv)")

    def _prepare(self, conn: Connection) -> None:
        conn.execute(self._create)
        conn.execute(delete(self.table))  # rows of an earlier load in this transaction

    def load_rows(self, conn: Connection, rows: Iterable[Sequence[Any]]) -> None:
        """Replace the staged rows with ``rows`` (tuples in column order), by binary COPY."""
        self._prepare(conn)
        with _raw(conn).cursor() as cur, cur.copy(self._copy_binary) as copy:
            copy.set_types([t for _, t in self.columns])
            for row in rows:
                copy.write_row(row)

    def load_frame(self, conn: Connection, frame: pd.DataFrame) -> None:
        """Replace the staged rows with ``frame``'s columns of the same names, by CSV COPY.

        Arrow writes the CSV (twice as fast as pandas): missing values are empty unquoted
        fields (NULL), strings are quoted (so an empty one stays empty), times are ISO 8601
        in UTC.
        """
        self._prepare(conn)
        table = pa.Table.from_pandas(
            frame[list(self.names)].reset_index(drop=True), preserve_index=False
        )
        buffer = pa.BufferOutputStream()
        pacsv.write_csv(table, buffer, pacsv.WriteOptions(include_header=False))
        with _raw(conn).cursor() as cur, cur.copy(self._copy_csv) as copy:
            copy.write(bytes(buffer.getvalue()))


# --------------------------------------------------------------------------- intake

INTAKE: Final = Staging(
    "intake_staging",
    (
        ("id", "int8"), ("key", "text"), ("hash", "text"), ("channel", "text"),
        ("category", "text"), ("description", "text"), ("photos", "text"),
        ("reported_at", "timestamptz"), ("lon0", "float8"), ("lat0", "float8"), ("crs", "text"),
        ("lon", "float8"), ("lat", "float8"), ("in_cov", "bool"), ("grid", "text"),
        ("community", "text"), ("town", "text"), ("district", "text"), ("level", "text"),
        ("unit", "int4"), ("routed_by", "text"), ("due_at", "timestamptz"), ("hard", "bool"),
        ("response", "text"), ("h3", "int8"), ("has_reporter", "bool"), ("name", "text"),
        ("phone", "text"),
    ),
)  # fmt: skip
"""A new report as intake stages it: id, idempotency key and request hash, what was reported
(photos and response as JSON text), original and WGS84 point, placement and routing, its H3
cell, and the reporter (``has_reporter``, ``name``, ``phone``)."""

_INTAKE_INSERT = text("""
WITH ins AS (
    INSERT INTO reports (id, idempotency_key, request_hash, channel, category, description,
        photos, reported_at, lon_original, lat_original, crs_original, geom, in_coverage,
        grid_code, community_code, town_code, district_code, boundary_version_id,
        handling_level, unit_id, routed_by, status, status_at, due_at, hard, filed_by_key_id,
        filed_by_user_id, response, h3_11)
    SELECT s.id, s.key, s.hash, s.channel, s.category, s.description, CAST(s.photos AS jsonb),
        s.reported_at, s.lon0, s.lat0, s.crs, ST_Point(s.lon, s.lat, 4326), s.in_cov, s.grid,
        s.community, s.town, s.district, CAST(:version AS integer), s.level, s.unit,
        s.routed_by, 'discovered', s.reported_at, s.due_at, s.hard, CAST(:key_id AS integer),
        CAST(:user_id AS integer), CAST(s.response AS jsonb), s.h3
    FROM intake_staging s
    ORDER BY s.id
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id
), events AS (
    INSERT INTO report_events (report_id, at, action, to_status, unit_id, actor_key_id, actor,
        note)
    SELECT s.id, s.reported_at, 'discover', 'discovered', s.unit, CAST(:key_id AS integer),
        s.channel, 'routed by ' || s.routed_by
    FROM intake_staging s JOIN ins ON ins.id = s.id
    ORDER BY s.id
), contacts AS (
    INSERT INTO report_contacts (report_id, name, phone)
    SELECT s.id, s.name, s.phone
    FROM intake_staging s JOIN ins ON ins.id = s.id
    WHERE s.has_reporter
)
SELECT id FROM ins
""")


def store_new(
    conn: Connection,
    rows: Sequence[tuple[Any, ...]],
    version_id: int | None,
    key_id: int | None,
    user_id: int | None = None,
) -> set[int]:
    """Insert the staged ``rows`` (tuples laid out as :data:`INTAKE`) that are new, with their
    discovery events and contacts, in the caller's transaction, as filed by the API key
    ``key_id`` or the signed-in user ``user_id``; the ids stored (a row whose key exists is
    not)."""
    if not rows:
        return set()
    # a bulk's statements look costly enough to the planner to compile them (JIT), which
    # takes longer than running them
    local_settings(conn, {"jit": "off"})
    INTAKE.load_rows(conn, rows)
    result = conn.execute(
        _INTAKE_INSERT, {"version": version_id, "key_id": key_id, "user_id": user_id}
    )
    return {int(i) for i in result.scalars().all()}


# --------------------------------------------------------------------------- history

HISTORY_REPORTS: Final = Staging(
    "history_reports",
    (
        ("id", "int8"), ("key", "text"), ("channel", "text"), ("category", "text"),
        ("description", "text"), ("reported_at", "timestamptz"), ("lon0", "float8"),
        ("lat0", "float8"), ("crs", "text"), ("lon", "float8"), ("lat", "float8"),
        ("in_cov", "bool"), ("grid", "text"), ("community", "text"), ("town", "text"),
        ("district", "text"), ("version", "int4"), ("level", "text"), ("unit", "int4"),
        ("routed_by", "text"), ("status", "text"), ("status_at", "timestamptz"),
        ("due_at", "timestamptz"), ("closed_at", "timestamptz"), ("supervised", "bool"),
        ("hard", "bool"), ("rating", "int2"), ("h3", "int8"), ("urgency", "text"),
        ("dispatch_due_at", "timestamptz"), ("handle_due_at", "timestamptz"),
    ),
)  # fmt: skip
"""A past report as the history import stages it (its status, closing time and rating kept)."""
HISTORY_EVENTS: Final = Staging(
    "history_events",
    (
        ("report_id", "int8"), ("seq", "int4"), ("at", "timestamptz"), ("action", "text"),
        ("from_status", "text"), ("to_status", "text"), ("unit", "int4"), ("note", "text"),
    ),
)  # fmt: skip
"""A past step of a report's loop; ``seq`` orders all of a chunk's events."""

_HISTORY_INSERT = text("""
WITH ins AS (
    INSERT INTO reports (id, idempotency_key, channel, category, description, reported_at,
        lon_original, lat_original, crs_original, geom, in_coverage, grid_code,
        community_code, town_code, district_code, boundary_version_id, handling_level,
        unit_id, routed_by, status, status_at, due_at, closed_at, supervised, hard, rating,
        h3_11, urgency, dispatch_due_at, handle_due_at)
    SELECT s.id, s.key, s.channel, s.category, s.description, s.reported_at, s.lon0, s.lat0,
        s.crs, ST_Point(s.lon, s.lat, 4326), s.in_cov, s.grid, s.community, s.town,
        s.district, s.version, s.level, s.unit, s.routed_by, s.status,
        s.status_at, s.due_at, s.closed_at, s.supervised, s.hard, s.rating, s.h3,
        s.urgency, s.dispatch_due_at, s.handle_due_at
    FROM history_reports s
    ORDER BY s.id
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id, in_coverage
), ev AS (
    INSERT INTO report_events (report_id, at, action, from_status, to_status, unit_id, actor,
        note)
    SELECT e.report_id, e.at, e.action, e.from_status, e.to_status, e.unit,
        CAST(:actor AS text), e.note
    FROM history_events e
    WHERE e.report_id IN (SELECT id FROM ins)
    ORDER BY e.seq
    RETURNING 1
)
SELECT (SELECT count(*) FROM ins) AS stored,
       (SELECT count(*) FROM ins WHERE NOT in_coverage) AS outside,
       (SELECT count(*) FROM ev) AS events
""")


@dataclass(frozen=True)
class ChunkResult:
    """What one chunk stored: new reports, of them outside coverage, events."""

    stored: int
    outside: int
    events: int


def store_history(
    conn: Connection, reports: pd.DataFrame, events: pd.DataFrame, actor: str
) -> ChunkResult:
    """Insert past reports (columns of :data:`HISTORY_REPORTS`) that are new, and the events
    (columns of :data:`HISTORY_EVENTS`) of exactly those, in ``seq`` order, by ``actor``, in
    the caller's transaction (which may hold several chunks)."""
    if len(reports) == 0:
        return ChunkResult(0, 0, 0)
    # without JIT (compiling costs more than it saves here), with room to sort events in memory
    local_settings(conn, {"jit": "off", "work_mem": "64MB"})
    HISTORY_REPORTS.load_frame(conn, reports)
    HISTORY_EVENTS.load_frame(conn, events)
    row = conn.execute(_HISTORY_INSERT, {"actor": actor}).one()
    return ChunkResult(int(row.stored), int(row.outside), int(row.events))


# --------------------------------------------------------------------------- point arrays

# binary COPY: 11-byte signature, int32 flags, int32 header-extension length (0 here)
_HEADER: Final = 19
# binary array: ndim, has-nulls flag, element type oid, then (size, lower bound) for one dim
_ARRAY_HEADER: Final = 20
POINT_FIELDS: Final = (
    ("lon", ">f8"),
    ("lat", ">f8"),
    ("open", "u1"),
    ("category", ">i2"),
    ("level", ">i2"),
)
# one aggregated row holds every report: a field is at most 1 GB, so about 89 M reports (12
# bytes each in a float8 array). The subquery (kept apart by OFFSET 0) tests each status once;
# geometry::point reads the coordinates with one deserialisation where ST_X and ST_Y would
# take two. Category and level are aggregated for open cases alone (the look-up is the
# costliest expression per row).
_POINTS = sql.SQL(
    "COPY (SELECT array_agg(p[0]), array_agg(p[1]), array_agg(o), "
    "coalesce(array_agg(CAST(coalesce(array_position(%(cats)s, category), 0) AS int2)) "
    "FILTER (WHERE o), '{}'), "
    "coalesce(array_agg(CAST(coalesce(array_position(%(levels)s, handling_level), 0) AS int2)) "
    "FILTER (WHERE o), '{}') "
    "FROM (SELECT CAST(geom AS point) AS p, status = ANY(%(open)s) AS o, category, "
    "handling_level FROM reports "
    "WHERE CAST(%(since)s AS timestamptz) IS NULL OR reported_at >= %(since)s OFFSET 0) AS r"
    ") TO STDOUT (FORMAT binary)"
)


def _array(buf: memoryview, pos: int, dtype: str) -> tuple[npt.NDArray[Any], int]:
    """The elements of the binary array field at ``pos`` (no NULLs), and the next position."""
    length = int.from_bytes(buf[pos : pos + 4], "big", signed=True)
    pos += 4
    ndim = int.from_bytes(buf[pos : pos + 4], "big")
    if ndim == 0:
        return np.zeros(0, dtype=dtype), pos + length
    size = int.from_bytes(buf[pos + 12 : pos + 16], "big")
    width = np.dtype(dtype).itemsize
    items = np.dtype([("len", ">i4"), ("v", dtype)])
    body = buf[pos + _ARRAY_HEADER : pos + _ARRAY_HEADER + size * (4 + width)]
    return np.frombuffer(body, dtype=items)["v"], pos + length


def _parse(data: bytes) -> dict[str, list[npt.NDArray[Any]]]:
    """Field name → one array per COPY row."""
    buf = memoryview(data)
    out: dict[str, list[npt.NDArray[Any]]] = {name: [] for name, _ in POINT_FIELDS}
    pos = _HEADER
    while int.from_bytes(buf[pos : pos + 2], "big", signed=True) != -1:
        pos += 2
        for name, dtype in POINT_FIELDS:
            values, pos = _array(buf, pos, dtype)
            out[name].append(values)
    return out


def point_arrays(
    conn: Connection,
    categories: Sequence[str],
    levels: Sequence[str],
    since: dt.datetime | None = None,
) -> dict[str, list[npt.NDArray[Any]]]:
    """Every report (reported since ``since``, if given) as arrays, read by one binary COPY:
    for each name of :data:`POINT_FIELDS`, the arrays of its rows (concatenate them).

    ``lon``/``lat`` (WGS84) and ``open`` (an open case) hold every report; ``category`` and
    ``level`` (1-based positions in ``categories`` and ``levels``, 0 when absent) hold the
    open cases alone, in the same order.
    """
    raw = _raw(conn)
    local_settings(conn, {"jit": "off"})  # compiling costs more than it saves here
    params = {
        "open": list(OPEN_STATUSES),
        "cats": list(categories),
        "levels": list(levels),
        "since": since,
    }
    chunks = []
    with raw.cursor() as cur, cur.copy(_POINTS, params) as copy:
        for block in copy:
            chunks.append(block)
    return _parse(b"".join(chunks))
