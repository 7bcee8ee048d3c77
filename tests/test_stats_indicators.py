"""The command centre's figures on a small history whose every figure is known by
construction: September 2025 in two grids of one community, around National Day (Oct 1-8
off, Sunday Sep 28 and Saturday Oct 11 worked), with cases closed on time, closed late, open
past their deadline, open not yet due, rejected, reworked, returned by their unit, handled
late but not yet closed, and closed only after the moment the figures are taken at.

The history goes in through the history import (so the deadlines are the ones acceptance
fixes, in working time); rework and a unit's return are added as events. Every figure is
checked for both grids, their community, their units and the posts, as of two moments, and
against the plain SQL aggregate over reports and events."""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from geo_service.app import create_app
from geo_service.auth import create_key
from geo_service.db.engine import make_engine
from geo_service.locator import Locator
from geo_service.reports.importer import import_history
from geo_service.reports.schemas import CHINA_TZ
from geo_service.routing import RoutingTable
from geo_service.settings import DatabaseSettings, Settings, StatsSettings
from geo_service.stats.indicators import IndicatorQuery, Period, case_ids, indicators, trend
from geo_service.store import stats as store
from tests.conftest import auth
from tests.support import load_demo

SEPTEMBER = dt.date(2025, 9, 15)
AS_OF = dt.datetime(2025, 10, 10, 12, 0, tzinfo=CHINA_TZ)  # Friday noon after the holiday
LATER = dt.datetime(2025, 10, 11, 12, 0, tzinfo=CHINA_TZ)  # Saturday (worked) noon
EARLY = dt.datetime(2025, 10, 1, 12, 0, tzinfo=CHINA_TZ)  # the holiday's first noon
RANK_FROM_5 = StatsSettings(rank_min_volume=5)


def t(month: int, day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2025, month, day, hour, minute, tzinfo=CHINA_TZ)


# each case: (name, grid, channel, category, step times...) — None: step not taken
STEPS = ("accepted_at", "dispatched_at", "handling_at", "handled_at", "verified_at",
         "fed_back_at", "evaluated_at")  # fmt: skip
CASES_A: dict[str, dict[str, Any]] = {
    # accepted Fri 16:10: 7.5 working hours run out on the make-up Sunday at 16:10
    "on_time": dict(channel="grid_app", category="sanitation", reported_at=t(9, 26, 16),
                    steps=(t(9, 26, 16, 10), t(9, 26, 16, 20), t(9, 26, 16, 30), t(9, 28, 10),
                           t(9, 28, 11), t(9, 28, 11, 30), t(9, 28, 12))),
    # accepted Tue Sep 30 15:05: due Thu Oct 9 15:05 (the holiday does not count); done 16:00
    "late": dict(channel="wechat", category="sanitation", reported_at=t(9, 30, 15),
                 steps=(t(9, 30, 15, 5), t(9, 30, 15, 15), t(9, 30, 15, 30), t(10, 9, 16),
                        t(10, 9, 17), t(10, 9, 17, 10), t(10, 9, 17, 20))),
    # accepted Mon 09:05, due Tue 09:05; dispatched late (10:00 > 09:35), returned by its
    # unit and dispatched again; never handled: open past its deadline
    "overdue": dict(channel="grid_app", category="sanitation", reported_at=t(9, 29, 9),
                    steps=(t(9, 29, 9, 5), t(9, 29, 10), t(9, 29, 11), None, None, None, None)),
    # 5 working days from Tue Sep 30 17:00: Tue Oct 14 17:00 (Oct 11 worked): not yet due
    "not_due": dict(channel="grid_app", category="illegal_construction",
                    reported_at=t(9, 30, 16, 50),
                    steps=(t(9, 30, 17), t(9, 30, 17, 10), None, None, None, None, None)),
    "rejected": dict(channel="hotline_12345", category="sanitation", reported_at=t(9, 27, 10),
                     rejected_at=t(9, 27, 10, 30)),
    # done 10:00 on the make-up Sunday, sent back 11:00, done again 14:00: on time, reworked
    "reworked": dict(channel="grid_app", category="sanitation", reported_at=t(9, 28, 9),
                     steps=(t(9, 28, 9, 5), t(9, 28, 9, 10), t(9, 28, 9, 20), t(9, 28, 14),
                            t(9, 28, 15), t(9, 28, 15, 10), t(9, 28, 15, 20))),
    # accepted 90 minutes after the report (over the 1 working hour), due Tue 11:30, handled
    # late on Oct 9 and checked, not fed back yet: its handling is done, so not overdue
    "handled_late": dict(channel="wechat", category="sanitation", reported_at=t(9, 29, 10),
                         steps=(t(9, 29, 11, 30), t(9, 29, 11, 40), t(9, 29, 13, 30),
                                t(10, 9, 9), t(10, 9, 10), None, None),
                         supervised_at=t(9, 30, 14)),
    # handled on time Fri 15:00, checked late on Monday (4 working hours ran out Sunday
    # 10:00, a make-up day), evaluated only after AS_OF
    "closed_after": dict(channel="grid_app", category="sanitation", reported_at=t(9, 26, 10),
                         steps=(t(9, 26, 10, 5), t(9, 26, 10, 20), t(9, 26, 10, 30),
                                t(9, 26, 15), t(9, 29, 9), t(10, 10, 11), t(10, 10, 15))),
    # October: another period
    "october": dict(channel="grid_app", category="sanitation", reported_at=t(10, 9, 10),
                    steps=(t(10, 9, 10, 5), None, None, None, None, None, None)),
}  # fmt: skip
# grid B: five plain cases, Monday to Friday Sep 1-5, each closed the same day
CASES_B = {
    f"plain_{d}": dict(channel="grid_app", category="sanitation", reported_at=t(9, d, 9),
                       steps=(t(9, d, 9, 5), t(9, d, 9, 10), t(9, d, 9, 20), t(9, d, 11),
                              t(9, d, 12), t(9, d, 13, 40), t(9, d, 14)))
    for d in range(1, 6)
}  # fmt: skip
EXTRA_EVENTS = (  # (case, action, at): what the import format has no column for
    ("reworked", "complete", t(9, 28, 10)),
    ("reworked", "rework", t(9, 28, 11)),
    ("overdue", "return", t(9, 29, 10, 30)),
    ("overdue", "dispatch", t(9, 29, 10, 40)),
)


def _frame(cases: dict[str, dict[str, Any]], point: tuple[float, float]) -> pd.DataFrame:
    rows = []
    for name, c in cases.items():
        row: dict[str, Any] = {
            "external_id": name,
            "channel": c["channel"],
            "category": c["category"],
            "description": f"测试案件 {name}",
            "reported_at": c["reported_at"].isoformat(),
            "lon": point[0],
            "lat": point[1],
            "rejected_at": c.get("rejected_at"),
            "supervised_at": c.get("supervised_at"),
            "supervised": c.get("supervised_at") is not None,
        }
        for col, at in zip(STEPS, c.get("steps", (None,) * 7), strict=True):
            row[col] = at.isoformat() if at else None
        row["rating"] = 5 if row["evaluated_at"] else None
        row["rejected_at"] = row["rejected_at"].isoformat() if row["rejected_at"] else None
        row["supervised_at"] = row["supervised_at"].isoformat() if row["supervised_at"] else None
        rows.append(row)
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def world(new_database) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """A database of its own: the demo boundaries and the September history above."""
    url = load_demo(str(new_database("geo_stats")))
    engine = make_engine(url, pool_size=4)
    locator = Locator.from_database(url)
    grids = locator.grids
    community = grids["community_code"].iloc[300]
    a, b = grids.loc[grids["community_code"] == community, "code"].tolist()[:2]

    def inside(code: str) -> tuple[float, float]:
        p = grids.loc[grids["code"] == code].geometry.iloc[0].representative_point()
        return p.x, p.y

    with engine.connect() as conn:
        routing = RoutingTable.load(conn)
    frame = pd.concat([_frame(CASES_A, inside(a)), _frame(CASES_B, inside(b))])
    stats = import_history(engine, frame.reset_index(drop=True), locator, routing, atomic=True)
    assert stats.refused == [] and stats.stored == len(frame)
    with engine.begin() as conn:
        ids = dict(
            conn.execute(text("SELECT substr(idempotency_key, 8), id FROM reports")).all()
        )
        for case, action, at in EXTRA_EVENTS:
            conn.execute(
                text("INSERT INTO report_events (report_id, at, action, actor) "
                     "VALUES (:r, :at, :a, 'test')"),
                {"r": ids[case], "at": at, "a": action},
            )  # fmt: skip
        keys = {r: create_key(conn, r, label=f"stats {r}") for r in ("operator", "reporter")}
        keys["grid_worker"] = create_key(conn, "grid_worker", scope=community)
    yield {"url": url, "engine": engine, "a": a, "b": b, "community": community, "ids": ids,
           "keys": keys}  # fmt: skip
    engine.dispose()


def _query(by: str = "area", level: str | None = "grid", as_of: dt.datetime = AS_OF,
           **kw: Any) -> IndicatorQuery:  # fmt: skip
    return IndicatorQuery(Period.of("month", SEPTEMBER, as_of), by, level, **kw)  # type: ignore[arg-type]


def _rows(world: dict[str, Any], q: IndicatorQuery, settings: StatsSettings = RANK_FROM_5
          ) -> dict[str, dict[str, Any]]:  # fmt: skip
    return {r["code"]: r for r in indicators(world["engine"], q, settings).rows()}


def _minutes(a: dt.datetime, b: dt.datetime) -> float:
    return (b - a).total_seconds() / 60


# ---------------------------------------------------------------- deadlines


def test_acceptance_fixes_deadlines_in_working_time(world: dict[str, Any]) -> None:
    with world["engine"].connect() as conn:
        rows = {
            r.key: r
            for r in conn.execute(text(
                "SELECT substr(idempotency_key, 8) AS key, urgency, dispatch_due_at, "
                "handle_due_at, due_at FROM reports"
            ))
        }  # fmt: skip
    # Friday 16:10 + 7.5 working hours: the make-up Sunday, Sep 28, 16:10
    assert rows["on_time"].handle_due_at == t(9, 28, 16, 10)
    # Tuesday Sep 30 15:05: Oct 1-8 do not count, Thursday Oct 9 15:05
    assert rows["late"].handle_due_at == t(10, 9, 15, 5)
    # 5 working days from Sep 30 17:00, Saturday Oct 11 worked: Tuesday Oct 14 17:00
    assert rows["not_due"].handle_due_at == t(10, 14, 17)
    assert rows["overdue"].dispatch_due_at == t(9, 29, 9, 35)
    assert rows["on_time"].urgency == "normal" and rows["rejected"].urgency is None
    assert rows["on_time"].due_at == rows["on_time"].handle_due_at
    assert rows["rejected"].handle_due_at is None


# ---------------------------------------------------------------- figures


def test_every_figure_of_a_grid_known_by_construction(world: dict[str, Any]) -> None:
    a = _rows(world, _query())[world["a"]]
    cohort = {k: v for k, v in CASES_A.items() if k != "october"}
    assert a["reported"] == len(cohort) == 8
    assert a["accepted"] == 7 and a["rejected"] == 1
    assert a["closed"] == 3  # on_time, late, reworked (closed_after: after AS_OF)
    assert a["closed_on_time"] == 2  # on_time, reworked
    assert a["overdue_open"] == 1  # overdue; handled_late is handled, not_due is not due
    assert a["due"] == 4
    assert (a["rework"], a["supervised"]) == (1, 1)
    assert (a["dispatched"], a["dispatched_on_time"], a["redispatched"]) == (7, 6, 1)
    assert a["closure_rate"] == 3 / 4 and a["on_time_rate"] == 2 / 4
    assert a["rework_rate"] == 1 / 4
    assert a["on_time_dispatch_rate"] == 6 / 7 and a["accurate_dispatch_rate"] == 6 / 7
    dispatch = [_minutes(c["reported_at"], c["steps"][1]) for c in cohort.values() if "steps" in c]
    assert a["median_minutes_to_dispatch"] == statistics.median(dispatch) == 20
    closed = [c for k, c in cohort.items() if k in ("on_time", "late", "reworked")]
    hours = [_minutes(c["reported_at"], c["steps"][6]) / 60 for c in closed]
    assert a["median_hours_to_close"] == pytest.approx(statistics.median(hours)) == 44
    # volume ≤ 50 → 100; 10 % + 30 % × 75 + 30 % × 50 + 30 % × (100 − 25)
    assert a["volume_score"] == 100 and a["score"] == pytest.approx(70.0)
    assert a["grade"] == "C"


def test_grades_and_ranks(world: dict[str, Any]) -> None:
    rows = _rows(world, _query())
    a, b = rows[world["a"]], rows[world["b"]]
    assert (b["reported"], b["closed"], b["due"], b["closed_on_time"]) == (5, 5, 5, 5)
    assert b["score"] == 100 and b["grade"] == "A"
    assert (b["rank"], a["rank"]) == (1, 2)
    listed = list(rows)
    assert listed[:2] == [world["b"], world["a"]]  # ranked rows first
    empty = next(r for r in rows.values() if r["reported"] == 0)
    assert empty["due"] == 0 and empty["closure_rate"] is None and empty["score"] is None
    assert empty["grade"] is None and empty["rank"] is None and empty["volume_score"] == 100
    # below the default minimum volume (20) nobody is ranked
    default = _rows(world, _query(), StatsSettings())
    assert default[world["a"]]["rank"] is None and default[world["b"]]["rank"] is None
    assert default[world["a"]]["grade"] == "C"


def test_as_of_counts_only_events_until_then(world: dict[str, Any]) -> None:
    later = _rows(world, _query(as_of=LATER))[world["a"]]
    # closed_after is evaluated on Oct 10 15:00, after AS_OF and before LATER, on time
    assert (later["closed"], later["closed_on_time"], later["due"]) == (4, 3, 5)
    assert later["overdue_open"] == 1  # not_due runs to Oct 14
    early = _rows(world, _query(as_of=EARLY))[world["a"]]
    # on the holiday: on_time and reworked closed; overdue and handled_late both overdue
    assert (early["closed"], early["overdue_open"], early["due"]) == (2, 2, 4)
    assert early["closed_on_time"] == 2 and early["rework"] == 1
    # the same moment asked again gives the same figures
    assert _rows(world, _query())[world["a"]] == _rows(world, _query())[world["a"]]


def test_community_units_and_filters(world: dict[str, Any]) -> None:
    community = _rows(world, _query(level="community"))[world["community"]]
    assert community["reported"] == 13 and community["closed"] == 8
    units = _rows(world, _query(by="unit", level=None))
    team = units[f"grid_team:{world['a']}"]
    assert team["reported"] == 7 and team["level"] == "grid"  # not_due went to the town
    enforcement = units[f"town_law_enforcement:{world['a'][:9]}"]
    assert (enforcement["reported"], enforcement["due"], enforcement["overdue_open"]) == (1, 0, 0)
    wechat = _rows(world, _query(channels=("wechat",)))[world["a"]]
    assert (wechat["reported"], wechat["closed"], wechat["closed_on_time"]) == (2, 1, 0)
    only = _rows(world, _query(categories=("illegal_construction",), area=world["community"]))
    assert set(only) == {c for c in only if c.startswith(world["community"])}
    assert only[world["a"]]["reported"] == 1


def test_posts(world: dict[str, Any]) -> None:
    rows = indicators(world["engine"], _query(by="post", level=None), RANK_FROM_5).rows()
    worker = next(r for r in rows if r["code"] == f"grid_team:{world['a']}")
    assert worker["post"] == "grid_worker"
    assert (worker["post_reports"], worker["valid_reports"]) == (5, 5)
    assert worker["valid_report_rate"] == 1.0
    assert worker["missed_report_rate"] == 3 / 8  # late, handled_late (WeChat), rejected (12345)
    assert worker["on_time_verify_rate"] == 6 / 7  # handled_late accepted after 90 minutes
    assert (worker["checked"], worker["checked_on_time"]) == (5, 4)  # closed_after checked late
    expected = 40 * 1.0 + 20 * (1 - 3 / 8) + 20 * 6 / 7 + 20 * 4 / 5
    assert worker["score"] == pytest.approx(expected) and worker["grade"] == "B"
    system = next(r for r in rows if r["post"] == "dispatcher")
    assert system["code"] == "system" and system["dispatched"] == 12
    assert (system["dispatched_on_time"], system["redispatched"]) == (11, 1)
    assert system["score"] == pytest.approx(20 + 40 * 11 / 12 + 40 * 11 / 12)
    assert system["grade"] == "A"


def test_the_cases_behind_the_counts(world: dict[str, Any]) -> None:
    ids = world["ids"]
    q = _query(area=world["a"])
    assert case_ids(world["engine"], q, "overdue") == [ids["overdue"]]
    assert case_ids(world["engine"], _query(as_of=EARLY, area=world["a"]), "overdue") == sorted(
        [ids["overdue"], ids["handled_late"]]
    )
    assert case_ids(world["engine"], q, "supervised") == [ids["handled_late"]]


def test_equal_to_the_plain_sql_aggregate(world: dict[str, Any]) -> None:
    for as_of in (EARLY, AS_OF, LATER):
        q = _query(level="community", as_of=as_of)
        mine = _rows(world, q)
        with world["engine"].connect() as conn:
            ref = store.reference_figures(conn, q.period.start, q.period.end, as_of, length=12)
        assert ref, "the reference sees the cohort"
        for r in ref:
            m = mine[r.code]
            for name, value in r._mapping.items():
                if name == "code":
                    continue
                if value is None:
                    assert m[name] is None, (as_of, r.code, name)
                else:
                    assert m[name] == pytest.approx(float(value)), (as_of, r.code, name)


def test_trend_by_day_and_week(world: dict[str, Any]) -> None:
    q = _query()
    days = trend(world["engine"], q, "day")
    assert len(days.steps) == 30 and len(days.total) == 30
    series = dict((c, s) for c, _, _, s in days.items)[world["a"]]
    assert series[25]["reported"] == 2  # Sep 26: on_time and closed_after
    assert sum(p["reported"] for p in series) == 8
    assert sum(p["closed"] for p in series) == 3
    weeks = trend(world["engine"], q, "week", rows=False)
    assert weeks.steps[0][0] == t(9, 1, 0) and weeks.steps[-1][1] == t(10, 1, 0)
    assert sum(p["reported"] for p in weeks.total) == 13


# ---------------------------------------------------------------- the API


@pytest.fixture(scope="module")
def api(world: dict[str, Any]) -> Iterator[TestClient]:
    settings = Settings(database=DatabaseSettings(url=world["url"]))
    with TestClient(create_app(settings)) as c:
        yield c


def test_indicators_api_answers_the_contract(api: TestClient, world: dict[str, Any]) -> None:
    r = api.get("/v1/stats/indicators",
                params={"period": "month", "date": "2025-09-15",
                        "as_of": "2025-10-10T12:00:00+08:00", "by": "area", "level": "grid",
                        "area": world["community"]},
                headers=auth(world["keys"]["operator"]))  # fmt: skip
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"period", "items"}
    assert body["period"] == {"start": "2025-09-01T00:00:00+08:00",
                              "end": "2025-10-01T00:00:00+08:00",
                              "as_of": "2025-10-10T12:00:00+08:00"}  # fmt: skip
    a = next(i for i in body["items"] if i["code"] == world["a"])
    for name in ("code", "name", "level", "reported", "accepted", "rejected", "closed", "due",
                 "closed_on_time", "overdue_open", "rework", "supervised", "closure_rate",
                 "on_time_rate", "rework_rate", "median_minutes_to_dispatch",
                 "median_hours_to_close", "score", "grade", "rank"):  # fmt: skip
        assert name in a, name
    assert (a["due"], a["closed"], a["grade"], a["level"]) == (4, 3, "C", "grid")
    assert a["name"]


def test_trend_api(api: TestClient, world: dict[str, Any]) -> None:
    r = api.get("/v1/stats/trend",
                params={"period": "month", "date": "2025-09-01", "step": "week",
                        "level": "community", "as_of": "2025-10-10T12:00:00+08:00"},
                headers=auth(world["keys"]["operator"]))  # fmt: skip
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["step"] == "week" and len(body["steps"]) == len(body["total"]) == 5
    c = next(i for i in body["items"] if i["code"] == world["community"])
    assert sum(p["reported"] for p in c["series"]) == 13


@pytest.mark.parametrize(
    "params, name",
    [
        ({"period": "decade"}, "period"),
        ({"by": "street"}, "by"),
        ({"level": "county"}, "level"),
        ({"date": "2025-13-01"}, "date"),
        ({"as_of": "yesterday"}, "as_of"),
        ({"category": "sanitation,ufo"}, "category"),
        ({"channel": "fax"}, "channel"),
        ({"area": "33x"}, "area"),
    ],
)
def test_bad_parameters_are_422_naming_them(
    api: TestClient, world: dict[str, Any], params: dict[str, str], name: str
) -> None:
    r = api.get("/v1/stats/indicators", params=params, headers=auth(world["keys"]["operator"]))
    assert r.status_code == 422, r.text
    assert name in r.json()["message"]
    assert any(name in d["loc"] for d in r.json()["details"])


def test_bad_trend_parameters(api: TestClient, world: dict[str, Any]) -> None:
    h = auth(world["keys"]["operator"])
    r = api.get("/v1/stats/trend", params={"step": "hour"}, headers=h)
    assert r.status_code == 422 and "step" in r.json()["message"]
    r = api.get("/v1/stats/trend", params={"by": "post"}, headers=h)
    assert r.status_code == 422 and "by" in r.json()["message"]
    # a year of days at grid level is too many points
    r = api.get("/v1/stats/trend", params={"period": "year", "step": "day"}, headers=h)
    assert r.status_code == 422 and "step" in r.json()["message"]


def test_figures_are_for_staff(api: TestClient, world: dict[str, Any]) -> None:
    assert api.get("/v1/stats/indicators").status_code == 401
    for role in ("reporter", "grid_worker"):
        r = api.get("/v1/stats/indicators", headers=auth(world["keys"][role]))
        assert r.status_code == 403, role
    r = api.get("/v1/stats/trend", headers=auth(world["keys"]["reporter"]))
    assert r.status_code == 403
