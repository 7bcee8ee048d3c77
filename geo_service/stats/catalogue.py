"""The category catalogue: when a case may be accepted (立案条件), how long each step may take
(处置时限 and the others), when it counts as closed (结案条件), who supervises and who handles.

One entry per category of :mod:`geo_service.reports.taxonomy` (its code, names, first handling
level and routing rules stay there; the time limits live here and nowhere else). Each entry
has a default urgency and two sets of limits, one per urgency:

* ``normal``: in **working time** (:mod:`geo_service.stats.calendar`): working hours
  (工作时) or working days (工作日, one day = the configured working hours, 7.5 h by default);
* ``urgent``: in **calendar time** (hours round the clock): fire, floods and the like do not
  wait for Monday.

The steps and where each limit is counted from:

==========  ========================================  ==============================
step        limit                                     counted from
==========  ========================================  ==============================
accept      立案 (核实): the report is accepted       the report (``reported_at``)
dispatch    派遣: the case reaches its unit           acceptance (``accepted_at``)
handle      处置: the unit finishes                   acceptance (``accepted_at``)
check       核查: the centre checks the result        the handling's completion
==========  ========================================  ==============================

A case's deadlines are fixed when it is accepted (its urgency too: the category's default),
restarted when it is reassigned (another unit or category), and stored on the case (``urgency``,
``dispatch_due_at``, ``handle_due_at``; ``due_at`` follows ``handle_due_at``), so "overdue" is
a comparison. Before acceptance ``due_at`` is provisional: the handling limit from the report.
Sub-categories are not modelled: reports carry no sub-category field to select them by.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal, get_args

import numpy as np
import numpy.typing as npt
import pandas as pd

from geo_service.db.schema import URGENCIES, Urgency
from geo_service.reports.schemas import CHINA_TZ
from geo_service.reports.taxonomy import CATEGORIES, CATEGORY_BY_CODE, UNIT_TYPES, Category
from geo_service.settings import StatsSettings
from geo_service.stats.calendar import FloatArray, WorkCalendar, work_calendar

Step = Literal["accept", "dispatch", "handle", "check"]
STEPS: Final[tuple[Step, ...]] = get_args(Step)
Unit = Literal["minute", "hour", "workday"]
_UNIT_ZH: Final = {"minute": "分钟", "hour": "小时", "workday": "个工作日"}


@dataclass(frozen=True)
class Limit:
    """A time limit: ``amount`` of ``unit``, in working time (``working``) or calendar time.

    Working days exist only in working time; a working hour (工作时) is 60 working minutes.
    """

    amount: float
    unit: Unit
    working: bool = True

    def __post_init__(self) -> None:
        if self.amount <= 0:
            raise ValueError(f"a time limit must be positive, not {self.amount}")
        if self.unit == "workday" and not self.working:
            raise ValueError("working days are a working-time limit")

    def seconds(self, calendar: WorkCalendar) -> float:
        """The limit in (working or calendar) seconds under ``calendar``'s working hours."""
        per = {"minute": 60.0, "hour": 3600.0, "workday": calendar.day_seconds}[self.unit]
        return self.amount * per

    def label_zh(self) -> str:
        """How a printed report says it: ``2个工作日``, ``4工作时``, ``2小时``, ``30分钟``."""
        amount = f"{self.amount:g}"
        if self.working and self.unit == "hour":
            return f"{amount}工作时"
        if self.working and self.unit == "minute":
            return f"{amount}工作分钟"
        return f"{amount}{_UNIT_ZH[self.unit]}"

    def label_en(self) -> str:
        """The same in English: ``2 working days``, ``4 working hours``, ``2 hours``."""
        return _label_en(self)


def _label_en(limit: Limit) -> str:
    amount = f"{limit.amount:g}"
    plural = "" if limit.amount == 1 else "s"
    if limit.unit == "workday":
        return f"{amount} working day{plural}"
    kind = "working " if limit.working else ""
    return f"{amount} {kind}{limit.unit}{plural}"


def working(amount: float, unit: Unit) -> Limit:
    """A limit in working time."""
    return Limit(amount, unit, True)


def calendar_hours(amount: float) -> Limit:
    """A limit in calendar hours (urgent cases)."""
    return Limit(amount, "hour", False)


@dataclass(frozen=True)
class TimeLimits:
    """The four step limits of one urgency."""

    accept: Limit
    dispatch: Limit
    handle: Limit
    check: Limit

    def of(self, step: Step) -> Limit:
        """The limit of ``step``."""
        limit: Limit = getattr(self, step)
        return limit


# the steps around handling are the same for every category; handling itself differs
NORMAL_ACCEPT: Final = working(1, "hour")
NORMAL_DISPATCH: Final = working(30, "minute")
NORMAL_CHECK: Final = working(4, "hour")
URGENT_ACCEPT: Final = Limit(15, "minute", False)
URGENT_DISPATCH: Final = Limit(10, "minute", False)
URGENT_CHECK: Final = calendar_hours(1)


def _limits(normal_handle: Limit, urgent_handle: Limit) -> tuple[TimeLimits, TimeLimits]:
    return (
        TimeLimits(NORMAL_ACCEPT, NORMAL_DISPATCH, normal_handle, NORMAL_CHECK),
        TimeLimits(URGENT_ACCEPT, URGENT_DISPATCH, urgent_handle, URGENT_CHECK),
    )


ACCEPT_ALWAYS: Final = (
    "位于本辖区网格内，经核实属实，有明确位置和现场照片或录音，且不属于已立案问题的重复上报"
)
CLOSE_ALWAYS: Final = "责任单位处置完毕，指挥中心核查属实，已反馈报告人并完成满意度评价"


@dataclass(frozen=True)
class Entry:
    """The catalogue entry of one category."""

    category: Category
    accept_condition: str  # 立案条件
    close_condition: str  # 结案条件
    supervisor: str  # 监督 (who watches the case and checks the result)
    default_urgency: Urgency
    normal: TimeLimits
    urgent: TimeLimits

    @property
    def code(self) -> str:
        """The category's code."""
        return self.category.code

    def limits(self, urgency: Urgency | str | None = None) -> TimeLimits:
        """The limits for ``urgency`` (the category's default when None)."""
        u = urgency or self.default_urgency
        if u not in URGENCIES:
            raise ValueError(f"unknown urgency {u!r}: use one of {', '.join(URGENCIES)}")
        return self.urgent if u == "urgent" else self.normal

    def handlers(self) -> dict[str, str]:
        """Who handles it at each level (unit type names from the routing rules; the
        territorial unit where no rule names one)."""
        return {level: UNIT_TYPES[t] for level, t in self.category.rules.items()}


def _entry(
    code: str,
    accept: str,
    close: str,
    normal_handle: Limit,
    urgent_handle: Limit,
    *,
    urgency: Urgency = "normal",
    supervisor: str = "网格员巡查核查，社会治理综合指挥中心督办",
) -> Entry:
    normal, urgent = _limits(normal_handle, urgent_handle)
    return Entry(
        CATEGORY_BY_CODE[code],
        f"{ACCEPT_ALWAYS}；{accept}",
        f"{close}；{CLOSE_ALWAYS}",
        supervisor,
        urgency,
        normal,
        urgent,
    )


ENTRIES: Final[tuple[Entry, ...]] = (
    _entry("safety_hazard", "存在可能造成人员伤害或财产损失的安全隐患",
           "隐患已消除或已设置警示、围挡并移交专业单位", working(1, "workday"),
           calendar_hours(2)),
    _entry("illegal_construction", "未取得规划许可的在建或新建建(构)筑物",
           "已责令停工并依法拆除或补办手续", working(5, "workday"), calendar_hours(24),
           supervisor="网格员巡查核查，综合行政执法部门监督"),
    _entry("river_pollution", "河道、水体或环境存在可见污染、异味或违法排放",
           "污染源已查明并停止排放，水体或现场已清理", working(3, "workday"),
           calendar_hours(12), supervisor="河长制巡河员核查，生态环境部门监督"),
    _entry("road_occupation", "占用道路、人行道经营或流动摊贩影响通行",
           "占道物品已清除，现场恢复通行", working(4, "hour"), calendar_hours(1)),
    _entry("facility_damage", "道路、井盖、路灯、护栏等公共设施缺失或损坏",
           "设施已修复或更换，缺失井盖等危险已先行围挡", working(3, "workday"),
           calendar_hours(4)),
    _entry("neighbour_dispute", "邻里、家庭或物业纠纷，当事人请求调解",
           "已调解并达成协议，或已引导当事人通过法律途径解决", working(5, "workday"),
           calendar_hours(4), supervisor="网格员回访核查，司法所监督"),
    _entry("fire_risk", "火情、消防通道堵塞、秸秆焚烧或森林火险",
           "火情已扑灭或隐患已消除，消防通道畅通", working(1, "workday"), calendar_hours(2),
           urgency="urgent", supervisor="网格员现场核查，消防救援部门监督"),
    _entry("theft", "盗窃线索或治安问题，报告人提供时间地点",
           "已由公安机关受理立案并反馈处理情况", working(3, "workday"), calendar_hours(2),
           supervisor="网格员回访核查，公安派出所监督"),
    _entry("sanitation", "垃圾堆积、暴露垃圾、乱扔乱倒等环境卫生问题",
           "垃圾已清运，现场干净整洁", working(1, "workday"), calendar_hours(4)),
    _entry("housing_safety", "房屋开裂、倾斜、危旧房屋等安全问题",
           "已完成鉴定并采取加固、撤离或限制使用措施", working(3, "workday"),
           calendar_hours(6), supervisor="网格员现场核查，住房和城乡建设部门监督"),
    _entry("flood_risk", "积水、内涝、排水不畅或防汛设施损坏",
           "积水已排除，排水设施恢复正常", working(1, "workday"), calendar_hours(2),
           urgency="urgent", supervisor="网格员现场核查，水利部门监督"),
    _entry("other", "不属于以上类别但属于网格化服务管理事项", "问题已解决或已转交主管部门受理",
           working(5, "workday"), calendar_hours(24)),
)  # fmt: skip
CATALOGUE: Final[dict[str, Entry]] = {e.code: e for e in ENTRIES}
assert set(CATALOGUE) == {c.code for c in CATEGORIES}, "every category needs an entry"


def entry(category: str) -> Entry:
    """The catalogue entry of ``category`` (ValueError naming the known ones)."""
    try:
        return CATALOGUE[category]
    except KeyError:
        raise ValueError(
            f"unknown category {category!r}: use one of {', '.join(sorted(CATALOGUE))}"
        ) from None


@functools.lru_cache(maxsize=1)
def _default_calendar() -> WorkCalendar:
    return work_calendar(StatsSettings().working_periods())


def current_calendar() -> WorkCalendar:
    """The working-time calendar of this process's settings (``GEO_STATS_WORKING_HOURS``)."""
    return _default_calendar()


# --------------------------------------------------------------------------- deadlines


def deadline(
    category: str,
    step: Step,
    start: dt.datetime,
    urgency: Urgency | str | None = None,
    calendar: WorkCalendar | None = None,
) -> dt.datetime:
    """When ``step`` of a case of ``category`` counted from ``start`` is due (in ``start``'s
    time zone; Beijing time for a naive ``start``)."""
    cal = calendar or current_calendar()
    limit = entry(category).limits(urgency).of(step)
    zone = start.tzinfo or CHINA_TZ
    if start.tzinfo is None:
        start = start.replace(tzinfo=CHINA_TZ)
    if not limit.working:
        return (start + dt.timedelta(seconds=limit.seconds(cal))).astimezone(zone)
    return cal.add_one(start, limit.seconds(cal)).astimezone(zone)


def deadlines(
    categories: Sequence[str] | npt.NDArray[np.object_],
    step: Step,
    start: npt.ArrayLike,
    urgencies: Sequence[str | None] | npt.NDArray[np.object_] | None = None,
    calendar: WorkCalendar | None = None,
    fraction: npt.ArrayLike = 1.0,
) -> FloatArray:
    """:func:`deadline` for arrays: epoch seconds in and out (NaN start → NaN). With
    ``fraction``, the instant that share of each limit has run (the synthetic year draws
    handling times so)."""
    cal = calendar or current_calendar()
    cat_index, names = pd.factorize(np.asarray(categories, dtype=object))
    entries = [entry(str(n)) for n in names]  # raises naming an unknown category
    default = np.array([URGENCIES.index(e.default_urgency) for e in entries], dtype=np.int64)
    if urgencies is None:
        urgent = default[cat_index]
    else:
        given = pd.Series(list(urgencies), dtype=object)
        bad = given.notna() & ~given.isin(URGENCIES)
        if bad.any():
            raise ValueError(
                f"unknown urgency {given[bad].iloc[0]!r}: use one of {', '.join(URGENCIES)}"
            )
        urgent = np.where(given.isna(), default[cat_index], (given == "urgent").to_numpy())
    table = [[e.limits(u).of(step) for u in URGENCIES] for e in entries]
    seconds = np.array([[lim.seconds(cal) for lim in row] for row in table])
    in_working = np.array([[lim.working for lim in row] for row in table], dtype=bool)
    s = seconds[cat_index, urgent.astype(np.int64)] * np.asarray(fraction, dtype=np.float64)
    w = in_working[cat_index, urgent.astype(np.int64)]
    t = np.asarray(start, dtype=np.float64)
    return np.where(w, cal.add(t, s), t + s)


def default_urgency(category: str) -> Urgency:
    """The urgency a case of ``category`` is accepted with."""
    return entry(category).default_urgency


def on_accept(category: str, accepted_at: dt.datetime) -> dict[str, object]:
    """The case columns acceptance sets: ``urgency``, ``dispatch_due_at``, ``handle_due_at``
    and ``due_at`` (the handling deadline)."""
    urgency = default_urgency(category)
    handle = deadline(category, "handle", accepted_at, urgency)
    return {
        "urgency": urgency,
        "dispatch_due_at": deadline(category, "dispatch", accepted_at, urgency),
        "handle_due_at": handle,
        "due_at": handle,
    }


def on_reassign(
    category: str, at: dt.datetime, reported_at: dt.datetime, accepted: bool
) -> dict[str, object]:
    """The columns a reassignment at ``at`` sets: an accepted case's clocks restart there
    under ``category``'s limits (the unit now answering gets its full time; the wrong
    dispatch counts against the centre's accurate-dispatch rate), a case not yet accepted
    gets the provisional ``due_at`` of ``category``."""
    if not accepted:
        return {"due_at": provisional_due(category, reported_at)}
    return on_accept(category, at)


def provisional_due(category: str, reported_at: dt.datetime) -> dt.datetime:
    """``due_at`` of a case not yet accepted: the handling limit counted from the report."""
    return deadline(category, "handle", reported_at, default_urgency(category))


@dataclass(frozen=True)
class HistoryDeadlines:
    """The deadline columns of past cases (epoch seconds, NaN where none), as acceptance and
    overdue escalations would have set them; ``overdue_escalation`` tells which escalations
    came after the handling deadline (the others were escalations by hand)."""

    urgency: npt.NDArray[np.object_]
    dispatch_due_at: FloatArray
    handle_due_at: FloatArray
    due_at: FloatArray
    overdue_escalation: npt.NDArray[np.bool_]


def history_deadlines(
    categories: Sequence[str] | npt.NDArray[np.object_],
    reported: FloatArray,
    accepted: FloatArray,
    escalated: FloatArray,
    calendar: WorkCalendar | None = None,
) -> HistoryDeadlines:
    """Deadlines of past cases from their step times (epoch seconds, NaN: step not taken):
    :func:`on_accept`'s for accepted ones, :func:`provisional_due` for the others, and after
    an overdue escalation ``due_at`` restarts there, as ``escalate_overdue`` sets it."""
    cats = np.asarray(categories, dtype=object)
    was_accepted = ~np.isnan(accepted)
    defaults = np.array([default_urgency(c) for c in cats.tolist()], dtype=object)
    urgency = np.where(was_accepted, defaults, np.array(None, dtype=object))
    dispatch = deadlines(cats, "dispatch", accepted, calendar=calendar)
    handle = deadlines(cats, "handle", accepted, calendar=calendar)
    first = np.where(was_accepted, handle, deadlines(cats, "handle", reported, calendar=calendar))
    overdue = ~np.isnan(escalated) & (escalated >= first)
    again = deadlines(cats, "handle", np.where(overdue, escalated, np.nan), calendar=calendar)
    return HistoryDeadlines(urgency, dispatch, handle, np.where(overdue, again, first), overdue)
