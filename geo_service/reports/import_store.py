"""Storing checked history: report rows and their loop events, staged by COPY, inserted once.

Each report is located in the boundary version in force on its day and routed exactly as at
intake (:mod:`geo_service.reports.placement`), at the level it starts at, or one up when the
history says it was escalated (then due again one SLA after an overdue escalation, as
``escalate_overdue`` does). Each step taken becomes a ``report_events`` row at the step's time
(actor ``history import``), in time order, so loop durations read from the events are the
historical ones.

A chunk is staged by COPY, then one statement inserts the reports that are new (``ON
CONFLICT (idempotency_key) DO NOTHING``: a re-import adds nothing) and the events of exactly
those, in order, so ids grow with time (:func:`geo_service.store.report_copy.store_history`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd
from sqlalchemy import Connection

from geo_service.analytics.h3sql import cells_of_points
from geo_service.reports import placement
from geo_service.reports.import_versions import BoundaryTimeline
from geo_service.reports.taxonomy import next_level
from geo_service.routing import RoutingTable
from geo_service.stats import catalogue
from geo_service.stats.calendar import from_epoch, to_epoch
from geo_service.store import report_copy
from geo_service.store import reports as store
from geo_service.store.report_copy import ChunkResult

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
    limits = catalogue.history_deadlines(
        category,
        reported=to_epoch(rows["reported_at"]),
        accepted=to_epoch(rows["accepted_at"]),
        escalated=to_epoch(rows["escalated_at"]),
    )
    overdue_escalation = limits.overdue_escalation
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
            "due_at": from_epoch(limits.due_at),
            "urgency": limits.urgency,
            "dispatch_due_at": from_epoch(limits.dispatch_due_at),
            "handle_due_at": from_epoch(limits.handle_due_at),
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


def reserve_ids(conn: Connection, n: int) -> npt.NDArray[np.int64]:
    """``n`` report ids from the table's sequence, increasing (so ids follow time)."""
    return np.asarray(store.reserve_ids(conn, n), dtype=np.int64)


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
    existing = store.stored_keys(conn, reports["key"].tolist())
    if existing:
        reports = reports[~reports["key"].isin(list(existing)).to_numpy()]
        events = events[events["pos"].isin(reports["pos"]).to_numpy()]
    return report_copy.store_history(conn, reports, events, ACTOR)
