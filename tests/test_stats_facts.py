"""The figures follow the loop as it happens: acceptance fixes the deadlines (and its event
records them), a reassignment restarts them, each step shows in the next read of the
figures, "overdue" is one comparison everywhere (list, figures) and ends when handling is
done, and deleting reports drops them from the figures."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from geo_service.locator import Locator
from geo_service.reports.schemas import CHINA_TZ
from geo_service.stats import catalogue
from geo_service.stats.indicators import IndicatorQuery, Period, indicators
from geo_service.store import stats as store
from tests.conftest import auth

DAY = dt.date(2025, 3, 12)  # a Wednesday no other test files reports on


def _file(client: TestClient, key: str, locator: Locator, i: int, hour: int) -> dict[str, Any]:
    g = locator.grids.iloc[i]
    p = g.geometry.representative_point()
    body = {
        "channel": "grid_app",
        "category": "sanitation",
        "description": "垃圾堆放未清运",
        "reported_at": dt.datetime(2025, 3, 12, hour, tzinfo=CHINA_TZ).isoformat(),
        "location": {"lon": p.x, "lat": p.y},
    }
    r = client.post("/v1/reports", json=body, headers=auth(key))
    assert r.status_code == 201, r.text
    return dict(r.json())


def _move(client: TestClient, key: str, rid: int, *targets: str) -> None:
    for to in targets:
        body: dict[str, Any] = {"to": to, **({"rating": 4} if to == "evaluated" else {})}
        r = client.post(f"/v1/reports/{rid}/transitions", json=body, headers=auth(key))
        assert r.status_code == 200, r.text


def _figures(engine: Engine, grid: str, as_of: dt.datetime | None = None) -> dict[str, Any]:
    q = IndicatorQuery(Period.of("day", DAY, as_of), "area", "grid", area=grid)
    rows = {r["code"]: r for r in indicators(engine, q).rows()}
    return rows[grid]


def _deadlines(engine: Engine, rid: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT urgency, dispatch_due_at, handle_due_at, due_at FROM reports "
                 "WHERE id = :i"), {"i": rid}
        ).one()  # fmt: skip


def _events(engine: Engine, rid: int) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(
            text("SELECT at, action, dispatch_due_at, handle_due_at FROM report_events "
                 "WHERE report_id = :i ORDER BY at, id"), {"i": rid}
        ))  # fmt: skip


def test_each_step_shows_in_the_figures(
    client: TestClient, keys: dict[str, str], engine: Engine, demo_locator: Locator
) -> None:
    op = keys["operator"]
    case = _file(client, op, demo_locator, 2501, 9)
    grid, rid = case["grid"]["code"], case["id"]
    assert case["due_at"] == catalogue.provisional_due(
        "sanitation", dt.datetime(2025, 3, 12, 9, tzinfo=CHINA_TZ)
    ).isoformat()
    f = _figures(engine, grid)
    assert (f["reported"], f["accepted"], f["due"]) == (1, 0, 0)

    _move(client, op, rid, "accepted")
    accept = _events(engine, rid)[-1]
    d = _deadlines(engine, rid)
    assert d.urgency == "normal"
    assert d.handle_due_at == catalogue.deadline("sanitation", "handle", accept.at)
    assert d.dispatch_due_at == catalogue.deadline("sanitation", "dispatch", accept.at)
    assert d.due_at == d.handle_due_at
    assert (accept.action, accept.handle_due_at) == ("accept", d.handle_due_at)
    assert _figures(engine, grid)["accepted"] == 1

    _move(client, op, rid, "dispatched", "handling")
    with engine.begin() as conn:  # as if its handling limit had run out an hour ago
        conn.execute(text("UPDATE reports SET handle_due_at = now() - interval '1 hour' "
                          "WHERE id = :i"), {"i": rid})
        conn.execute(text("UPDATE report_events SET handle_due_at = now() - interval '1 hour' "
                          "WHERE report_id = :i AND action = 'accept'"), {"i": rid})  # fmt: skip
    f = _figures(engine, grid)
    assert (f["dispatched"], f["overdue_open"], f["due"], f["closed"]) == (1, 1, 1, 0)
    listed = client.get("/v1/reports", params={"overdue": "true", "area": grid},
                        headers=auth(op)).json()  # fmt: skip
    assert rid in {i["id"] for i in listed["items"]}

    _move(client, op, rid, "handled", "verified")  # handling done: no longer overdue
    f = _figures(engine, grid)
    assert (f["overdue_open"], f["due"]) == (0, 0)
    assert client.get(f"/v1/reports/{rid}", headers=auth(op)).json()["overdue"] is False

    _move(client, op, rid, "fed_back", "evaluated")
    f = _figures(engine, grid)
    assert (f["closed"], f["due"], f["closed_on_time"]) == (1, 1, 0)  # handled too late
    assert f["closure_rate"] == 1.0 and f["on_time_rate"] == 0.0
    # the figures as of a moment while it was being handled: overdue then, not closed
    start, complete = (e.at for e in _events(engine, rid) if e.action in ("start", "complete"))
    before = _figures(engine, grid, start + (complete - start) / 2)
    assert (before["overdue_open"], before["closed"]) == (1, 0)


def test_rework_and_a_units_return_count(
    client: TestClient, keys: dict[str, str], engine: Engine, demo_locator: Locator
) -> None:
    op = keys["operator"]
    case = _file(client, op, demo_locator, 2502, 10)
    grid, rid = case["grid"]["code"], case["id"]
    _move(client, op, rid, "accepted", "dispatched", "accepted", "dispatched", "handling",
          "handled", "handling", "handled")  # fmt: skip
    f = _figures(engine, grid)
    assert (f["rework"], f["dispatched"], f["redispatched"]) == (1, 1, 1)
    assert f["accurate_dispatch_rate"] == 0.0 and f["overdue_open"] == 0


def test_reassignment_restarts_the_deadlines_and_the_events_keep_both(
    client: TestClient, keys: dict[str, str], engine: Engine, demo_locator: Locator
) -> None:
    op = keys["operator"]
    case = _file(client, op, demo_locator, 2503, 11)
    grid, rid = case["grid"]["code"], case["id"]
    _move(client, op, rid, "accepted", "dispatched")
    r = client.post(f"/v1/reports/{rid}/reassign",
                    json={"category": "illegal_construction", "note": "违建"},
                    headers=auth(op))  # fmt: skip
    assert r.status_code == 200, r.text
    accept, reassign = (e for e in _events(engine, rid) if e.action in ("accept", "reassign"))
    d = _deadlines(engine, rid)
    assert d.handle_due_at == reassign.handle_due_at
    assert d.handle_due_at == catalogue.deadline("illegal_construction", "handle", reassign.at)
    assert accept.handle_due_at == catalogue.deadline("sanitation", "handle", accept.at)
    with engine.begin() as conn:  # make the first deadline past: before the reassignment
        conn.execute(
            text("UPDATE report_events SET handle_due_at = at - interval '1 minute', "
                 "at = at - interval '2 hours' WHERE report_id = :i AND action = 'accept'"),
            {"i": rid},
        )  # fmt: skip
    accept = next(e for e in _events(engine, rid) if e.action == "accept")
    between = accept.handle_due_at + (reassign.at - accept.handle_due_at) / 2
    assert _figures(engine, grid, between)["overdue_open"] == 1  # the first deadline, in force
    assert _figures(engine, grid)["overdue_open"] == 0  # the new one has not run out
    assert _figures(engine, grid, between)["redispatched"] == 0  # not yet reassigned then
    assert _figures(engine, grid)["redispatched"] == 1


def test_the_same_figures_as_the_plain_aggregate_and_deletion(
    client: TestClient, keys: dict[str, str], engine: Engine, demo_locator: Locator
) -> None:
    op = keys["operator"]
    case = _file(client, op, demo_locator, 2504, 14)
    grid, rid = case["grid"]["code"], case["id"]
    _move(client, op, rid, "accepted", "dispatched", "handling", "handled", "verified",
          "fed_back", "evaluated")  # fmt: skip
    period = Period.of("day", DAY)
    q = IndicatorQuery(period, "area", "town")
    mine = {r["code"]: r for r in indicators(engine, q).rows()}
    with engine.connect() as conn:
        ref = store.reference_figures(conn, period.start, period.end, period.as_of, length=9)
    for r in ref:
        for name, value in r._mapping.items():
            if name != "code":
                got = mine[r.code][name]
                if value is None:
                    assert got is None, name
                else:
                    assert got == pytest.approx(float(value), rel=1e-12), name
    assert _figures(engine, grid)["reported"] == 1
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM reports WHERE id = :i"), {"i": rid})
    assert _figures(engine, grid)["reported"] == 0
