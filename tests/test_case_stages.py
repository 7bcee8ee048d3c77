"""Case-stage layers: open, overdue and supervised cases and the median time per loop step,
per grid and per higher area, with small areas blanked on the public layer."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from geo_service.analytics import stages
from geo_service.analytics.filters import make_filter
from geo_service.locator import Locator
from tests.conftest import auth
from tests.test_heat import file_reports

BJ = ZoneInfo("Asia/Shanghai")
T0 = dt.datetime(2025, 10, 8, 9, tzinfo=BJ)
OCTOBER = {"from": "2025-10-01T00:00:00+08:00", "to": "2025-11-01T00:00:00+08:00"}


@pytest.fixture(scope="module")
def october(engine: Engine, demo_locator: Locator) -> dict[str, object]:
    """Grid A: six cases in every state; grid B (same community): two open cases."""
    grids = demo_locator.grids
    community = grids["community_code"].iloc[900]
    codes = grids.loc[grids["community_code"] == community, "code"].tolist()
    a, b = codes[0], codes[1]
    pa = grids.loc[grids["code"] == a].geometry.iloc[0].representative_point()
    pb = grids.loc[grids["code"] == b].geometry.iloc[0].representative_point()
    rows = [{"lon": pa.x, "lat": pa.y, "at": T0 + dt.timedelta(hours=i)} for i in range(6)]
    rows += [{"lon": pb.x, "lat": pb.y, "at": T0 + dt.timedelta(hours=i)} for i in range(2)]
    for r in rows:
        r["category"] = "housing_safety"
    ids = file_reports(engine, demo_locator, rows)
    ra, _rb = ids[:6], ids[6:]
    # the loop: accept after 10/20/30 min, dispatch 5/15 min later, one evaluated, one rejected
    steps = {
        ra[0]: [("accept", 600)],
        ra[1]: [("accept", 1200), ("dispatch", 300)],
        ra[2]: [("accept", 1800), ("dispatch", 900), ("start", 60), ("complete", 7200),
                ("verify", 100), ("feed_back", 100), ("evaluate", 100)],
        ra[3]: [("reject", 50)],
    }
    status = {ra[0]: "accepted", ra[1]: "dispatched", ra[2]: "evaluated", ra[3]: "rejected"}
    with engine.begin() as conn:
        for rid, moves in steps.items():
            at = conn.execute(text("SELECT reported_at FROM reports WHERE id = :i"),
                              {"i": rid}).scalar_one()
            for action, seconds in moves:
                at += dt.timedelta(seconds=seconds)
                conn.execute(
                    text("INSERT INTO report_events (report_id, at, action, actor) "
                         "VALUES (:i, :at, :a, 'test')"),
                    {"i": rid, "at": at, "a": action},
                )
            conn.execute(text("UPDATE reports SET status = :s WHERE id = :i"),
                         {"s": status[rid], "i": rid})
        conn.execute(text("UPDATE reports SET supervised = true WHERE id = ANY(:ids)"),
                     {"ids": [ra[1], ra[2]]})
        conn.execute(text("UPDATE reports SET due_at = now() + interval '30 days' WHERE id = :i"),
                     {"i": ra[4]})
        # the accepted and the dispatched case were due to be handled the next day
        conn.execute(text("UPDATE reports SET handle_due_at = :t WHERE id = ANY(:ids)"),
                     {"t": T0 + dt.timedelta(days=1), "ids": [ra[0], ra[1]]})
    return {"a": a, "b": b, "community": community}


def test_stage_counts_per_grid(engine: Engine, october) -> None:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        counts = stages.stage_counts(conn, make_filter(since=T0, until=T0 + dt.timedelta(days=2)))
    by = counts.set_index("code")
    a = by.loc[october["a"]]
    # open: discovered ×2, accepted, dispatched; overdue: the accepted and the dispatched case,
    # past their handling deadline (discovered cases are not accepted: no deadline yet)
    assert (a["reports"], a["open"], a["overdue"]) == (6, 4, 2)
    assert (a["supervised"], a["supervised_open"]) == (2, 1)
    b = by.loc[october["b"]]
    assert (b["reports"], b["open"], b["overdue"], b["supervised"]) == (2, 2, 0, 0)
    with engine.connect() as conn:  # an earlier clock: nothing is overdue yet
        early = stages.stage_counts(conn, make_filter(since=T0, until=T0 + dt.timedelta(days=2)),
                                    now=T0)
    assert early.set_index("code").loc[october["a"], "overdue"] == 0


def test_median_time_per_step(engine: Engine, october) -> None:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        steps = stages.step_durations(conn, make_filter(since=T0, until=T0 + dt.timedelta(days=2)))
    a = steps[steps["code"] == october["a"]].set_index("action")
    assert a.loc["accept", "median_s"] == 1200 and a.loc["accept", "steps"] == 3
    assert a.loc["dispatch", "median_s"] == 600 and a.loc["dispatch", "steps"] == 2
    assert a.loc["complete", "median_s"] == 7200 and a.loc["reject", "median_s"] == 50
    assert "discover" not in a.index  # the first event has no step before it


def test_grid_stats_layer(client: TestClient, keys, october) -> None:  # type: ignore[no-untyped-def]
    r = client.get("/v1/analytics/grid-stats", params={**OCTOBER, "k": 0},
                   headers=auth(keys["operator"]))
    assert r.status_code == 200, r.text
    feats = {f["id"]: f["properties"] for f in r.json()["features"]}
    a = feats[october["a"]]
    assert (a["reports"], a["open"], a["overdue"], a["supervised_open"]) == (6, 4, 2, 1)
    assert a["median_accept_s"] == 1200 and a["steps_dispatch"] == 2
    assert feats[october["b"]]["median_accept_s"] is None
    assert r.json()["features"][0]["geometry"]["type"] in ("Polygon", "MultiPolygon")
    community = client.get("/v1/analytics/grid-stats",
                           params={**OCTOBER, "level": "community", "k": 0},
                           headers=auth(keys["operator"])).json()
    c = {f["id"]: f["properties"] for f in community["features"]}[october["community"]]
    assert (c["reports"], c["open"], c["overdue"]) == (8, 6, 2)


def test_public_grid_stats_blank_small_grids(client: TestClient, october) -> None:  # type: ignore[no-untyped-def]
    r = client.get("/v1/analytics/grid-stats", params=OCTOBER)
    assert r.status_code == 200
    feats = {f["id"]: f["properties"] for f in r.json()["features"]}
    a, b = feats[october["a"]], feats[october["b"]]
    assert a["reports"] == 6 and a["suppressed"] is False
    assert b["suppressed"] is True and b["reports"] is None and b["open"] is None
    assert b["name"] and b["code"] == october["b"]  # the area itself stays on the map
    for p in feats.values():
        assert not {"grid_worker", "grid_leader", "reporter", "phone"} & set(p)


def test_area_filter_and_unknown_level(client: TestClient, october) -> None:  # type: ignore[no-untyped-def]
    r = client.get("/v1/analytics/grid-stats", params={**OCTOBER, "area": october["community"]})
    codes = {f["id"] for f in r.json()["features"]}
    assert october["a"] in codes and all(c.startswith(str(october["community"])) for c in codes)
    assert client.get("/v1/analytics/grid-stats", params={"level": "county"}).status_code == 422
