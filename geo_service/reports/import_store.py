"""Storing checked history: report rows and their loop events, staged by COPY, inserted once.

Each report is located in the boundary version in force on its day and routed exactly as at
intake (:mod:`geo_service.reports.placement`), at the level it starts at, or one up when the
history says it was escalated (then due again one SLA after an overdue escalation, as
``escalate_overdue`` does). Each step taken becomes a ``report_events`` row at the step's time
(actor ``history import``), in time order, so loop durations read from the events are the
historical ones.

A chunk is staged by COPY into two temporary tables, then one statement inserts the reports
that are new (``ON CONFLICT (idempotency_key) DO NOTHING``: a re-import adds nothing) and the
events of exactly those, in order, so ids grow with time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from sqlalchemy import Connection, text

from geo_service.analytics.h3sql import cells_of_points
from geo_service.reports import intake_store, placement
from geo_service.reports.import_versions import BoundaryTimeline
from geo_service.reports.taxonomy import CATEGORY_BY_CODE, next_level
from geo_service.routing import RoutingTable

ACTOR: Final = "history import"
# (action, time column, status reached); escalation and supervision keep the status
EVENT_STEPS: Final = (
    ("discover", "reported_at", "discovered"),
    ("accept", "accepted_at", "accepted"),
    ("dispatch", "dispatched_at", "dispatched"),
    ("start", "handling_at", "handling"),
    ("complete", "handled_at", "handled"),
    ("verify", "verified_at", "verified"),
    ("feed_back", "fed_back_at", "fed_back"),
    ("evaluate", "evaluated_at", "evaluated"),
    ("reject", "rejected_at", "rejected"),
    ("escalate", "escalated_at", None),
    ("supervise", "supervised_at", None),
)
_ACTIONS: Final = [a for a, _, _ in EVENT_STEPS]
_ESCALATE: Final = _ACTIONS.index("escalate")  # the loop steps come before it
_SUPERVISE: Final = _ACTIONS.index("supervise")
_LOOP_STATUS: Final = np.array([s for _, _, s in EVENT_STEPS[:_ESCALATE]], dtype=object)

REPORT_COLUMNS: Final = (
    "id", "key", "channel", "category", "description", "reported_at", "lon0", "lat0", "crs",
    "lon", "lat", "in_cov", "grid", "community", "town", "district", "version", "level", "unit",
    "routed_by", "status", "status_at", "due_at", "closed_at", "supervised", "hard", "rating",
    "h3",
)  # fmt: skip
EVENT_COLUMNS: Final = (
    "report_id", "seq", "at", "action", "from_status", "to_status", "unit", "note",
)  # fmt: skip

# each chunk's statements run without JIT (compiling costs more than it saves here) and with
# room to sort a chunk's events in memory
_SETTINGS = (text("SET LOCAL jit = off"), text("SET LOCAL work_mem = '64MB'"))
_CREATE_REPORTS = text("""
CREATE TEMP TABLE history_reports (
    id bigint, key text, channel text, category text, description text,
    reported_at timestamptz, lon0 float8, lat0 float8, crs text, lon float8, lat float8,
    in_cov boolean, grid text, community text, town text, district text, version integer,
    level text,
    unit integer, routed_by text, status text, status_at timestamptz, due_at timestamptz,
    closed_at timestamptz, supervised boolean, hard boolean, rating smallint, h3 bigint
) ON COMMIT DROP
""")
_CREATE_EVENTS = text("""
CREATE TEMP TABLE history_events (
    report_id bigint, seq integer, at timestamptz, action text, from_status text,
    to_status text, unit integer, note text
) ON COMMIT DROP
""")
_COPY_REPORTS = "COPY history_reports FROM STDIN (FORMAT csv)"
_COPY_EVENTS = "COPY history_events FROM STDIN (FORMAT csv)"
_INSERT = text("""
WITH ins AS (
    INSERT INTO reports (id, idempotency_key, channel, category, description, reported_at,
        lon_original, lat_original, crs_original, geom, in_coverage, grid_code,
        community_code, town_code, district_code, boundary_version_id, handling_level,
        unit_id, routed_by, status, status_at, due_at, closed_at, supervised, hard, rating,
        h3_11)
    SELECT s.id, s.key, s.channel, s.category, s.description, s.reported_at, s.lon0, s.lat0,
        s.crs, ST_Point(s.lon, s.lat, 4326), s.in_cov, s.grid, s.community, s.town,
        s.district, s.version, s.level, s.unit, s.routed_by, s.status,
        s.status_at, s.due_at, s.closed_at, s.supervised, s.hard, s.rating, s.h3
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
_DROP_STAGING = text("DROP TABLE history_reports, history_events")
_EXISTING = text(
    "SELECT idempotency_key FROM reports WHERE idempotency_key = ANY(CAST(:keys AS text[]))"
)


@dataclass(frozen=True)
class Chunk:
    """Consecutive reports (by time) and their events: one transaction's worth."""

    reports: pd.DataFrame
    events: pd.DataFrame

    def __len__(self) -> int:
        return len(self.reports)


@dataclass(frozen=True)
class Staged:
    """What will be stored: one row per report (sorted by time, ``pos`` from 0) and its
    events (``pos`` of their report, in order)."""

    reports: pd.DataFrame
    events: pd.DataFrame

    def chunks(self, size: int) -> list[Chunk]:
        """Consecutive slices of ``size`` reports with their events."""
        pos = self.events["pos"].to_numpy()
        out = []
        for start in range(0, len(self.reports), max(1, size)):
            stop = min(start + max(1, size), len(self.reports))
            lo, hi = np.searchsorted(pos, [start, stop])
            out.append(Chunk(self.reports.iloc[start:stop], self.events.iloc[lo:hi]))
        return out


def _strings(values: npt.ArrayLike) -> pd.Series:
    return pd.Series(np.asarray(values, dtype=object))


def stage(
    checked: pd.DataFrame,
    timeline: BoundaryTimeline,
    routing: RoutingTable,
    version_pos: npt.NDArray[np.int64],
) -> Staged:
    """Locate, route and lay out checked rows (see :func:`check_history`) for storing; each
    row is placed in the version of ``timeline`` at its ``version_pos`` (one per row)."""
    order = checked["reported_at"].argsort(kind="stable").to_numpy()
    rows = checked.iloc[order].reset_index(drop=True)
    pos = np.asarray(version_pos, dtype=np.int64)[order]
    n = len(rows)
    placed = timeline.place(pos, rows["lon"], rows["lat"], routing)
    category = rows["category"].to_numpy(dtype=object)
    level0 = placement.base_levels(category, rows["hard"].to_numpy(dtype=bool))
    unit0, routed0 = placement.route(placed, routing, category, level0)
    escalated = rows["escalated_at"].notna().to_numpy()
    up = np.flatnonzero(escalated)
    level = level0.copy()
    level[up] = [next_level(v) or v for v in level0[up]]
    unit, routed = unit0.copy(), routed0.copy()
    if len(up):
        unit[up], routed[up] = placement.route(placed.take(up), routing, category[up], level[up])
    sla = pd.to_timedelta([CATEGORY_BY_CODE[c].sla_hours for c in category], unit="h")
    first_due = rows["reported_at"] + sla
    overdue_escalation = (rows["escalated_at"] >= first_due).fillna(False).to_numpy()
    due = first_due.where(~overdue_escalation, rows["escalated_at"] + sla)
    reports = pd.DataFrame(
        {
            "pos": np.arange(n),
            "key": rows["key"],
            "channel": rows["channel"],
            "category": category,
            "description": rows["description"],
            "reported_at": rows["reported_at"],
            "lon0": rows["lon0"],
            "lat0": rows["lat0"],
            "crs": rows["crs"],
            "lon": rows["lon"],
            "lat": rows["lat"],
            "in_cov": placed.in_coverage,
            "grid": _strings(placed.grid_code),
            "community": _strings(placed.community_code),
            "town": _strings(placed.town_code),
            "district": _strings(placed.district_code),
            "version": timeline.version_ids(pos),
            "level": level,
            "unit": pd.array(list(unit), dtype="Int64"),
            "routed_by": routed,
            "status": rows["status"],
            "status_at": rows["status_at"],
            "due_at": due,
            "closed_at": rows["closed_at"],
            "supervised": rows["supervised"],
            "hard": rows["hard"],
            "rating": rows["rating"],
            "h3": cells_of_points(rows["lon"], rows["lat"]),
        }
    )
    notes = {
        "discover": "routed by " + pd.Series(routed0, dtype=object),
        "escalate": (
            pd.Series(np.where(overdue_escalation, "overdue: escalated (", "escalated ("))
            + pd.Series(level0, dtype=object)
            + " → "
            + pd.Series(level, dtype=object)
            + ")"
        ),
    }
    events = _events(rows, unit0, unit, overdue_escalation, notes)
    return Staged(reports, events)


def _events(
    rows: pd.DataFrame,
    unit0: npt.NDArray[np.object_],
    unit1: npt.NDArray[np.object_],
    overdue_escalation: npt.NDArray[np.bool_],
    notes: dict[str, pd.Series],
) -> pd.DataFrame:
    """One event per step taken, ordered by report then time (discovery first)."""
    pos_parts, kind_parts, at_parts = [], [], []
    for k, (_, col, _) in enumerate(EVENT_STEPS):
        t = rows[col]
        given = np.flatnonzero(t.notna().to_numpy())
        pos_parts.append(given)
        kind_parts.append(np.full(len(given), k))
        at_parts.append(t.iloc[given].to_numpy(dtype="datetime64[us]").astype(np.int64))
    pos = np.concatenate(pos_parts)
    kind = np.concatenate(kind_parts)
    at = np.concatenate(at_parts)
    sort_at = np.where(kind == 0, np.iinfo(np.int64).min, at)  # discovery first, always
    order = np.lexsort((kind, sort_at, pos))
    pos, kind, at = pos[order], kind[order], at[order]
    # the status after each event: the furthest loop step so far (escalations keep it)
    loop_rank = np.where(kind < _ESCALATE, kind, -1)
    running = np.maximum.accumulate(pos * 16 + loop_rank + 1) - pos * 16 - 1
    to_status = _LOOP_STATUS[running]
    first = np.ones(len(pos), dtype=bool)
    first[1:] = pos[1:] != pos[:-1]
    from_status = np.empty(len(pos), dtype=object)
    from_status[1:] = to_status[:-1]
    from_status[first] = None
    escalations = pd.Series(kind == _ESCALATE).groupby(pos).cumsum().to_numpy() > 0
    unit = np.where(escalations, unit1[pos], unit0[pos])
    action = np.array(_ACTIONS, dtype=object)[kind]
    action[(kind == _ESCALATE) & overdue_escalation[pos]] = "escalate_overdue"
    note = np.full(len(pos), None, dtype=object)
    for k, name in ((0, "discover"), (_ESCALATE, "escalate")):
        sel = kind == k
        note[sel] = notes[name].to_numpy(dtype=object)[pos[sel]]
    note[kind == _SUPERVISE] = "supervised (督办)"
    stamps = pd.Series(at.astype("datetime64[us]")).dt.tz_localize("UTC")
    return pd.DataFrame(
        {
            "pos": pos,
            "seq": np.arange(len(pos)),
            "at": stamps,
            "action": action,
            "from_status": from_status,
            "to_status": to_status,
            "unit": pd.array(list(unit), dtype="Int64"),
            "note": note,
        }
    )


def _csv(frame: pd.DataFrame) -> bytes:
    """PostgreSQL CSV, written by Arrow (twice as fast as pandas): missing values are empty
    unquoted fields (NULL), strings are quoted (so an empty one stays empty), times are
    ISO 8601 in UTC."""
    table = pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)
    buffer = pa.BufferOutputStream()
    pacsv.write_csv(table, buffer, pacsv.WriteOptions(include_header=False))
    return bytes(buffer.getvalue())


@dataclass(frozen=True)
class ChunkResult:
    """What one chunk stored: new reports, of them outside coverage, events."""

    stored: int
    outside: int
    events: int


def reserve_ids(conn: Connection, n: int) -> npt.NDArray[np.int64]:
    """``n`` report ids from the table's sequence, increasing (so ids follow time)."""
    return np.asarray(intake_store.reserve_ids(conn, n), dtype=np.int64)


def store_chunk(conn: Connection, chunk: Chunk, ids: npt.NDArray[np.int64]) -> ChunkResult:
    """Stage one chunk by COPY and insert what is new, in the caller's transaction (which
    may hold several chunks: the staging tables go with each).

    ``ids`` (one per report, from :func:`reserve_ids`) become the new reports' ids; a report
    already stored keeps its own and its reserved id is left unused.
    """
    first = int(chunk.reports["pos"].iloc[0]) if len(chunk) else 0
    reports = chunk.reports.assign(id=ids)
    events = chunk.events.assign(report_id=ids[chunk.events["pos"].to_numpy() - first])
    # what an earlier import stored is not sent again (ON CONFLICT still guards races)
    keys = reports["key"].tolist()
    existing = set(conn.execute(_EXISTING, {"keys": keys}).scalars().all()) if keys else set()
    if existing:
        reports = reports[~reports["key"].isin(list(existing)).to_numpy()]
        events = events[events["pos"].isin(reports["pos"]).to_numpy()]
    if len(reports) == 0:
        return ChunkResult(0, 0, 0)
    for statement in (*_SETTINGS, _CREATE_REPORTS, _CREATE_EVENTS):
        conn.execute(statement)
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur:
        with cur.copy(_COPY_REPORTS) as copy:
            copy.write(_csv(reports[list(REPORT_COLUMNS)]))
        with cur.copy(_COPY_EVENTS) as copy:
            copy.write(_csv(events[list(EVENT_COLUMNS)]))
    row = conn.execute(_INSERT, {"actor": ACTOR}).one()
    conn.execute(_DROP_STAGING)
    return ChunkResult(int(row.stored), int(row.outside), int(row.events))
