"""The case-stage layer's numbers (``/v1/analytics/grid-stats``, ``/maps/grids``) from the
per-case facts (:mod:`geo_service.stats.facts`) instead of scanning reports and their 1.5 M
events per request.

Per area code of a level, over the cases an :class:`~geo_service.analytics.filters.
AnalysisFilter` selects (located in a grid, reported in its window, of its categories,
channels and current statuses, in its area): ``reports``, ``open`` (not evaluated or
rejected), ``overdue`` (the one definition, as the indicators count it: accepted, handling not
done, past the handling deadline), ``supervised`` and ``supervised_open`` (flagged); and per
loop action the median seconds since the case's event before it, and how many such steps.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd
from sqlalchemy import Engine

from geo_service.analytics.filters import AnalysisFilter
from geo_service.boundaries.codes import CODE_LENGTH
from geo_service.db.schema import CHANNELS, OPEN_STATUSES, REPORT_STATUSES
from geo_service.stats.facts import CATEGORY_CODES, Snapshot, cache_of
from geo_service.stats.indicators import grouped_median

COUNT_COLUMNS: Final = ("reports", "open", "overdue", "supervised", "supervised_open")


def _selected(snap: Snapshot, f: AnalysisFilter) -> npt.NDArray[np.bool_]:
    """The cases ``f`` selects, located in a grid."""
    digits = snap["place_len"].astype(np.int64)
    mask = (digits >= CODE_LENGTH["grid"]) & (snap["place"].astype(np.int64) >= 0)
    since, until = f.window()
    reported = snap.time("reported")
    if since is not None:
        mask &= reported >= since.timestamp()
    if until is not None:
        mask &= reported < until.timestamp()
    for values, column, vocabulary in (
        (f.categories, "category", CATEGORY_CODES),
        (f.channels, "channel", CHANNELS),
        (f.statuses, "status", REPORT_STATUSES),
    ):
        if values:
            mask &= np.isin(snap[column], [vocabulary.index(v) for v in values])
    if f.area:
        below = digits - len(f.area)
        prefix = snap["place"].astype(np.int64) // 10 ** np.clip(below, 0, 18)
        mask &= (below >= 0) & (prefix == int(f.area))
    return mask


def stage_counts(
    engine: Engine, f: AnalysisFilter, level: str = "grid", now: dt.datetime | None = None
) -> pd.DataFrame:
    """Per area code of ``level``: ``reports``, ``open``, ``overdue`` (at ``now``, the clock
    by default), ``supervised``, ``supervised_open``; areas without cases are left out."""
    snap = cache_of(engine).snapshot(engine)
    keys, codes = snap.level_keys(level)
    sel = _selected(snap, f) & (keys >= 0)
    g = keys[sel].astype(np.int64)
    n = len(codes)
    clock = (now or dt.datetime.now(dt.UTC)).timestamp()
    is_open = np.isin(snap["status"], [REPORT_STATUSES.index(s) for s in OPEN_STATUSES])[sel]
    supervised = snap["supervised"].astype(np.int64)[sel] > 0
    columns = {
        "reports": np.bincount(g, minlength=n),
        "open": np.bincount(g[is_open], minlength=n),
        "overdue": np.bincount(g[snap.overdue_at(clock)[sel]], minlength=n),
        "supervised": np.bincount(g[supervised], minlength=n),
        "supervised_open": np.bincount(g[supervised & is_open], minlength=n),
    }
    frame = pd.DataFrame({"code": codes, **columns})
    return (
        frame[frame["reports"] > 0]
        .reset_index(drop=True)
        .astype({c: "int64" for c in COUNT_COLUMNS})
    )


def step_durations(engine: Engine, f: AnalysisFilter, level: str = "grid") -> pd.DataFrame:
    """Per area code of ``level`` and loop action: ``median_s`` (seconds since the case's
    event before it, never negative) and ``steps`` (how many such events)."""
    cache = cache_of(engine)
    snap = cache.snapshot(engine)
    steps = cache.steps(engine)
    keys, codes = snap.level_keys(level)
    case_ok = _selected(snap, f) & (keys >= 0)
    pos, action, seconds = steps.by_seconds(snap)  # fewest seconds first
    ok = case_ok[pos] & (pos >= 0)
    k = len(steps.actions)
    group = keys[pos[ok]].astype(np.int64) * k + action[ok]
    n = len(codes) * k
    counts = np.bincount(group, minlength=n)
    medians = grouped_median(group, seconds[ok], n, presorted=True)
    seen = np.flatnonzero(counts)
    return pd.DataFrame(
        {
            "code": codes[seen // max(k, 1)] if k else codes[:0],
            "action": steps.actions[seen % k] if k else steps.actions[:0],
            "median_s": medians[seen],
            "steps": counts[seen].astype(np.int64),
        }
    )
