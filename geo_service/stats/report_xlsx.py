"""The printed report as a workbook (openpyxl): a summary sheet, then one sheet per table of
:class:`geo_service.stats.report.Report`, each with a bold header row frozen above its rows,
column widths fitted to the Chinese headings, rates as percentages and times as dates: the
same values as ``/v1/stats/indicators`` (rates stay fractions under a ``0.0%`` format)."""

from __future__ import annotations

import datetime as dt
import io
from typing import TYPE_CHECKING, Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from geo_service.reports.schemas import CHINA_TZ

if TYPE_CHECKING:
    from geo_service.stats.report import Column, Report, Table

NUMBER_FORMATS = {
    "count": "#,##0",
    "rank": "0",
    "rate": "0.0%",
    "number": "#,##0.0",
    "time": "yyyy-mm-dd hh:mm",
    "late": "0.00",
}
HEADER_FILL = PatternFill("solid", fgColor="EEF1F4")


def _width(text: str) -> float:
    """Columns wide enough for a heading: a CJK character counts two."""
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text) + 2


def _cell_value(value: Any, kind: str) -> Any:
    """Times as naive Beijing time (Excel has no zones), lateness as days (a number)."""
    if value is None:
        return None
    if kind == "time" and isinstance(value, dt.datetime):
        return value.astimezone(CHINA_TZ).replace(tzinfo=None)
    if kind == "late" and isinstance(value, dt.timedelta):
        return round(value.total_seconds() / 86400, 2)
    return value


def _header(ws: Worksheet, titles: list[str]) -> None:
    ws.append(titles)
    for i, title in enumerate(titles, start=1):
        cell = ws.cell(row=1, column=i)
        cell.font = Font(bold=True)
        cell.fill = HEADER_FILL
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
        ws.column_dimensions[get_column_letter(i)].width = max(8.0, min(_width(title), 40.0))
    ws.freeze_panes = "A2"


def _sheet(ws: Worksheet, table: Table) -> None:
    columns: list[Column] = list(table.columns)
    titles = [c.title + ("(天)" if c.kind == "late" else "") for c in columns]
    _header(ws, titles)
    widths = [_width(t) for t in titles]
    for row in table.rows:
        ws.append([_cell_value(row.get(c.key), c.kind) for c in columns])
        for i, c in enumerate(columns):
            if c.kind == "text":
                widths[i] = max(widths[i], _width(str(row.get(c.key) or "")))
    for i, c in enumerate(columns, start=1):
        letter = get_column_letter(i)
        if c.kind == "time":
            widths[i - 1] = max(widths[i - 1], 18)
        ws.column_dimensions[letter].width = max(8.0, min(widths[i - 1], 48.0))
        fmt = NUMBER_FORMATS.get(c.kind)
        if fmt is not None:
            for (cell,) in ws.iter_rows(min_row=2, min_col=i, max_col=i):
                cell.number_format = fmt
    if table.rows:
        ws.auto_filter.ref = f"A1:{get_column_letter(len(columns))}{len(table.rows) + 1}"


def _summary(ws: Worksheet, report: Report) -> None:
    from geo_service.stats.report import FIGURE_COLUMNS

    _header(ws, ["指标", "数值"])
    p = report.period
    ws.append(["报告", report.title])
    ws.append(["统计周期", report.period_zh])
    ws.append(["起始日期", p.start.replace(tzinfo=None)])
    ws.append(["结束日期(不含)", p.end.replace(tzinfo=None)])
    ws.append(["数据截至(北京时间)", p.as_of.astimezone(CHINA_TZ).replace(tzinfo=None)])
    ws.append(["统计范围", report.area_name + (f"（{report.area}）" if report.area else "")])
    for r in range(4, 7):
        ws.cell(row=r, column=2).number_format = "yyyy-mm-dd hh:mm"
    for c in FIGURE_COLUMNS:
        ws.append([c.title, getattr(report.summary, c.key)])
        fmt = NUMBER_FORMATS.get(c.kind)
        if fmt is not None:
            ws.cell(row=ws.max_row, column=2).number_format = fmt
    ws.column_dimensions["A"].width = 26
    ws.column_dimensions["B"].width = 34


def render_xlsx(report: Report) -> bytes:
    """The workbook's bytes: 汇总, then every table of the report (sheet names as its
    ``sheet``, at most 31 characters as Excel allows)."""
    wb = Workbook()
    ws = wb.active
    assert ws is not None  # a new workbook has its first sheet
    ws.title = "汇总"
    _summary(ws, report)
    for table in report.sheets:
        _sheet(wb.create_sheet(table.sheet[:31]), table)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
