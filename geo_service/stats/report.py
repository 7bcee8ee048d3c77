"""The printed reports (日报 / 周报 / 月报 / 季度报告) a command centre hands out, in Chinese.

:func:`build_report` gathers one period's figures for the whole coverage or one area: the
totals, a table per town, community and grid and per unit (every figure of
:mod:`geo_service.stats.indicators`, the one definition, with its score, grade and rank), the
ranking, trend charts, the period's hot-spot map (Gi* on the grids,
:func:`geo_service.analytics.hotspots.hotspots_areas`) and the lists of the cases counted as
overdue and supervised. :func:`render` prints it as standalone HTML (inline CSS and SVG, no
script, no link to another host), PDF (WeasyPrint, Noto Sans CJK SC) or XLSX (openpyxl, one
sheet per table). No personal data: no reporter, description or photo, no worker's name.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Final, Literal, get_args

import numpy as np
from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy import Engine

from geo_service.analytics import areas as area_data
from geo_service.analytics.filters import make_filter
from geo_service.analytics.hotspots import CLASS_NAMES, hotspots_areas, why_not_zh
from geo_service.boundaries.codes import CODE_LENGTH
from geo_service.db.schema import AreaLevel
from geo_service.errors import Forbidden, InvalidInput
from geo_service.reports.schemas import CHINA_TZ
from geo_service.reports.taxonomy import CATEGORY_BY_CODE, STATUS_NAMES
from geo_service.settings import StatsSettings
from geo_service.stats.indicators import (
    GRADES,
    Figures,
    IndicatorQuery,
    Period,
    Step,
    bad_parameter,
    case_ids,
    indicators,
    trend,
)
from geo_service.stats.report_svg import Series, Shape, area_map, bar_chart, hbar_chart, line_chart
from geo_service.store import stats as store

ReportPeriod = Literal["day", "week", "month", "quarter"]
REPORT_PERIODS: Final[tuple[ReportPeriod, ...]] = get_args(ReportPeriod)
Format = Literal["html", "pdf", "xlsx"]
FORMATS: Final[tuple[Format, ...]] = get_args(Format)
MEDIA_TYPES: Final[dict[str, str]] = {
    "html": "text/html; charset=utf-8",
    "pdf": "application/pdf",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
KIND_ZH: Final = {"day": "日报", "week": "周报", "month": "月报", "quarter": "季度报告"}
LEVEL_ZH: Final = {"district": "区县", "town": "镇(街道)", "community": "村(社区)", "grid": "网格"}
URGENCY_ZH: Final = {"normal": "一般", "urgent": "紧急"}
GRADE_FILL: Final = {"A": "#2e7d32", "B": "#1565c0", "C": "#f9a825", "D": "#c62828", "E": "#c62828"}
_HOTSPOT_COLOURS: Final = {  # Esri's Gi_Bin palette
    "hot_99": "#d62f27",
    "hot_95": "#ed7551",
    "hot_90": "#fab984",
    "not_significant": "#eeeeee",
    "cold_90": "#c0ccbe",
    "cold_95": "#849eba",
    "cold_99": "#4575b5",
}
HOTSPOT_CLASSES: Final = tuple(  # (class, colour, label)
    (c, _HOTSPOT_COLOURS[c], name) for c, name in CLASS_NAMES.items()
)
PRINT_MAX_ROWS: Final = 300
"""A printed table longer than this shows its best and worst ranked rows (the XLSX has all)."""
PRINT_EDGE_ROWS: Final = 30
PRINT_MAX_CASES: Final = 500
"""A printed case list longer than this shows the longest overdue first (the XLSX has all)."""
RANKING_ROWS: Final = 10
FIRST_DAY: Final = dt.date(1990, 1, 1)
LAST_DAY: Final = dt.date(2200, 12, 31)
"""The days a report may be asked for (beyond them dates overflow, and no case exists)."""
SCORE_CHART_ROWS: Final = 30


@dataclass(frozen=True)
class Column:
    """A column of a table: the field, its Chinese heading and how its value prints
    (``text``, ``count``, ``rate``, ``number`` (one decimal), ``grade``, ``rank``, ``time``,
    ``late``)."""

    key: str
    title: str
    kind: str = "count"


FIGURE_COLUMNS: Final = (
    Column("reported", "上报数"),
    Column("accepted", "立案数"),
    Column("rejected", "不予立案数"),
    Column("closed", "结案数"),
    Column("due", "应结案数"),
    Column("closed_on_time", "按期结案数"),
    Column("overdue_open", "超期未结案数"),
    Column("rework", "返工数"),
    Column("supervised", "督办数"),
    Column("closure_rate", "结案率", "rate"),
    Column("on_time_rate", "按期结案率", "rate"),
    Column("rework_rate", "返工率", "rate"),
    Column("on_time_dispatch_rate", "按时派遣率", "rate"),
    Column("accurate_dispatch_rate", "准确派遣率", "rate"),
    Column("median_minutes_to_dispatch", "派遣用时中位数(分钟)", "number"),
    Column("median_hours_to_close", "结案用时中位数(小时)", "number"),
)
ROW_COLUMNS: Final = (
    Column("rank", "排名", "rank"),
    Column("code", "代码", "text"),
    Column("name", "名称", "text"),
    *FIGURE_COLUMNS,
    Column("score", "综合得分", "number"),
    Column("grade", "等级", "grade"),
)
UNIT_COLUMNS: Final = (*ROW_COLUMNS[:3], Column("level_zh", "层级", "text"), *ROW_COLUMNS[3:])
PRINT_SKIP: Final = frozenset({"rejected", "on_time_dispatch_rate", "accurate_dispatch_rate"})
"""Columns the printed tables leave out for width (the XLSX keeps them)."""
_BY_KEY: Final = {c.key: c for c in ROW_COLUMNS}


def _pick(*keys: str) -> tuple[Column, ...]:
    """The columns of ``keys``, as the full table labels them (one label per figure)."""
    return tuple(_BY_KEY[k] for k in keys)


RANKING_COLUMNS: Final = _pick(
    "rank", "name", "reported", "closure_rate", "on_time_rate", "rework_rate", "score", "grade"
)
CASE_COLUMNS: Final = (
    Column("id", "案件编号", "text"),
    Column("category", "问题类别", "text"),
    Column("urgency", "紧急程度", "text"),
    Column("grid", "所在网格", "text"),
    Column("unit", "处置单位", "text"),
    Column("reported_at", "上报时间", "time"),
    Column("deadline", "处置时限", "time"),
    Column("status", "截至时状态", "text"),
    Column("late", "超期时长", "late"),
)
SUPERVISED_COLUMNS: Final = (*CASE_COLUMNS[:6], Column("supervised_at", "督办时间", "time"),
                             *CASE_COLUMNS[6:])  # fmt: skip
TREND_COLUMNS: Final = (
    Column("step", "时段", "text"),
    *_pick(
        "reported", "accepted", "closed", "due", "closed_on_time", "overdue_open",
        "closure_rate", "on_time_rate", "median_hours_to_close",
    ),
)


@dataclass
class Table:
    """One table of the report: its sheet name, heading, columns and rows (plain dicts,
    rates as fractions, times aware); ``printed`` the rows the HTML and PDF show (None: all),
    ``note`` what the print leaves out."""

    sheet: str
    title: str
    columns: Sequence[Column]
    rows: list[dict[str, Any]]
    printed: list[dict[str, Any]] | None = None
    note: str | None = None

    @property
    def print_rows(self) -> list[dict[str, Any]]:
        """The rows the HTML and PDF print."""
        return self.rows if self.printed is None else self.printed

    @property
    def print_columns(self) -> list[Column]:
        """The columns the HTML and PDF print."""
        return [c for c in self.columns if c.key not in PRINT_SKIP]


@dataclass
class Report:
    """Everything one printed report holds (see the module docstring)."""

    period: Period
    area: str | None
    area_name: str
    title: str
    period_zh: str
    summary: Figures
    tables: list[Table]
    ranking: list[Table]
    trend: Table
    charts: list[str]
    hotspot_map: str
    map_note: str
    overdue: Table
    supervised: Table
    settings: StatsSettings
    generated_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(CHINA_TZ))

    @property
    def sheets(self) -> list[Table]:
        """Every table in print order, one sheet each in the XLSX."""
        return [*self.tables, *self.ranking, self.trend, self.overdue, self.supervised]


# --------------------------------------------------------------------------- building


def period_title(p: Period) -> str:
    """The period as the title names it: 2025年9月3日, 2025年第36周（9月1日至9月7日）,
    2025年9月, 2025年第3季度."""
    d = p.start.date()
    last = p.end.date() - dt.timedelta(days=1)
    if p.kind == "week":
        year, week, _ = d.isocalendar()
        return f"{year}年第{week}周（{d.month}月{d.day}日至{last.month}月{last.day}日）"
    if p.kind == "day":
        return f"{d.year}年{d.month}月{d.day}日"
    if p.kind == "month":
        return f"{d.year}年{d.month}月"
    return f"{d.year}年第{(d.month - 1) // 3 + 1}季度"


def report_period(kind: str, day: dt.date, as_of: dt.datetime | None = None) -> Period:
    """The period of a report (day, week, month or quarter; 422 naming ``period`` else)."""
    if kind not in REPORT_PERIODS:
        raise bad_parameter(
            "period", f"period must be one of {', '.join(REPORT_PERIODS)}, not {kind!r}"
        )
    if not FIRST_DAY <= day <= LAST_DAY:
        raise bad_parameter("date", f"date must be between {FIRST_DAY} and {LAST_DAY}, not {day}")
    if as_of is not None and not FIRST_DAY <= as_of.date() <= LAST_DAY:
        raise bad_parameter(
            "as_of", f"as_of must be between {FIRST_DAY} and {LAST_DAY}, not {as_of.date()}"
        )
    return Period.of(kind, day, as_of)


def scoped_area(role: str, scope: str | None, area: str | None) -> str | None:
    """The area a caller's report covers: as asked, but a grid worker's is its own scope (by
    default) or an area inside it (403 naming ``area`` for another)."""
    if role != "grid_worker" or scope is None:
        return area
    if area is None:
        return scope
    if not area.startswith(scope):
        raise Forbidden(f"area: a grid worker's report covers {scope} only, not {area!r}")
    return area


def _trend_window(p: Period) -> tuple[Period, Step]:
    """The span the trend charts draw and their step: a day's report the 14 days up to it,
    a week or a month by day, a quarter by week."""
    if p.kind == "day":
        return Period("day", p.end - dt.timedelta(days=14), p.end, p.as_of), "day"
    return p, ("week" if p.kind == "quarter" else "day")


def _step_label(start: dt.datetime, step: str) -> str:
    d = start.date()
    return f"{d.month}月" if step == "month" else f"{d.month}/{d.day}"


def _area_name(engine: Engine, area: str | None, day: dt.date) -> str:
    with engine.connect() as conn:
        if area is None:
            districts = area_data.areas(conn, "district", day)
            names = districts["name"].tolist()
            return str(names[0]) if len(names) == 1 else "全域"
        found = store.area_names(conn, [area])
    if area not in found:
        raise bad_parameter("area", f"area: no area has the code {area!r}")
    return found[area][0]


def _level_zh(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "level_zh": LEVEL_ZH.get(row.get("level") or "", row.get("level"))}


def _printed(
    rows: list[dict[str, Any]], what: str
) -> tuple[list[dict[str, Any]] | None, str | None]:
    """The rows a print shows: those with cases, and of a long table the best and worst
    ranked."""
    busy = [r for r in rows if r["reported"]]
    left_out = len(rows) - len(busy)
    note = f"本期无案件的{left_out}个{what}未列出，见XLSX。" if left_out else None
    if len(busy) <= PRINT_MAX_ROWS:
        return (busy if left_out else None), note
    ranked = [r for r in busy if r["rank"] is not None]
    if len(ranked) <= 2 * PRINT_EDGE_ROWS:
        return (
            ranked,
            f"共{len(busy)}个{what}有案件，此处列出参与排名的{len(ranked)}个，全部见XLSX。",
        )
    return ranked[:PRINT_EDGE_ROWS] + ranked[-PRINT_EDGE_ROWS:], (
        f"共{len(busy)}个{what}有案件，此处列出排名前{PRINT_EDGE_ROWS}位和后{PRINT_EDGE_ROWS}位，"
        "全部见XLSX。"
    )


def _late(deadline: dt.datetime | None, until: dt.datetime | None) -> dt.timedelta | None:
    if deadline is None or until is None or until <= deadline:
        return None
    return until - deadline


def _case_table(
    engine: Engine, q: IndicatorQuery, which: Literal["overdue", "supervised"]
) -> Table:
    ids = case_ids(engine, q, which)
    as_of = q.period.as_of
    with engine.connect() as conn:
        raw = store.case_rows(conn, ids, as_of)
    rows = []
    for r in raw:
        open_ = r.status in ("accepted", "dispatched", "handling")
        rows.append(
            {
                "id": str(r.id),
                "category": CATEGORY_BY_CODE[r.category].name
                if r.category in CATEGORY_BY_CODE else r.category,
                "urgency": URGENCY_ZH.get(r.urgency or "", "—"),
                "grid": f"{r.grid_name or ''} {r.grid_code or '覆盖范围外'}".strip(),
                "unit": r.unit_name or "—",
                "reported_at": r.reported_at.astimezone(CHINA_TZ),
                "deadline": r.deadline.astimezone(CHINA_TZ) if r.deadline else None,
                "supervised_at": r.supervised_at.astimezone(CHINA_TZ)
                if r.supervised_at else None,
                "status": STATUS_NAMES.get(r.status, r.status),
                "late": _late(r.deadline, as_of if open_ else r.handled_at),
            }
        )  # fmt: skip
    columns: Sequence[Column]
    if which == "overdue":
        rows.sort(key=lambda r: -(r["late"] or dt.timedelta(0)).total_seconds())
        title, columns = "超期未结案件清单", CASE_COLUMNS
    else:
        title, columns = "督办案件清单", SUPERVISED_COLUMNS
    table = Table(title[:-2], title, columns, rows)
    if len(rows) > PRINT_MAX_CASES:
        table.printed = rows[:PRINT_MAX_CASES]
        table.note = f"共{len(rows)}件，此处列出前{PRINT_MAX_CASES}件，全部见XLSX。"
    return table


def _outline_level(area: str | None) -> AreaLevel:
    """The areas outlined and named on the map: towns, or the level below the area asked."""
    if area is None or len(area) < CODE_LENGTH["town"]:
        return "town"
    if len(area) == CODE_LENGTH["town"]:
        return "community"
    return "community" if len(area) == CODE_LENGTH["community"] else "grid"


def _hotspot_note(exc: InvalidInput) -> str:
    return f"未作热点分析（{why_not_zh(exc, '网格')}），按各网格上报数分级着色。"


def _hotspot_map(engine: Engine, p: Period, area: str | None) -> tuple[str, str]:
    """The map of the period's Gi* hot spots on the grids (counts by band where Gi* cannot
    run: fewer than 30 grids, or no variation), towns (or the areas below the one asked)
    outlined and named on top; and the note printed with it."""
    day = p.as_of.date()
    until = min(p.end, p.as_of)
    title = "本期案件热点分布（网格，Getis-Ord Gi*）"
    note = (
        "热点分析：以网格上报数为值、Queen邻接为权重的Getis-Ord Gi*统计，经FDR校正；"
        "颜色表示置信水平。"
    )
    level = _outline_level(area)
    with engine.connect() as conn:
        frame = None
        try:
            if p.start < until:
                f = make_filter(since=p.start, until=until, area=area)
                frame = hotspots_areas(conn, f, "grid", as_of=day)
        except InvalidInput as exc:
            note = _hotspot_note(exc)
        grids = area_data.areas(conn, "grid", day)
        outlines = area_data.areas(conn, level, day)
    if area is not None:
        grids = grids[grids["code"].str.startswith(area)]
        outlines = outlines[outlines["code"].str.startswith(area)]
    if frame is not None:
        colour = {c: col for c, col, _ in HOTSPOT_CLASSES}
        cls = dict(zip(frame["code"], frame["class"], strict=True))
        shapes = [
            Shape(g, colour[cls.get(c, "not_significant")])
            for c, g in zip(grids["code"], grids.geometry, strict=True)
        ]
        present = set(cls.values())
        legend = [(col, label) for c, col, label in HOTSPOT_CLASSES
                  if c in present or c == "not_significant"]  # fmt: skip
    else:
        shapes, legend = _count_shapes(engine, p, grids)
        title = "本期案件分布（网格上报数）"
    labels = [] if level == "grid" else list(zip(outlines.geometry, outlines["name"], strict=True))
    return area_map(shapes, list(outlines.geometry), legend, title, labels=labels), note


def count_bands(values: Sequence[int]) -> list[tuple[int, int]]:
    """Up to three bands (lowest, highest count) of the positive ``values``, cut at their
    thirds: e.g. [(1, 2), (3, 5), (6, 14)]; none without a positive value."""
    positive = np.array([v for v in values if v > 0])
    if not len(positive):
        return []
    top = int(positive.max())
    cuts = sorted({int(np.quantile(positive, q)) for q in (1 / 3, 2 / 3)} - {top})
    bands, lo = [], 1
    for cut in [*cuts, top]:
        if cut >= lo:
            bands.append((lo, cut))
            lo = cut + 1
    return bands


def _count_shapes(
    engine: Engine, p: Period, grids: Any
) -> tuple[list[Shape], list[tuple[str, str]]]:
    """Grids coloured by their case count: none, then up to three bands (:func:`count_bands`)."""
    q = IndicatorQuery(p, "area", "grid")
    counts = {r["code"]: r["reported"] for r in indicators(engine, q).rows()}
    values = [int(counts.get(c, 0)) for c in grids["code"]]
    bands = count_bands(values)
    palette = ("#fde0c5", "#f59e72", "#d62f27")[-len(bands) :] if bands else ()
    shapes = []
    for g, v in zip(grids.geometry, values, strict=True):
        band = next((i for i, (_, hi) in enumerate(bands) if 0 < v <= hi), None)
        shapes.append(Shape(g, "#eeeeee" if band is None else palette[band]))
    legend = [("#eeeeee", "无案件")]
    legend += [(c, f"{lo} 件" if lo == hi else f"{lo}-{hi} 件")
               for c, (lo, hi) in zip(palette, bands, strict=True)]  # fmt: skip
    return shapes, legend


def _charts(series: Any, labels: list[str], tables: list[Table], step_zh: str) -> list[str]:
    total = series.total
    charts = [
        bar_chart(
            labels,
            [
                Series("上报数", [s["reported"] for s in total], "#90a4ae"),
                Series("立案数", [s["accepted"] for s in total], "#1565c0"),
                Series("结案数", [s["closed"] for s in total], "#2e7d32"),
            ],
            f"案件量趋势（按{step_zh}）",
        ),
        line_chart(
            labels,
            [
                Series("结案率", [s["closure_rate"] for s in total], "#2e7d32"),
                Series("按期结案率", [s["on_time_rate"] for s in total], "#1565c0"),
                Series("返工率", [s["rework_rate"] for s in total], "#c62828"),
            ],
            f"结案率、按期结案率与返工率趋势（按{step_zh}）",
        ),
    ]
    for table in tables:  # the scores of the highest level with few enough rows
        scored = [r for r in table.rows if r["reported"]]
        scored.sort(key=lambda r: -1.0 if r["score"] is None else -r["score"])
        if 0 < len(scored) <= SCORE_CHART_ROWS:
            charts.append(
                hbar_chart(
                    [r["name"] or r["code"] for r in scored],
                    [r["score"] for r in scored],
                    [GRADE_FILL.get(r["grade"] or "", "#90a4ae") for r in scored],
                    table.title.replace("考核指标", "综合得分"),
                )
            )
            break
    return charts


def build_report(
    engine: Engine,
    kind: str,
    day: dt.date,
    *,
    as_of: dt.datetime | None = None,
    area: str | None = None,
    settings: StatsSettings | None = None,
) -> Report:
    """The report of the ``kind`` period holding ``day`` as of ``as_of`` (default now), for
    the cases in ``area`` (default: everywhere); 422 naming the parameter when one is bad."""
    p = report_period(kind, day, as_of)
    settings = settings or StatsSettings()
    base = IndicatorQuery(p, "area", None, area=area)  # checks the area code's shape
    name = _area_name(engine, area, p.as_of.date())
    tables = []
    levels: tuple[tuple[AreaLevel, str], ...] = (
        ("town", "镇(街道)"), ("community", "村(社区)"), ("grid", "网格"),
    )  # fmt: skip
    for level, what in levels:
        if area is not None and CODE_LENGTH[level] <= len(area):
            continue
        table = indicators(engine, IndicatorQuery(p, "area", level, area=area), settings)
        rows = table.rows()
        printed, note = _printed(rows, what)
        tables.append(Table(LEVEL_ZH[level], f"各{what}考核指标", ROW_COLUMNS, rows, printed, note))
    unit_rows = [_level_zh(r) for r in indicators(
        engine, IndicatorQuery(p, "unit", None, area=area), settings).rows()]  # fmt: skip
    printed, note = _printed(unit_rows, "单位")
    tables.append(Table("单位", "各处置单位考核指标", UNIT_COLUMNS, unit_rows, printed, note))
    ranking = []
    for t in tables:
        ranked = [r for r in t.rows if r["rank"] is not None]
        if not ranked:
            continue
        shown = ranked if len(ranked) <= 2 * RANKING_ROWS else (
            ranked[:RANKING_ROWS] + ranked[-RANKING_ROWS:])  # fmt: skip
        ranking.append(
            Table(f"{t.sheet}排名", f"{t.title[:-4]}综合排名", RANKING_COLUMNS, shown, None,
                  None if shown is ranked else
                  f"共{len(ranked)}个参与排名，列出前{RANKING_ROWS}位和后{RANKING_ROWS}位。")
        )  # fmt: skip
    window, step = _trend_window(p)
    series = trend(engine, IndicatorQuery(window, "area", None, area=area), step, rows=False)
    labels = [_step_label(a, step) for a, _ in series.steps]
    step_zh = {"day": "日", "week": "周", "month": "月"}[step]
    trend_rows = [
        {"step": f"{a.date():%Y-%m-%d}" + (f" 至 {(b - dt.timedelta(days=1)).date():%m-%d}"
                                           if step != "day" else ""), **s}
        for (a, b), s in zip(series.steps, series.total, strict=True)
    ]  # fmt: skip
    trend_table = Table("趋势", f"逐{step_zh}趋势", TREND_COLUMNS, trend_rows)
    hotspot, map_note = _hotspot_map(engine, p, area)
    return Report(
        period=p,
        area=area,
        area_name=name,
        title=f"{name}网格化社会治理{KIND_ZH[p.kind]}",
        period_zh=period_title(p),
        summary=indicators(engine, base, settings).total,
        tables=tables,
        ranking=ranking,
        trend=trend_table,
        charts=_charts(series, labels, tables, step_zh),
        hotspot_map=hotspot,
        map_note=map_note,
        overdue=_case_table(engine, base, "overdue"),
        supervised=_case_table(engine, base, "supervised"),
        settings=settings,
    )


# --------------------------------------------------------------------------- printing


def fmt_value(value: Any, kind: str) -> str:
    """A value as the HTML and PDF print it: rates as 87.5%, numbers with one decimal,
    times as 2025-09-29 09:05, lateness as 2天3小时, nothing as —."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if kind == "rate":
        return f"{value * 100:.1f}%"
    if kind == "number":
        return f"{value:,.1f}"
    if kind == "count":
        return f"{value:,}"
    if kind == "time":
        return f"{value.astimezone(CHINA_TZ):%Y-%m-%d %H:%M}"
    if kind == "late":
        return late_zh(value)
    return str(value)


def late_zh(delta: dt.timedelta) -> str:
    """A lateness in days, hours and minutes: 2天3小时, 5小时20分, 40分."""
    minutes = int(delta.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}天{hours}小时"
    return f"{hours}小时{mins}分" if hours else f"{mins}分"


def summary_items(report: Report) -> list[tuple[str, str]]:
    """The summary's (heading, value) pairs, in print order."""
    s = report.summary
    return [
        ("上报数", fmt_value(s.reported, "count")),
        ("立案数", fmt_value(s.accepted, "count")),
        ("不予立案数", fmt_value(s.rejected, "count")),
        ("应结案数", fmt_value(s.due, "count")),
        ("结案数", fmt_value(s.closed, "count")),
        ("按期结案数", fmt_value(s.closed_on_time, "count")),
        ("超期未结案数", fmt_value(s.overdue_open, "count")),
        ("督办数", fmt_value(s.supervised, "count")),
        ("结案率", fmt_value(s.closure_rate, "rate")),
        ("按期结案率", fmt_value(s.on_time_rate, "rate")),
        ("返工率", fmt_value(s.rework_rate, "rate")),
        ("准确派遣率", fmt_value(s.accurate_dispatch_rate, "rate")),
        ("派遣用时中位数", fmt_value(s.median_minutes_to_dispatch, "number") + " 分钟"),
        ("结案用时中位数", fmt_value(s.median_hours_to_close, "number") + " 小时"),
    ]


@cache
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("geo_service.stats", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["fmt"] = fmt_value
    return env


def render_html(report: Report, *, for_print: bool = False) -> str:
    """The report as one standalone HTML page (lang zh-CN, inline CSS and SVG)."""
    p = report.period
    return (
        _environment()
        .get_template("report.html")
        .render(
            r=report,
            for_print=for_print,
            summary=summary_items(report),
            grades=GRADES,
            grade_fill=GRADE_FILL,
            span=f"{p.start.date():%Y-%m-%d} 至 {(p.end - dt.timedelta(days=1)).date():%Y-%m-%d}",
            as_of=f"{p.as_of.astimezone(CHINA_TZ):%Y-%m-%d %H:%M}",
            generated=f"{report.generated_at:%Y-%m-%d %H:%M}",
        )
    )


def render_pdf(report: Report) -> bytes:
    """The report as a PDF (A4 landscape; WeasyPrint with the Noto Sans CJK SC font)."""
    from weasyprint import HTML  # heavy: imported when a PDF is asked for

    def no_fetch(url: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        raise ValueError(f"the printed report fetches nothing: {url}")

    pdf: bytes = HTML(string=render_html(report, for_print=True), url_fetcher=no_fetch).write_pdf()
    return pdf


def check_format(fmt: str) -> Format:
    """``fmt`` when it is html, pdf or xlsx (422 naming ``format`` else)."""
    if fmt not in FORMATS:
        raise bad_parameter("format", f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    return fmt


def render(report: Report, fmt: str) -> bytes:
    """The report in ``fmt`` (html, pdf or xlsx; 422 naming ``format`` else)."""
    check_format(fmt)
    if fmt == "html":
        return render_html(report).encode()
    if fmt == "pdf":
        return render_pdf(report)
    from geo_service.stats.report_xlsx import render_xlsx

    return render_xlsx(report)


def filename(report: Report, fmt: str) -> str:
    """An ASCII file name for the download: stats-report-month-2025-09-01-330411.pdf."""
    where = report.area or "all"
    return f"stats-report-{report.period.kind}-{report.period.start.date()}-{where}.{fmt}"
