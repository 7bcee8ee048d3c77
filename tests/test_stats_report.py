"""The printed reports on the September history of ``test_stats_indicators`` (its fixtures,
imported): grid A has 8 cases (3 closed of 4 due, 2 of them on time, 1 reworked, 1 open past
its deadline, 1 supervised), grid B 5 cases all closed on time; as of Oct 10 noon.

The PDF's text (``pdftotext``) holds those figures and the Chinese headings; the XLSX has one
sheet per table with the numbers ``/v1/stats/indicators`` answers; the HTML stands alone; the
route answers HTML, PDF and XLSX to the roles that may read them and names a bad parameter."""

from __future__ import annotations

import datetime as dt
import io
import re
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from typer.testing import CliRunner

from geo_service.api.ratelimit import route_class
from geo_service.cli import app as cli_app
from geo_service.stats.indicators import IndicatorQuery, Period, indicators
from geo_service.stats.report import (
    MEDIA_TYPES,
    Report,
    build_report,
    count_bands,
    late_zh,
    period_title,
    render,
)
from tests import test_stats_indicators as history
from tests.conftest import auth
from tests.test_stats_indicators import AS_OF, RANK_FROM_5, SEPTEMBER

world = history.world  # the September history and its keys (module fixtures, shared)
api = history.api

PARAMS = {"period": "month", "date": "2025-09-15", "as_of": "2025-10-10T12:00:00+08:00"}


@pytest.fixture(scope="module")
def report(world: dict[str, Any]) -> Report:
    """September's report of the whole coverage, ranking from 5 cases (so both grids rank)."""
    return build_report(world["engine"], "month", SEPTEMBER, as_of=AS_OF, settings=RANK_FROM_5)


@pytest.fixture(scope="module")
def pdf_text(report: Report, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = tmp_path_factory.mktemp("report") / "report.pdf"
    path.write_bytes(render(report, "pdf"))
    assert path.read_bytes().startswith(b"%PDF-")
    out = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True, text=True
    )
    yield out.stdout


def _line(text: str, needle: str) -> str:
    """The first line of the text holding ``needle`` (a table row, with -layout)."""
    return next(line for line in text.splitlines() if needle in line)


def _rows_of(text: str, first: str) -> list[str]:
    """The lines (table rows, with -layout) whose first cell is ``first``."""
    return [line for line in text.splitlines() if line.split()[:1] == [first]]


# ---------------------------------------------------------------- the PDF


def test_the_pdf_holds_the_title_and_the_chinese_headings(pdf_text: str) -> None:
    flat = "".join(pdf_text.split())
    assert "秀洲区网格化社会治理月报" in flat
    assert "统计周期：2025年9月（2025-09-01至2025-09-30）" in flat
    assert "数据截至：2025-10-1012:00" in flat
    for heading in ("一、总体情况", "二、趋势", "三、热点分布", "四、考核指标", "五、综合排名",
                    "各镇(街道)考核指标", "各村(社区)考核指标", "各网格考核指标",
                    "各处置单位考核指标", "超期未结案件清单", "督办案件清单",
                    "结案率", "按期结案率", "返工率", "综合得分", "等级"):  # fmt: skip
        assert heading in flat, heading


def test_the_pdf_holds_the_figures_known_by_construction(
    pdf_text: str, world: dict[str, Any]
) -> None:
    flat = "".join(pdf_text.split())
    # 13 cases in September, 12 accepted, 9 due (A: 3 closed + 1 overdue, B: 5 closed),
    # 8 closed, 7 on time: 88.9 % and 77.8 %; 1 overdue, 1 supervised
    assert "本期共上报案件13件，立案12件，应结案9件，已结案8件" in flat
    assert "结案率88.9%，按期结案率77.8%；超期未结案1件，督办1件" in flat
    a = _line(pdf_text, world["a"]).split()
    # grid A: rank 2, 8 reported, 7 accepted, 3 closed, 4 due, 2 on time, 1 overdue,
    # 1 rework, 1 supervised, 75 % closed, 50 % on time, 25 % rework, score 70, grade C
    assert a[0] == "2" and a[1] == world["a"]
    assert a[3:11] == ["8", "7", "3", "4", "2", "1", "1", "1"]
    assert a[11:14] == ["75.0%", "50.0%", "25.0%"]
    assert a[-2:] == ["70.0", "C"]
    b = _line(pdf_text, world["b"]).split()
    assert b[0] == "1" and b[3:11] == ["5", "5", "5", "5", "5", "0", "0", "0"]
    assert b[11:14] == ["100.0%", "100.0%", "0.0%"] and b[-2:] == ["100.0", "A"]


def test_the_pdf_lists_the_overdue_and_supervised_cases(
    pdf_text: str, world: dict[str, Any]
) -> None:
    ids = world["ids"]
    lists = pdf_text.split("六、")[1]
    (overdue,) = _rows_of(lists.split("七、")[0], str(ids["overdue"]))
    # accepted Mon Sep 29 09:05, due Tue 09:05: at Oct 10 12:00 it is 10 days 2 hours late
    assert "环境卫生" in overdue and "2025-09-29 09:00" in overdue
    assert "2025-09-30 09:05" in overdue and "10天2小时" in overdue
    (supervised,) = _rows_of(lists.split("七、")[1], str(ids["handled_late"]))
    assert "2025-09-30 14:00" in supervised  # supervised then
    # due Tue Sep 30 11:30, handled Oct 9 09:00: 8 days 21.5 hours late
    assert "8天21小时" in supervised
    assert not _rows_of(lists, str(ids["on_time"]))  # neither overdue nor supervised


def test_no_personal_data_or_free_text_is_printed(report: Report) -> None:
    html = render(report, "html").decode()
    assert "测试案件" not in html  # descriptions (free text a reporter wrote) stay out


# ---------------------------------------------------------------- the HTML


def test_the_html_stands_alone_in_chinese(report: Report) -> None:
    html = render(report, "html").decode()
    assert '<html lang="zh-CN">' in html
    assert not re.search(r"https?://", html)  # nothing fetched from another host
    assert "<script" not in html and "<link" not in html
    assert html.count("<svg") == 4  # three charts and the map
    assert "Noto Sans CJK SC" in html


# ---------------------------------------------------------------- the XLSX


def test_the_xlsx_has_one_sheet_per_table_with_the_api_numbers(
    api: TestClient, world: dict[str, Any]
) -> None:
    h = auth(world["keys"]["operator"])
    r = api.get("/v1/stats/report", params={**PARAMS, "format": "xlsx"}, headers=h)
    assert r.status_code == 200, r.text
    wb = load_workbook(io.BytesIO(r.content))
    assert wb.sheetnames[:5] == ["汇总", "镇(街道)", "村(社区)", "网格", "单位"]
    assert wb.sheetnames[-3:] == ["趋势", "超期未结案件", "督办案件"]
    for level, sheet in (("town", "镇(街道)"), ("community", "村(社区)"), ("grid", "网格")):
        ws = wb[sheet]
        assert ws.freeze_panes == "A2"
        header = [c.value for c in ws[1]]
        assert header[:3] == ["排名", "代码", "名称"] and "结案率" in header
        rows = {row[1]: dict(zip(header, row, strict=True))
                for row in ws.iter_rows(min_row=2, values_only=True)}  # fmt: skip
        got = api.get("/v1/stats/indicators", params={**PARAMS, "level": level}, headers=h)
        items = got.json()["items"]
        assert len(items) == len(rows)
        for item in items:
            row = rows[item["code"]]
            assert row["上报数"] == item["reported"] and row["结案数"] == item["closed"]
            assert row["应结案数"] == item["due"] and row["按期结案数"] == item["closed_on_time"]
            assert row["结案率"] == item["closure_rate"]
            assert row["按期结案率"] == item["on_time_rate"]
            assert row["综合得分"] == item["score"] and row["等级"] == item["grade"]
            assert row["排名"] == item["rank"]
    grids = wb["网格"]
    rate_col = [c.value for c in grids[1]].index("结案率") + 1
    assert grids.cell(row=2, column=rate_col).number_format == "0.0%"
    assert grids[1][0].font.b
    overdue = wb["超期未结案件"]
    line = [c.value for c in overdue[2]]
    assert line[0] == str(world["ids"]["overdue"])
    assert line[5] == dt.datetime(2025, 9, 29, 9, 0)  # Beijing time, as Excel has no zones
    assert overdue.cell(row=2, column=6).number_format == "yyyy-mm-dd hh:mm"


# ---------------------------------------------------------------- the route and the CLI


def test_the_route_answers_three_media_types(api: TestClient, world: dict[str, Any]) -> None:
    h = auth(world["keys"]["operator"])
    area = {"area": world["community"]}  # a community: few grids, the map colours counts
    for fmt, magic in (("html", b"<!DOCTYPE html>"), ("pdf", b"%PDF-"), ("xlsx", b"PK")):
        r = api.get("/v1/stats/report", params={**PARAMS, **area, "format": fmt}, headers=h)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == MEDIA_TYPES[fmt]
        assert r.content.startswith(magic)
        name = f"stats-report-month-2025-09-01-{world['community']}.{fmt}"
        assert f'filename="{name}"' in r.headers["content-disposition"]
    assert route_class("GET", "/v1/stats/report") == "costly"


@pytest.mark.parametrize(
    "params, name",
    [
        ({"period": "year"}, "period"),
        ({"format": "doc"}, "format"),
        ({"date": "2025-13-01"}, "date"),
        ({"date": "0001-01-01"}, "date"),
        ({"as_of": "9999-12-31T00:00:00"}, "as_of"),
        ({"as_of": "soon"}, "as_of"),
        ({"area": "33x"}, "area"),
        ({"area": "999999999"}, "area"),
    ],
)
def test_bad_parameters_are_4xx_naming_them(
    api: TestClient, world: dict[str, Any], params: dict[str, str], name: str
) -> None:
    r = api.get("/v1/stats/report", params={**PARAMS, **params},
                headers=auth(world["keys"]["operator"]))  # fmt: skip
    assert r.status_code == 422, r.text
    assert name in r.json()["message"]


def test_who_may_print(api: TestClient, world: dict[str, Any]) -> None:
    assert api.get("/v1/stats/report", params=PARAMS).status_code == 401
    r = api.get("/v1/stats/report", params=PARAMS, headers=auth(world["keys"]["reporter"]))
    assert r.status_code == 403
    worker = auth(world["keys"]["grid_worker"])  # scoped to the community
    r = api.get("/v1/stats/report", params=PARAMS, headers=worker)
    assert r.status_code == 200 and world["community"] in r.headers["content-disposition"]
    other = "330411101001" if not world["community"].endswith("1001") else "330411101002"
    r = api.get("/v1/stats/report", params={**PARAMS, "area": other}, headers=worker)
    assert r.status_code == 403 and "area" in r.json()["message"]


def test_the_cli_writes_the_report(
    world: dict[str, Any], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", world["url"])
    out = tmp_path / "week.html"
    result = CliRunner().invoke(
        cli_app,
        ["stats", "report", "--period", "week", "--date", "2025-09-30", "--as-of",
         "2025-10-10T12:00", "--area", world["community"], "--format", "html", "-o", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")
    assert "周报" in html and "2025年第40周（9月29日至10月5日）" in html
    bad = CliRunner().invoke(
        cli_app,
        ["stats", "report", "--period", "year", "--date", "2025-09-30", "-o", str(out)],
    )
    assert bad.exit_code == 2 and "period" in bad.output


# ---------------------------------------------------------------- the parts


def test_period_titles_and_lateness() -> None:
    as_of = dt.datetime(2026, 12, 1, 12, 0)
    assert period_title(Period.of("quarter", dt.date(2026, 8, 3), as_of)) == "2026年第3季度"
    assert period_title(Period.of("month", dt.date(2026, 11, 30), as_of)) == "2026年11月"
    assert (period_title(Period.of("week", dt.date(2026, 11, 25), as_of))
            == "2026年第48周（11月23日至11月29日）")  # fmt: skip
    assert period_title(Period.of("day", dt.date(2026, 1, 5), as_of)) == "2026年1月5日"
    assert late_zh(dt.timedelta(days=2, hours=3, minutes=5)) == "2天3小时"
    assert late_zh(dt.timedelta(hours=5, minutes=20)) == "5小时20分"
    assert late_zh(dt.timedelta(minutes=40)) == "40分"


def test_the_report_shares_the_figures_api(report: Report, world: dict[str, Any]) -> None:
    q = IndicatorQuery(report.period, "area", "grid")
    table = indicators(world["engine"], q, RANK_FROM_5)
    grids = next(t for t in report.tables if t.sheet == "网格")
    assert grids.rows == table.rows()
    assert report.summary == table.total


def test_count_bands_cut_the_busy_grids_in_thirds() -> None:
    assert count_bands([0, 0]) == []
    assert count_bands([0, 1, 1, 1]) == [(1, 1)]
    assert count_bands([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]) == [(1, 3), (4, 6), (7, 9)]
    assert count_bands([1, 1, 1, 1, 9]) == [(1, 1), (2, 9)]
