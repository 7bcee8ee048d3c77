"""Working time: the State Council's working days (make-up days included) and working hours.

Time limits (处置时限) run in working time: only the working hours (default 08:30-12:00 and
13:30-17:30 Beijing time, ``GEO_STATS_WORKING_HOURS``) of working days count. Working days come
from ``chinese_calendar`` (the State Council's yearly notice: public holidays are off, the
weekend days swapped for them, 调休, are worked), e.g. National Day 2025: Oct 1-8 off,
Sunday Sep 28 and Saturday Oct 11 worked.

**Outside the library's years** (it knows 2004 to the last year the State Council has
announced) a working day is Monday to Friday: the rule the notices depart from, the best guess
before a year's notice is out. The first time a computation reaches such a date a warning is
logged (once per process), since its deadlines may move when the library learns the year.

How: the calendar is a piecewise-linear clock. Every working period of every day from 1992
(since when China has kept UTC+8 all year) to 2199 is laid out once as ``starts``/``ends``
(epoch seconds) with ``before``, the working seconds before each period. ``clock(t)`` (working
seconds since 1992 at instant ``t``) is one
binary search; adding ``s`` working seconds to ``t`` is ``clock⁻¹(clock(t) + s)``, another
one. Both take numpy arrays, so a year of cases gets its deadlines in milliseconds. A deadline
that lands exactly at the end of a period is that period's end (17:30), not the next morning.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import threading
from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd
from chinese_calendar import constants as _cc

from geo_service.reports.schemas import CHINA_TZ

FloatArray = npt.NDArray[np.float64]

FIRST_YEAR: Final = 1992
LAST_YEAR: Final = 2199
KNOWN_YEARS: Final = (
    min(d.year for d in _cc.holidays),
    max(d.year for d in (*_cc.holidays, *_cc.workdays)),
)
"""The years ``chinese_calendar`` has the State Council's notice for (first, last)."""
UTC_OFFSET_S: Final = 8 * 3600
DEFAULT_HOURS: Final = ((8 * 60 + 30, 12 * 60), (13 * 60 + 30, 17 * 60 + 30))

log = logging.getLogger(__name__)
_warned = threading.Event()


def _midnight(year: int) -> float:
    """Epoch seconds of Beijing midnight starting January 1 of ``year``."""
    return dt.datetime(year, 1, 1, tzinfo=CHINA_TZ).timestamp()


_HOLIDAYS: Final = np.array(sorted(_cc.holidays), dtype="datetime64[D]")
_MAKE_UP: Final = np.array(sorted(_cc.workdays), dtype="datetime64[D]")


def workdays(days: npt.NDArray[np.datetime64]) -> npt.NDArray[np.bool_]:
    """Which ``days`` (datetime64[D]) are working days: in the known years the State
    Council's (holidays off, make-up days worked, else Monday to Friday), Monday to Friday
    outside them."""
    days = np.asarray(days, dtype="datetime64[D]")
    weekday = (days.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday; Monday is 0
    working = weekday < 5
    year = days.astype("datetime64[Y]").astype(np.int64) + 1970
    known = (year >= KNOWN_YEARS[0]) & (year <= KNOWN_YEARS[1])
    working &= ~(known & np.isin(days, _HOLIDAYS))
    working |= known & np.isin(days, _MAKE_UP)
    return working


def is_workday(day: dt.date) -> bool:
    """Whether ``day`` is a working day (see :func:`workdays`)."""
    return bool(workdays(np.array([day], dtype="datetime64[D]"))[0])


def to_epoch(values: object) -> FloatArray:
    """Epoch seconds (float64, NaN for missing) of datetimes: a numpy datetime64 array, a
    pandas Series or sequence of aware datetimes/Timestamps (naive ones are taken as UTC)."""
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    arr = np.asarray(values)
    if arr.dtype.kind == "M":
        ns = arr.astype("datetime64[ns]")
        out = ns.astype(np.int64).astype(np.float64) / 1e9
        out[np.isnat(ns)] = np.nan
        return out
    if arr.dtype.kind == "f":
        return arr.astype(np.float64)
    return np.array(
        [np.nan if v is None or pd.isna(v) else v.timestamp() for v in arr.tolist()],
        dtype=np.float64,
    )


def from_epoch(seconds: npt.ArrayLike) -> pd.Series:
    """Epoch seconds (NaN: missing) as a Series of aware UTC timestamps, to the microsecond."""
    arr = np.asarray(seconds, dtype=np.float64)
    missing = np.isnan(arr)
    micro = np.where(missing, 0, np.round(arr * 1e6)).astype(np.int64).astype("datetime64[us]")
    micro[missing] = np.datetime64("NaT")
    return pd.Series(micro).dt.tz_localize("UTC")


class WorkCalendar:
    """Working time under one set of working hours (minutes after midnight, Beijing time)."""

    def __init__(self, periods: Sequence[tuple[int, int]] = DEFAULT_HOURS) -> None:
        self.periods = tuple((int(a), int(b)) for a, b in periods)
        if not self.periods:
            raise ValueError("a working day needs at least one working period")
        days = np.arange(
            np.datetime64(f"{FIRST_YEAR}-01-01"), np.datetime64(f"{LAST_YEAR + 1}-01-01")
        )
        working = workdays(days)
        # Beijing midnights: China has kept UTC+8 all year since 1992
        midnight = (days[working].astype(np.int64) * 86400 - UTC_OFFSET_S).astype(np.float64)
        offsets = np.array(self.periods, dtype=np.float64) * 60.0
        self.starts: FloatArray = (midnight[:, None] + offsets[None, :, 0]).ravel()
        self.ends: FloatArray = (midnight[:, None] + offsets[None, :, 1]).ravel()
        lengths = self.ends - self.starts
        self.before: FloatArray = np.concatenate([[0.0], np.cumsum(lengths)[:-1]])
        self.after: FloatArray = self.before + lengths
        self.day_seconds = float(sum(b - a for a, b in self.periods) * 60)
        self._known = (_midnight(KNOWN_YEARS[0]), _midnight(KNOWN_YEARS[1] + 1))
        self._range = (_midnight(FIRST_YEAR), _midnight(LAST_YEAR + 1))

    def _check(self, *arrays: FloatArray) -> None:
        """Refuse instants outside 1992-2199; warn once about those outside the known years."""
        for a in arrays:
            finite = a[np.isfinite(a)]
            if not len(finite):
                continue
            lo, hi = float(finite.min()), float(finite.max())
            if lo < self._range[0] or hi >= self._range[1]:
                raise ValueError(f"working time is kept from {FIRST_YEAR} to {LAST_YEAR} only")
            if (lo < self._known[0] or hi >= self._known[1]) and not _warned.is_set():
                _warned.set()
                log.warning(
                    "working time outside %s-%s (the years chinese_calendar knows): "
                    "Monday to Friday are taken as working days there",
                    *KNOWN_YEARS,
                )

    def clock(self, t: npt.ArrayLike) -> FloatArray:
        """Working seconds from 1992 up to each instant ``t`` (epoch seconds; NaN stays NaN)."""
        t = np.asarray(t, dtype=np.float64)
        self._check(t)
        safe = np.where(np.isnan(t), self._range[0], t)
        i = np.searchsorted(self.starts, safe, side="right") - 1
        j = np.maximum(i, 0)
        inside = np.clip(safe - self.starts[j], 0.0, self.ends[j] - self.starts[j])
        out = np.where(i >= 0, self.before[j] + inside, 0.0)
        return np.where(np.isnan(t), np.nan, out)

    def add(self, t: npt.ArrayLike, seconds: npt.ArrayLike) -> FloatArray:
        """The instants ``seconds`` of working time after each ``t`` (epoch seconds; NaN in
        either gives NaN). A limit of 0 (or less) gives ``t`` itself."""
        t = np.asarray(t, dtype=np.float64)
        s = np.broadcast_to(np.asarray(seconds, dtype=np.float64), t.shape)
        target = self.clock(t) + s
        safe = np.where(np.isnan(target), 0.0, target)
        k = np.minimum(np.searchsorted(self.after, safe, side="left"), len(self.after) - 1)
        out = self.starts[k] + (safe - self.before[k])
        out = np.where(s > 0, out, t)
        out = np.where(np.isnan(target), np.nan, out)
        self._check(out)
        return out

    def between(self, a: npt.ArrayLike, b: npt.ArrayLike) -> FloatArray:
        """Working seconds from ``a`` to ``b`` (negative when ``b`` is earlier)."""
        return self.clock(b) - self.clock(a)

    def add_one(self, t: dt.datetime, seconds: float) -> dt.datetime:
        """:meth:`add` for one aware datetime; the answer is in Beijing time."""
        out = float(self.add(np.array([t.timestamp()]), np.array([seconds]))[0])
        return dt.datetime.fromtimestamp(out, CHINA_TZ)


@functools.lru_cache(maxsize=4)
def work_calendar(periods: tuple[tuple[int, int], ...] = DEFAULT_HOURS) -> WorkCalendar:
    """The (cached) calendar for a set of working hours, built once per process."""
    return WorkCalendar(periods)
