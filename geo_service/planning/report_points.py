"""Every stored report as numpy columns, read as a few binary arrays (a million in about a second).

Impact and suggestions re-locate all past reports under another boundary version; a Python
object per row would cost more than the locating itself. So the database aggregates the
columns into arrays and sends them in PostgreSQL's
binary COPY format, which numpy views directly. Category and handling level are only needed
to route open cases, so they are aggregated for those alone (the category look-up is the
costliest expression per row).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import sql
from sqlalchemy import Connection, text

from geo_service.reports.queries import OPEN_STATUSES
from geo_service.reports.schemas import CHINA_TZ
from geo_service.reports.taxonomy import CATEGORIES, HANDLING_LEVELS

CATEGORY_CODES: Final = tuple(c.code for c in CATEGORIES)
# one aggregated row holds every report: a field is at most 1 GB, so about 89 M reports (12
# bytes each in a float8 array); beyond, re-location belongs on Dask partitions (DESIGN §6)
# binary COPY: 11-byte signature, int32 flags, int32 header-extension length (0 here)
_HEADER: Final = 19
# binary array: ndim, has-nulls flag, element type oid, then (size, lower bound) for one dim
_ARRAY_HEADER: Final = 20
_FIELDS: Final = (
    ("lon", ">f8"),
    ("lat", ">f8"),
    ("open", "u1"),
    ("category", ">i2"),
    ("level", ">i2"),
)
# the subquery (kept apart by OFFSET 0) tests each status once; geometry::point reads the
# coordinates with one deserialisation where ST_X and ST_Y would take two
_SELECT: Final = (
    "SELECT array_agg(p[0]), array_agg(p[1]), array_agg(o), "
    "coalesce(array_agg(CAST(coalesce(array_position({cats}, category), 0) AS int2)) "
    "FILTER (WHERE o), '{{}}'), "
    "coalesce(array_agg(CAST(coalesce(array_position({levels}, handling_level), 0) AS int2)) "
    "FILTER (WHERE o), '{{}}') "
    "FROM (SELECT CAST(geom AS point) AS p, status = ANY({open}) AS o, category, handling_level "
    "FROM reports WHERE {since} IS NULL OR reported_at >= {since} OFFSET 0) AS r"
)

IntArray = npt.NDArray[np.int16]


@dataclass(frozen=True)
class ReportPoints:
    """WGS84 points of reports, whether each is an open case, its category and handling level.

    ``category`` indexes :data:`CATEGORY_CODES` and ``level`` indexes ``HANDLING_LEVELS``
    (both 1-based; 0 = closed case, or not in the taxonomy).
    """

    lon: npt.NDArray[np.float64]
    lat: npt.NDArray[np.float64]
    open: npt.NDArray[np.bool_]
    category: IntArray
    level: IntArray

    def __len__(self) -> int:
        return len(self.lon)

    @classmethod
    def empty(cls) -> ReportPoints:
        z = np.zeros(0, dtype=np.int16)
        return cls(np.zeros(0), np.zeros(0), np.zeros(0, dtype=bool), z, z)


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
    """Column name → one array per COPY row."""
    buf = memoryview(data)
    out: dict[str, list[npt.NDArray[Any]]] = {name: [] for name, _ in _FIELDS}
    pos = _HEADER
    while int.from_bytes(buf[pos : pos + 2], "big", signed=True) != -1:
        pos += 2
        for name, dtype in _FIELDS:
            values, pos = _array(buf, pos, dtype)
            out[name].append(values)
    return out


def read_report_points(conn: Connection, since: dt.date | None = None) -> ReportPoints:
    """Every stored report, or those reported since a date (Beijing midnight)."""
    query = sql.SQL("COPY ({}) TO STDOUT (FORMAT binary)").format(
        sql.SQL(_SELECT).format(
            open=sql.Literal(list(OPEN_STATUSES)),
            cats=sql.Literal(list(CATEGORY_CODES)),
            levels=sql.Literal(list(HANDLING_LEVELS)),
            since=sql.Literal(
                None if since is None else dt.datetime.combine(since, dt.time(0), CHINA_TZ)
            ),
        )
    )
    raw: psycopg.Connection[Any] | None = conn.connection.driver_connection
    if raw is None:
        raise RuntimeError("the connection is closed")
    chunks = []
    conn.execute(text("SELECT set_config('jit', 'off', true)"))  # compiling costs more here
    with raw.cursor() as cur, cur.copy(query) as copy:
        for block in copy:
            chunks.append(block)
    cols = _parse(b"".join(chunks))
    if not cols["lon"]:
        return ReportPoints.empty()
    is_open = np.concatenate(cols["open"]).astype(bool)
    category = np.zeros(len(is_open), dtype=np.int16)
    level = np.zeros(len(is_open), dtype=np.int16)
    category[is_open] = np.concatenate(cols["category"])
    level[is_open] = np.concatenate(cols["level"])
    return ReportPoints(
        np.concatenate(cols["lon"]).astype(np.float64),
        np.concatenate(cols["lat"]).astype(np.float64),
        is_open,
        category,
        level,
    )
