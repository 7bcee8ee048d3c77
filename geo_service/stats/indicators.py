"""The command centre's figures, one definition each, for the API, the pages and the printed
reports (国家数字化城市管理考核 as the centres print it).

**Cohort and clock.** A period (day, ISO week from Monday, month, quarter, year) is a range
of Beijing-time days ``[start, end)``. Its cohort is every case whose ``reported_at`` falls in
it (and at or before ``as_of``), of the chosen categories and channels. ``as_of`` (default
now) is the moment the figures are taken at: only events at or before it count, so a
month's report printed on the 1st reads the same when printed again later.

**Counts** over the cohort, per row (area, unit or post):

=====================  =====================================================================
``reported``           cases in the cohort
``accepted``           立案: accepted at or before ``as_of``
``rejected``           not accepted (rejected) at or before ``as_of``
``closed``             结案: reached ``evaluated`` at or before ``as_of``
``overdue_open``       超期: accepted, not closed or rejected, handling not done (no
                       ``complete`` since the last ``rework``) and strictly past the handling
                       deadline in force at ``as_of``
``due``                应结案: ``closed`` + ``overdue_open``
``closed_on_time``     按期结案: closed, and its last ``complete`` at or before the handling
                       deadline in force then
``rework``             返工: sent back for rework at least once
``supervised``         督办: put under supervision at least once
``dispatched``         派遣: dispatched at least once
``dispatched_on_time`` first dispatch at or before the dispatch deadline in force then
``redispatched``       returned by its unit or reassigned after its first dispatch
=====================  =====================================================================

**Rates** (None when the denominator is 0):
``closure_rate = closed / due`` (结案率), ``on_time_rate = closed_on_time / due`` (按期结案率),
``rework_rate = rework / due`` (返工率), ``on_time_dispatch_rate = dispatched_on_time /
dispatched``, ``accurate_dispatch_rate = (dispatched − redispatched) / dispatched``
(准确派遣率). **Medians** (exact, interpolated as SQL's ``percentile_cont(0.5)``):
``median_minutes_to_dispatch`` (report → first dispatch, over the dispatched cases),
``median_hours_to_close`` (report → evaluation, over the closed cases).

**Score and grade** (0-100, weights from ``GEO_STATS_*``; rates count as percentages):

* unit and area: ``volume_score × 10 % + closure_rate × 30 % + on_time_rate × 30 %
  + (1 − rework_rate) × 30 %`` (floored at 0), where ``volume_score`` bands ``reported``:
  ≤ 50 → 100, ≤ 100 → 90, ≤ 200 → 75, ≤ 500 → 60, ≤ 1000 → 40, more → 0. The bands are per
  30 days; for other periods the limits scale by the period's days / 30;
* grid worker post (one per grid, its grid team): ``valid_report_rate × 40 % + (1 −
  missed_report_rate) × 20 % + on_time_verify_rate × 20 % + on_time_check_rate × 20 %`` with
  ``valid_report_rate`` = the grid app's cases accepted / those accepted or rejected,
  ``missed_report_rate`` = cases residents reported first (WeChat, 12345 hotline) /
  ``reported``, ``on_time_verify_rate`` = cases accepted within the accept limit (立案/核实,
  from the report) / ``accepted``, ``on_time_check_rate`` = cases verified within the check
  limit (核查, from the last ``complete``) / verified cases;
* dispatcher post (the key of the first dispatch; "system" for imports and sweeps), over
  the cases it dispatched:
  ``volume_score(dispatched) × 20 % + on_time_dispatch_rate × 40 % + accurate_dispatch_rate
  × 40 %``.

A score is None when one of its rates is. Grades: A ≥ 90, B ≥ 75, C ≥ 60, D ≥ 40, else E
(green, blue, yellow, red as printed). **Rank**: by score, highest first, ties sharing a rank
(1, 2, 2, 4), among the rows with a score and at least ``GEO_STATS_RANK_MIN_VOLUME`` cases
(``reported``; a dispatcher's ``dispatched``); the others get None, so a unit with three cases
is not ranked first or last on them.

**Where the numbers come from**: the per-case facts (:mod:`geo_service.stats.facts`) the
database keeps by trigger; ``geo_service.store.stats.reference_figures`` computes the same
counts and medians by one plain SQL aggregate over reports and events, and the tests and the
benchmark hold the two equal.
"""

from __future__ import annotations

import calendar as _calendar
import datetime as dt
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, get_args

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Engine

from geo_service.analytics import areas as area_data
from geo_service.boundaries.codes import CODE_LENGTH
from geo_service.db.schema import AREA_LEVELS, CHANNELS, AreaLevel
from geo_service.errors import InvalidInput
from geo_service.reports.schemas import CHINA_TZ
from geo_service.reports.taxonomy import CATEGORY_BY_CODE, UNIT_TYPES
from geo_service.settings import StatsSettings
from geo_service.stats.facts import CATEGORY_CODES, FloatArray, Snapshot, cache_of
from geo_service.store import stats as store
from geo_service.store.tiles import generation_counters

PeriodKind = Literal["day", "week", "month", "quarter", "year"]
PERIODS: Final[tuple[PeriodKind, ...]] = get_args(PeriodKind)
Step = Literal["day", "week", "month"]
STEPS: Final[tuple[Step, ...]] = get_args(Step)
By = Literal["area", "unit", "post"]
BYS: Final[tuple[By, ...]] = get_args(By)
Post = Literal["grid_worker", "dispatcher"]
GRADES: Final = ("A", "B", "C", "D", "E")
GRADE_COLOURS: Final = {"A": "green", "B": "blue", "C": "yellow", "D": "red", "E": "red"}
RESIDENT_CHANNELS: Final = ("wechat", "hotline_12345")
MAX_TREND_POINTS: Final = 200_000
COUNTS: Final = (
    "reported", "accepted", "rejected", "closed", "due", "closed_on_time", "overdue_open",
    "rework", "supervised", "dispatched", "dispatched_on_time", "redispatched",
)  # fmt: skip
RATES: Final = (
    "closure_rate", "on_time_rate", "rework_rate", "on_time_dispatch_rate",
    "accurate_dispatch_rate",
)  # fmt: skip
MEDIANS: Final = ("median_minutes_to_dispatch", "median_hours_to_close")
POST_COUNTS: Final = ("post_reports", "valid_reports", "missed_reports", "verified_on_time",
                      "checked", "checked_on_time")  # fmt: skip
POST_RATES: Final = ("valid_report_rate", "missed_report_rate", "on_time_verify_rate",
                     "on_time_check_rate")  # fmt: skip


# --------------------------------------------------------------------------- periods


def bad_parameter(name: str, message: str) -> InvalidInput:
    """A 422 naming the query parameter ``name`` (in ``details`` as FastAPI names them)."""
    return InvalidInput(message, details=[{"loc": ["query", name], "msg": message}])


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), tzinfo=CHINA_TZ)


def _beijing(t: dt.datetime) -> dt.datetime:
    """An aware time in Beijing time (a naive one is taken as Beijing time)."""
    return t.replace(tzinfo=CHINA_TZ) if t.tzinfo is None else t.astimezone(CHINA_TZ)


def period_days(kind: PeriodKind | str, day: dt.date) -> tuple[dt.date, dt.date]:
    """The first day of the ``kind`` period holding ``day`` and the first day after it."""
    if kind == "day":
        return day, day + dt.timedelta(days=1)
    if kind == "week":
        first = day - dt.timedelta(days=day.weekday())
        return first, first + dt.timedelta(days=7)
    if kind == "month":
        first = day.replace(day=1)
        return first, first + dt.timedelta(days=_calendar.monthrange(day.year, day.month)[1])
    if kind == "quarter":
        month = 3 * ((day.month - 1) // 3) + 1
        first = dt.date(day.year, month, 1)
        last = dt.date(day.year + (month + 3 > 12), (month + 2) % 12 + 1, 1)
        return first, last
    if kind == "year":
        return dt.date(day.year, 1, 1), dt.date(day.year + 1, 1, 1)
    raise bad_parameter("period", f"period must be one of {', '.join(PERIODS)}, not {kind!r}")


@dataclass(frozen=True)
class Period:
    """A period of Beijing-time days ``[start, end)`` and the moment ``as_of`` the figures
    are taken at."""

    kind: PeriodKind
    start: dt.datetime
    end: dt.datetime
    as_of: dt.datetime

    @classmethod
    def of(
        cls, kind: PeriodKind | str, day: dt.date | None = None, as_of: dt.datetime | None = None
    ) -> Period:
        """The ``kind`` period holding ``day`` (today in Beijing by default), as of ``as_of``
        (now by default; naive = Beijing time)."""
        clock = _beijing(as_of) if as_of is not None else dt.datetime.now(CHINA_TZ)
        first, stop = period_days(kind, day or dt.datetime.now(CHINA_TZ).date())
        return cls(kind, _midnight(first), _midnight(stop), clock)  # type: ignore[arg-type]

    @property
    def days(self) -> int:
        """How many days the period has."""
        return (self.end.date() - self.start.date()).days

    def steps(self, step: Step | str) -> list[tuple[dt.datetime, dt.datetime]]:
        """The period cut into day, week (Monday first) or month steps, clipped to it."""
        if step not in STEPS:
            raise bad_parameter("step", f"step must be one of {', '.join(STEPS)}, not {step!r}")
        out = []
        day = self.start.date()
        while day < self.end.date():
            first, stop = period_days(step, day)
            stop = min(stop, self.end.date())
            out.append((_midnight(max(first, self.start.date())), _midnight(stop)))
            day = stop
        return out

    def label_zh(self) -> str:
        """How a printed report names it: 2025年10月, 2025年第4季度, 2025年10月8日 …"""
        d = self.start.date()
        last = self.end.date() - dt.timedelta(days=1)
        return {
            "day": f"{d.year}年{d.month}月{d.day}日",
            "week": f"{d.year}年{d.month}月{d.day}日至{last.month}月{last.day}日",
            "month": f"{d.year}年{d.month}月",
            "quarter": f"{d.year}年第{(d.month - 1) // 3 + 1}季度",
            "year": f"{d.year}年",
        }[self.kind]

    def to_json(self) -> dict[str, str]:
        """``{"start", "end", "as_of"}`` in ISO 8601, Beijing time."""
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "as_of": self.as_of.isoformat(),
        }


# --------------------------------------------------------------------------- query and rows


@dataclass(frozen=True)
class IndicatorQuery:
    """What to compute: the period, how rows are formed (``by`` area of a ``level``, unit
    (optionally of one level) or post) and which cases count (categories, channels, an area
    whose cases alone count)."""

    period: Period
    by: By = "area"
    level: str | None = None
    categories: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    area: str | None = None

    def __post_init__(self) -> None:
        if self.by not in BYS:
            raise bad_parameter("by", f"by must be one of {', '.join(BYS)}, not {self.by!r}")
        if self.level is not None and self.level not in AREA_LEVELS:
            raise bad_parameter(
                "level", f"level must be one of {', '.join(AREA_LEVELS)}, not {self.level!r}"
            )
        for c in self.categories:
            if c not in CATEGORY_BY_CODE:
                raise bad_parameter(
                    "category", f"category must be among {', '.join(CATEGORY_BY_CODE)}, not {c!r}"
                )
        for c in self.channels:
            if c not in CHANNELS:
                raise bad_parameter(
                    "channel", f"channel must be among {', '.join(CHANNELS)}, not {c!r}"
                )
        if self.area is not None and (not self.area.isdigit() or len(self.area) not in
                                      CODE_LENGTH.values()):  # fmt: skip
            raise bad_parameter("area", f"area must be an area code, not {self.area!r}")

    @property
    def area_level(self) -> AreaLevel:
        """The area level rows are formed at (by area; grid by default)."""
        return self.level or "grid"  # type: ignore[return-value]


ROW_FIELDS: Final = (
    "code", "name", "level", *COUNTS, *RATES, *MEDIANS, "volume_score", "score", "grade", "rank",
)  # fmt: skip
"""The fields of a row, in the order the API answers them."""
POST_FIELDS: Final = ("post", *POST_COUNTS, *POST_RATES)
"""The fields post rows add (None where a post's kind has no such figure)."""


@dataclass
class Figures:
    """One row: who (``code``, ``name``, ``level``; ``post`` for posts) and every figure.

    Counts are ints; rates, medians and scores floats or None (nothing to divide by).
    Post rows carry their post's own figures in ``post_figures`` (:data:`POST_FIELDS`)."""

    code: str
    name: str | None
    level: str
    reported: int = 0
    accepted: int = 0
    rejected: int = 0
    closed: int = 0
    due: int = 0
    closed_on_time: int = 0
    overdue_open: int = 0
    rework: int = 0
    supervised: int = 0
    dispatched: int = 0
    dispatched_on_time: int = 0
    redispatched: int = 0
    closure_rate: float | None = None
    on_time_rate: float | None = None
    rework_rate: float | None = None
    on_time_dispatch_rate: float | None = None
    accurate_dispatch_rate: float | None = None
    median_minutes_to_dispatch: float | None = None
    median_hours_to_close: float | None = None
    volume_score: float | None = None
    score: float | None = None
    grade: str | None = None
    rank: int | None = None
    post: str | None = None
    post_figures: dict[str, float | int | None] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Figures:
        """A row as :meth:`IndicatorTable.rows` gives it."""
        own = {k: row[k] for k in ROW_FIELDS}
        post: dict[str, float | int | None] = {k: row[k] for k in POST_FIELDS[1:] if k in row}
        return cls(**own, post=row.get("post"), post_figures=post)

    def to_json(self) -> dict[str, Any]:
        """The row as the API answers it (post figures inline for post rows)."""
        out = {k: getattr(self, k) for k in ROW_FIELDS}
        if self.post is not None:
            out["post"] = self.post
            out.update(self.post_figures)
        return out


@dataclass(frozen=True)
class IndicatorTable:
    """The figures of a query: one list per field (:data:`ROW_FIELDS`, and
    :data:`POST_FIELDS` for posts), rows ranked first by rank, then the others by code;
    and the cohort's totals."""

    query: IndicatorQuery
    columns: dict[str, list[Any]]
    _totals: Callable[[], Figures] = field(repr=False, compare=False)

    @property
    def period(self) -> Period:
        """The period (and ``as_of``) the figures are for."""
        return self.query.period

    @functools.cached_property
    def total(self) -> Figures:
        """The cohort's figures as one row (code ``total``), computed when first asked for."""
        return self._totals()

    def __len__(self) -> int:
        return len(self.columns["code"])

    def rows(self) -> list[dict[str, Any]]:
        """Every row as a dict of its fields."""
        keys = list(self.columns)
        return [
            dict(zip(keys, values, strict=True))
            for values in zip(*self.columns.values(), strict=True)
        ]

    @property
    def items(self) -> list[Figures]:
        """Every row as :class:`Figures`."""
        return [Figures.from_row(r) for r in self.rows()]

    def to_json(self) -> dict[str, Any]:
        """``{"period": {"start", "end", "as_of"}, "items": [...]}``."""
        return {"period": self.period.to_json(), "items": self.rows()}


@dataclass(frozen=True)
class TrendSeries:
    """Figures per step of a period: ``steps`` (start, end), the totals' series and per row
    (code, name, level) its series; a series is one dict of counts, rates and medians per
    step (no scores: a step is too short to grade)."""

    query: IndicatorQuery
    step: Step
    steps: list[tuple[dt.datetime, dt.datetime]]
    total: list[dict[str, Any]]
    items: list[tuple[str, str | None, str, list[dict[str, Any]]]]

    def to_json(self) -> dict[str, Any]:
        """``{"period", "step", "steps": [{"start", "end"}], "total": [...], "items": [{"code",
        "name", "level", "series": [...]}]}``."""
        return {
            "period": self.query.period.to_json(),
            "step": self.step,
            "steps": [{"start": a.isoformat(), "end": b.isoformat()} for a, b in self.steps],
            "total": self.total,
            "items": [
                {"code": c, "name": n, "level": lvl, "series": series}
                for c, n, lvl, series in self.items
            ],
        }


# --------------------------------------------------------------------------- computing


def _epoch(t: dt.datetime) -> float:
    return t.timestamp()


def _counts(g: npt.NDArray[np.int64], cond: npt.NDArray[np.bool_], n: int) -> npt.NDArray[np.int64]:
    return np.bincount(g, weights=cond, minlength=n).astype(np.int64)


def grouped_median(
    g: npt.NDArray[np.int64], v: npt.NDArray[np.float64], n: int, *, presorted: bool = False
) -> npt.NDArray[np.float64]:
    """Per group 0..n-1 the median of ``v`` (the mean of the two middle values for an even
    count, as ``percentile_cont(0.5)``), NaN for an empty group. With ``presorted`` the
    values come in ascending order already: a stable (radix) sort by group keeps it."""
    out = np.full(n, np.nan)
    if len(g) == 0:
        return out
    if presorted:
        key = g.astype(np.int16) if n < 2**15 else g
        order = np.argsort(key, kind="stable")
    else:
        order = np.lexsort((v, g))
    gs, vs = g[order], v[order]
    counts = np.bincount(gs, minlength=n)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    has = counts > 0
    lo = (starts + (counts - 1) // 2)[has]
    hi = (starts + counts // 2)[has]
    out[has] = (vs[lo] + vs[hi]) / 2.0
    return out


def _median_of(
    snap: Snapshot, name: str, rows: npt.NDArray[np.bool_], group: npt.NDArray[np.int64], n: int
) -> npt.NDArray[np.float64]:
    """Per group the median of the duration ``name`` over ``rows`` (all of one length)."""
    order, values = snap.durations(name)
    take = order[rows[order]]
    return grouped_median(group[take], values[take], n, presorted=True)


def _ratio(num: npt.NDArray[np.int64], den: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1), np.nan)


def compute(
    snap: Snapshot, cases: npt.NDArray[np.bool_], group: npt.NDArray[np.int64], n: int,
    as_of: float,
) -> dict[str, npt.NDArray[np.float64] | npt.NDArray[np.int64]]:  # fmt: skip
    """Every count, rate and median per group 0..n-1 over the rows in ``cases`` (``group``
    -1: in no group), as of ``as_of`` (epoch seconds): the formulas of the module docstring."""
    sel = cases & (group >= 0)
    g = group[sel].astype(np.int64)

    def happened(name: str) -> npt.NDArray[np.bool_]:
        return (snap.time(name) <= as_of)[sel]

    closed = happened("closed")
    overdue = snap.overdue_at(as_of)[sel]
    dispatched = happened("dispatched")
    d_at = snap.time("dispatched")[sel]
    out: dict[str, Any] = {
        "reported": np.bincount(g, minlength=n).astype(np.int64),
        "accepted": _counts(g, happened("accepted"), n),
        "rejected": _counts(g, happened("rejected"), n),
        "closed": _counts(g, closed, n),
        "due": _counts(g, closed | overdue, n),
        "closed_on_time": _counts(
            g, closed & (snap.time("handled")[sel] <= snap.time("handled_due")[sel]), n
        ),
        "overdue_open": _counts(g, overdue, n),
        "rework": _counts(g, happened("rework"), n),
        "supervised": _counts(g, happened("supervised_at"), n),
        "dispatched": _counts(g, dispatched, n),
        "dispatched_on_time": _counts(g, dispatched & (d_at <= snap.time("dispatch_due")[sel]), n),
        "redispatched": _counts(g, dispatched & happened("redispatched"), n),
    }
    out["closure_rate"] = _ratio(out["closed"], out["due"])
    out["on_time_rate"] = _ratio(out["closed_on_time"], out["due"])
    out["rework_rate"] = _ratio(out["rework"], out["due"])
    out["on_time_dispatch_rate"] = _ratio(out["dispatched_on_time"], out["dispatched"])
    out["accurate_dispatch_rate"] = _ratio(out["dispatched"] - out["redispatched"],
                                           out["dispatched"])  # fmt: skip
    out["median_minutes_to_dispatch"] = _median_of(
        snap, "minutes_to_dispatch", sel & (snap.time("dispatched") <= as_of), group, n
    )
    out["median_hours_to_close"] = _median_of(
        snap, "hours_to_close", sel & (snap.time("closed") <= as_of), group, n
    )
    return out


def _post_grid(
    snap: Snapshot, cases: npt.NDArray[np.bool_], group: npt.NDArray[np.int64], n: int,
    as_of: float,
) -> dict[str, npt.NDArray[np.float64] | npt.NDArray[np.int64]]:  # fmt: skip
    """The grid worker post's own figures per grid (see the module docstring)."""
    sel = cases & (group >= 0)
    g = group[sel].astype(np.int64)
    channel = snap["channel"][sel]
    app = channel == CHANNELS.index("grid_app")
    residents = np.isin(channel, [CHANNELS.index(c) for c in RESIDENT_CHANNELS])
    accepted = (snap.time("accepted") <= as_of)[sel]
    rejected = (snap.time("rejected") <= as_of)[sel]
    verified = (snap.time("verified") <= as_of)[sel]
    out: dict[str, Any] = {
        "post_reports": _counts(g, app, n),
        "valid_reports": _counts(g, app & accepted, n),
        "missed_reports": _counts(g, residents, n),
        "verified_on_time": _counts(
            g, accepted & (snap.time("accepted")[sel] <= snap.time("accept_due")[sel]), n
        ),
        "checked": _counts(g, verified, n),
        "checked_on_time": _counts(
            g, verified & (snap.time("verified")[sel] <= snap.time("check_due")[sel]), n
        ),
    }
    decided = _counts(g, app & (accepted | rejected), n)
    out["valid_report_rate"] = _ratio(out["valid_reports"], decided)
    out["missed_report_rate"] = _ratio(out["missed_reports"], np.bincount(g, minlength=n))
    out["on_time_verify_rate"] = _ratio(out["verified_on_time"], _counts(g, accepted, n))
    out["on_time_check_rate"] = _ratio(out["checked_on_time"], out["checked"])
    return out


def volume_scores(
    volume: npt.NDArray[np.int64], days: int, settings: StatsSettings
) -> npt.NDArray[np.float64]:
    """The volume score of each count: the band it falls in, limits scaled to ``days``."""
    out = np.zeros(len(volume))
    for limit, score in reversed(settings.bands()):
        out = np.where(volume <= limit * days / 30.0, score, out)
    return out


def grades(scores: npt.NDArray[np.float64], settings: StatsSettings) -> npt.NDArray[np.object_]:
    """A ≥ 90, B ≥ 75, C ≥ 60, D ≥ 40, else E (thresholds from the settings); None for NaN."""
    limits = (settings.grade_a, settings.grade_b, settings.grade_c, settings.grade_d)
    out = np.full(len(scores), None, dtype=object)
    out[~np.isnan(scores)] = GRADES[-1]
    for grade, limit in reversed(list(zip(GRADES, limits, strict=False))):
        out[scores >= limit] = grade
    return out


def grade_of(score: float | None, settings: StatsSettings) -> str | None:
    """:func:`grades` of one score."""
    g = grades(np.array([np.nan if score is None else score]), settings)[0]
    return None if g is None else str(g)


def ranks(scores: npt.NDArray[np.float64], eligible: npt.NDArray[np.bool_]) -> FloatArray:
    """Competition ranks (1, 2, 2, 4) by score, highest first, among the eligible rows with
    a score (NaN for the others)."""
    ok = eligible & ~np.isnan(scores)
    ranked = np.sort(scores[ok])
    above = len(ranked) - np.searchsorted(ranked, scores, side="right")
    return np.where(ok, above + 1.0, np.nan)


Block = dict[str, npt.NDArray[Any]]


def _picked(figures: dict[str, Any], pick: npt.NDArray[np.int64]) -> Block:
    """Per row the figures of group ``pick[i]`` (counts 0 and the others NaN for -1)."""
    out: Block = {}
    for name, values in figures.items():
        got = values[np.maximum(pick, 0)] if len(values) else np.zeros(len(pick))
        if name in COUNTS or name in POST_COUNTS:
            out[name] = np.where(pick >= 0, got, 0).astype(np.int64)
        else:
            out[name] = np.where(pick >= 0, got.astype(np.float64), np.nan)
    return out


def _score_units(block: Block, days: int, settings: StatsSettings) -> None:
    """Volume score, score and grade of unit and area rows."""
    volume = volume_scores(block["reported"], days, settings)
    block["volume_score"] = volume
    block["score"] = (
        settings.weight_volume * volume
        + settings.weight_closure * 100 * block["closure_rate"]
        + settings.weight_on_time * 100 * block["on_time_rate"]
        + settings.weight_rework * 100 * np.maximum(0.0, 1 - block["rework_rate"])
    )


def _score_grid_workers(block: Block, settings: StatsSettings) -> None:
    block["volume_score"] = np.full(len(block["reported"]), np.nan)
    block["score"] = (
        settings.weight_grid_valid * 100 * block["valid_report_rate"]
        + settings.weight_grid_missed * 100 * (1 - block["missed_report_rate"])
        + settings.weight_grid_verify * 100 * block["on_time_verify_rate"]
        + settings.weight_grid_check * 100 * block["on_time_check_rate"]
    )


def _score_dispatchers(block: Block, days: int, settings: StatsSettings) -> None:
    volume = volume_scores(block["dispatched"], days, settings)
    block["volume_score"] = volume
    block["score"] = (
        settings.weight_dispatch_volume * volume
        + settings.weight_dispatch_on_time * 100 * block["on_time_dispatch_rate"]
        + settings.weight_dispatch_accurate * 100 * block["accurate_dispatch_rate"]
    )


def _finish(
    block: Block, labels: tuple[list[str], list[str | None], list[str]],
    volume: npt.NDArray[np.int64], settings: StatsSettings,
) -> dict[str, list[Any]]:  # fmt: skip
    """Grade and rank the rows, order them (ranked first by rank, then by code) and turn
    the arrays into lists of plain values (None for NaN)."""
    block["grade"] = grades(block["score"], settings)
    block["rank"] = ranks(block["score"], volume >= settings.rank_min_volume)
    codes, names, levels = labels
    code_arr = np.array(codes, dtype=object)
    rank = block["rank"]
    order = np.lexsort((code_arr, np.nan_to_num(rank, nan=np.inf)))
    out: dict[str, list[Any]] = {
        "code": code_arr[order].tolist(),
        "name": np.array(names, dtype=object)[order].tolist(),
        "level": np.array(levels, dtype=object)[order].tolist(),
    }
    for name in (*ROW_FIELDS[3:], *POST_FIELDS):
        if name not in block:
            continue
        values = block[name][order]
        if values.dtype == object:
            out[name] = values.tolist()
        elif name in COUNTS or name in POST_COUNTS:
            out[name] = values.astype(np.int64).tolist()
        else:
            floats = values.astype(np.float64)
            is_int = name == "rank"
            out[name] = [
                None if v != v else (int(v) if is_int else v)  # NaN alone is unequal to itself
                for v in floats.tolist()
            ]
    return out


def _cohort(
    snap: Snapshot, q: IndicatorQuery, start: float, stop: float, as_of: float
) -> npt.NDArray[np.bool_]:
    reported = snap.time("reported")
    mask = (reported >= start) & (reported < stop) & (reported <= as_of)
    if q.categories:
        mask &= np.isin(snap["category"], [CATEGORY_CODES.index(c) for c in q.categories])
    if q.channels:
        mask &= np.isin(snap["channel"], [CHANNELS.index(c) for c in q.channels])
    if q.area:
        level = next(lvl for lvl, n in CODE_LENGTH.items() if n == len(q.area))
        keys, codes = snap.level_keys(level)
        hit = np.flatnonzero(codes == q.area)
        mask &= np.isin(keys, hit) if len(hit) else np.zeros(len(mask), dtype=bool)
    return mask


def _in_area(code: str, area: str | None) -> bool:
    return area is None or code.startswith(area) or area.startswith(code)


@dataclass(frozen=True)
class _Grouping:
    """Rows and how cases map to them: per case the row's group (-1: none)."""

    codes: list[str]
    names: list[str | None]
    levels: list[str]
    group: npt.NDArray[np.int64]  # per case: a group position
    pick: npt.NDArray[np.int64]  # per row: its group position (-1: no case can fall in it)
    n_groups: int


_names_cache: dict[int, tuple[Any, dict[str, str]]] = {}


def _names_in_force(conn: Connection, level: str, day: dt.date) -> dict[str, str]:
    """Code → name of the areas of ``level`` in force on ``day`` (cached with the areas)."""
    frame = area_data.areas(conn, level, day)
    hit = _names_cache.get(id(frame))
    if hit is None or hit[0] is not frame:
        hit = (frame, dict(zip(frame["code"].tolist(), frame["name"].tolist(), strict=True)))
        _names_cache[id(frame)] = hit
    return hit[1]


def _area_grouping(conn: Connection, snap: Snapshot, q: IndicatorQuery) -> _Grouping:
    level = q.area_level
    keys, codes = snap.level_keys(level)
    names = dict(_names_in_force(conn, level, q.period.as_of.date()))
    data_codes = codes.tolist()
    missing = [c for c in data_codes if c not in names]
    for code, (name, _) in store.area_names(conn, missing).items():
        names[code] = name
    row_codes = sorted(c for c in {*names, *data_codes} if _in_area(c, q.area))
    where = {c: i for i, c in enumerate(data_codes)}
    pick = np.array([where.get(c, -1) for c in row_codes], dtype=np.int64)
    return _Grouping(
        row_codes,
        [names.get(c) for c in row_codes],
        [level] * len(row_codes),
        keys.astype(np.int64),
        pick,
        len(codes),
    )


_UnitRow = tuple[int, str, str, str, str, str, bool]  # id, code, name, type, level, area, active
_units_cache: dict[str, tuple[int, list[_UnitRow]]] = {}


def _unit_list(conn: Connection) -> list[_UnitRow]:
    """Every unit, read again only when the ``boundaries`` generation (which unit changes
    bump) has moved."""
    key = conn.engine.url.render_as_string(hide_password=True)
    generation = generation_counters(conn)[0]
    hit = _units_cache.get(key)
    if hit is None or hit[0] != generation:
        rows = [
            (r.id, r.code, r.name, r.unit_type, r.level, r.area_code, bool(r.active))
            for r in store.unit_rows(conn)
        ]
        hit = _units_cache[key] = (generation, rows)
    return hit[1]


def _unit_grouping(conn: Connection, snap: Snapshot, q: IndicatorQuery) -> _Grouping:
    unit_id = snap["unit_id"].astype(np.int64)  # the group is the unit id itself
    all_units = _unit_list(conn)
    n = max(int(unit_id.max(initial=-1)), max((u[0] for u in all_units), default=-1)) + 1
    has_cases = np.zeros(n, dtype=bool)
    has_cases[unit_id[unit_id >= 0]] = True
    units = [
        u for u in all_units
        if (q.level is None or u[4] == q.level) and _in_area(u[5], q.area)
        and (u[6] or has_cases[u[0]])
    ]  # fmt: skip
    return _Grouping(
        [u[1] for u in units],
        [u[2] for u in units],
        [u[4] for u in units],
        unit_id,
        np.array([u[0] for u in units], dtype=np.int64),
        n,
    )


def _concat(parts: Sequence[dict[str, list[Any]]]) -> dict[str, list[Any]]:
    keys = list(dict.fromkeys(k for p in parts for k in p))
    out: dict[str, list[Any]] = {k: [] for k in keys}
    for p in parts:
        n = len(p["code"])
        for k in keys:
            out[k] += p.get(k, [None] * n)
    return out


def _posts(
    conn: Connection, snap: Snapshot, q: IndicatorQuery, cases: npt.NDArray[np.bool_],
    as_of: float, settings: StatsSettings,
) -> dict[str, list[Any]]:  # fmt: skip
    """Grid worker rows (one per grid team) and dispatcher rows (one per dispatching key)."""
    grid_q = IndicatorQuery(q.period, "area", "grid", q.categories, q.channels, q.area)
    grids = _area_grouping(conn, snap, grid_q)
    block = _picked(compute(snap, cases, grids.group, grids.n_groups, as_of), grids.pick)
    block.update(_picked(_post_grid(snap, cases, grids.group, grids.n_groups, as_of), grids.pick))
    _score_grid_workers(block, settings)
    block["post"] = np.full(len(grids.codes), "grid_worker", dtype=object)
    teams = {
        u.area_code: (u.code, u.name) for u in store.unit_rows(conn) if u.unit_type == "grid_team"
    }
    labels = (
        [teams[c][0] if c in teams else f"grid_team:{c}" for c in grids.codes],
        [teams[c][1] if c in teams else f"{n or c}{UNIT_TYPES['grid_team']}"
         for c, n in zip(grids.codes, grids.names, strict=True)],
        ["grid"] * len(grids.codes),
    )  # fmt: skip
    workers = _finish(block, labels, block["post_reports"], settings)

    by = snap["dispatched_by"].astype(np.int64)
    dispatched = cases & (snap.time("dispatched") <= as_of)
    keys = np.unique(by[dispatched])
    group = np.where(dispatched, np.searchsorted(keys, by), -1).astype(np.int64)
    block = _picked(compute(snap, cases, group, len(keys), as_of), np.arange(len(keys)))
    _score_dispatchers(block, q.period.days, settings)
    block["post"] = np.full(len(keys), "dispatcher", dtype=object)
    info = {r.id: r for r in store.key_rows(conn, [int(k) for k in keys if k >= 0])}
    labels = (
        [f"key:{info[k].prefix}" if k in info else "system" for k in keys.tolist()],
        [(info[k].label or info[k].prefix) if k in info else "系统 (导入与自动升级)"
         for k in keys.tolist()],
        ["centre"] * len(keys),
    )  # fmt: skip
    dispatchers = _finish(block, labels, block["dispatched"], settings)
    return _concat([workers, dispatchers])


def _total(snap: Snapshot, cases: npt.NDArray[np.bool_], as_of: float) -> Figures:
    one = np.zeros(snap.n, dtype=np.int64)
    block = _picked(compute(snap, cases, one, 1, as_of), np.zeros(1, dtype=np.int64))
    row: dict[str, Any] = {"code": "total", "name": "合计", "level": "total"}
    for name, values in block.items():
        v = values[0]
        row[name] = int(v) if name in COUNTS else (None if np.isnan(v) else float(v))
    return Figures(**row)


@functools.lru_cache(maxsize=1)
def _default_settings() -> StatsSettings:
    return StatsSettings()


def indicators(
    engine: Engine, q: IndicatorQuery, settings: StatsSettings | None = None
) -> IndicatorTable:
    """The figures of ``q``: one row per area of the level, unit or post (areas of the
    boundary version in force on ``as_of``'s day and any other area holding cases, every
    unit, every grid team and every dispatcher seen), scored, graded and ranked, and the
    cohort's totals."""
    settings = settings or _default_settings()
    snap = cache_of(engine).snapshot(engine)
    as_of = _epoch(q.period.as_of)
    cases = _cohort(snap, q, _epoch(q.period.start), _epoch(q.period.end), as_of)
    with engine.connect() as conn:
        if q.by == "post":
            columns = _posts(conn, snap, q, cases, as_of, settings)
        else:
            grouping = (_area_grouping if q.by == "area" else _unit_grouping)(conn, snap, q)
            figures = compute(snap, cases, grouping.group, grouping.n_groups, as_of)
            block = _picked(figures, grouping.pick)
            _score_units(block, q.period.days, settings)
            labels = (grouping.codes, grouping.names, grouping.levels)
            columns = _finish(block, labels, block["reported"], settings)
    return IndicatorTable(q, columns, functools.partial(_total, snap, cases, as_of))


CaseList = Literal["overdue", "supervised"]


def case_ids(engine: Engine, q: IndicatorQuery, which: CaseList) -> list[int]:
    """The report ids of the cohort's cases counted in ``overdue_open`` or ``supervised`` as
    of ``q``'s ``as_of`` (for the printed lists), in id order."""
    snap = cache_of(engine).snapshot(engine)
    as_of = _epoch(q.period.as_of)
    cases = _cohort(snap, q, _epoch(q.period.start), _epoch(q.period.end), as_of)
    if which == "overdue":
        hit = snap.overdue_at(as_of)
    elif which == "supervised":
        hit = snap.time("supervised_at") <= as_of
    else:
        raise bad_parameter("which", f"which must be overdue or supervised, not {which!r}")
    ids: list[int] = snap.report_id[cases & hit].tolist()
    return ids


def _series(block: Block, rows: npt.NDArray[np.int64]) -> list[dict[str, Any]]:
    """One dict of counts, rates and medians per entry of ``rows`` (positions in ``block``)."""
    names = [*COUNTS, *RATES, *MEDIANS]
    cols = []
    for name in names:
        values = block[name][rows]
        if name in COUNTS:
            cols.append(values.astype(np.int64).tolist())
        else:
            cols.append([None if v != v else v for v in values.astype(np.float64).tolist()])
    return [dict(zip(names, vals, strict=True)) for vals in zip(*cols, strict=True)]


def trend(engine: Engine, q: IndicatorQuery, step: Step | str, *, rows: bool = True) -> TrendSeries:
    """The figures of ``q`` per ``step`` of its period (each step's own cohort, all as of
    ``q``'s ``as_of``), for the totals and (unless ``rows`` is False) per row; 422 when rows ×
    steps exceed :data:`MAX_TREND_POINTS` (ask for a coarser step or level)."""
    if q.by == "post":
        raise bad_parameter("by", "by must be area or unit for a trend (posts have no series)")
    steps = q.period.steps(step)
    snap = cache_of(engine).snapshot(engine)
    as_of = _epoch(q.period.as_of)
    bounds = np.array([_epoch(a) for a, _ in steps] + [_epoch(steps[-1][1])])
    cases = _cohort(snap, q, bounds[0], bounds[-1], as_of)
    which = np.searchsorted(bounds, snap.time("reported"), side="right") - 1
    which = np.where(cases, which, -1).astype(np.int64)
    k = len(steps)
    total = _series(_picked(compute(snap, cases, which, k, as_of), np.arange(k)), np.arange(k))
    items: list[tuple[str, str | None, str, list[dict[str, Any]]]] = []
    if rows:
        with engine.connect() as conn:
            grouping = (_area_grouping if q.by == "area" else _unit_grouping)(conn, snap, q)
        if len(grouping.codes) * k > MAX_TREND_POINTS:
            raise bad_parameter(
                "step",
                f"step: {len(grouping.codes)} rows × {k} steps is more than "
                f"{MAX_TREND_POINTS:,} points; ask for a coarser step or level, or an area",
            )
        composite = np.where(
            (grouping.group >= 0) & (which >= 0), grouping.group * k + which, -1
        ).astype(np.int64)
        pick = (grouping.pick[:, None] * k + np.arange(k)[None, :]).ravel()
        pick = np.where(np.repeat(grouping.pick, k) >= 0, pick, -1)
        block = _picked(compute(snap, cases, composite, grouping.n_groups * k, as_of), pick)
        flat = _series(block, np.arange(len(pick)))
        for i, (code, name, level) in enumerate(
            zip(grouping.codes, grouping.names, grouping.levels, strict=True)
        ):
            items.append((code, name, level, flat[i * k : (i + 1) * k]))
    return TrendSeries(q, step, steps, total, items)  # type: ignore[arg-type]
