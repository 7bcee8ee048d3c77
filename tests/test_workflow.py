"""The closed loop of a case: every allowed move works and every other one is a 409 naming the
allowed targets; reassign, escalate, supervise, the overdue sweep; who may do what; row locks."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from geo_service.locator import Locator
from geo_service.reports import intake, queries, workflow
from geo_service.routing import RoutingTable
from geo_service.stats import catalogue
from tests.conftest import auth

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
# A month back: past any category's handling limit on any day the suite runs (a report
# filed 30 hours before a Saturday is still within its one-workday limit until Monday).
LONG_AGO = (NOW - dt.timedelta(days=30)).isoformat()
# the specification: status -> statuses it may move to
ALLOWED = {
    "discovered": ("accepted", "rejected"),
    "accepted": ("dispatched",),
    "dispatched": ("handling", "accepted"),
    "handling": ("handled",),
    "handled": ("verified", "handling"),
    "verified": ("fed_back",),
    "fed_back": ("evaluated",),
    "evaluated": (),
    "rejected": (),
}
STATUSES = tuple(ALLOWED)
FORWARD = ("accepted", "dispatched", "handling", "handled", "verified", "fed_back", "evaluated")
ALLOWED_PAIRS = [(s, t) for s, targets in ALLOWED.items() for t in targets]
REFUSED_PAIRS = [(s, t) for s in STATUSES for t in STATUSES if t not in ALLOWED[s]]


# ---------------------------------------------------------------- helpers


def point_in(locator: Locator, i: int) -> tuple[float, float, str]:
    g = locator.grids.iloc[i]
    p = g.geometry.representative_point()
    return p.x, p.y, str(g["code"])


def scoped_index(locator: Locator, n: int) -> int:
    """The n-th grid of the grid worker's community (the first demo community)."""
    grids = locator.grids
    return int(grids.index[grids["community_code"] == grids["community_code"].iloc[0]][n])


def other_town_index(locator: Locator) -> int:
    grids = locator.grids
    return int(grids.index[grids["town_code"] != grids["town_code"].iloc[0]][5])


def file_report(
    client: TestClient, key: str, locator: Locator, i: int, **kw: Any
) -> dict[str, Any]:
    x, y, _ = point_in(locator, i)
    body = {
        "channel": "grid_app",
        "category": "safety_hazard",
        "description": "楼道堆放杂物堵塞消防通道",
        "reported_at": NOW.isoformat(),
        "location": {"lon": x, "lat": y},
        "reporter": {"name": "李先生", "phone": "13700000000"},
    }
    body.update(kw)
    r = client.post("/v1/reports", json=body, headers=auth(key))
    assert r.status_code == 201, r.text
    return dict(r.json())


def move(client: TestClient, key: str, rid: int, to: str, **kw: Any) -> Any:
    return client.post(f"/v1/reports/{rid}/transitions", json={"to": to, **kw}, headers=auth(key))


def path_to(status: str) -> list[str]:
    """The operator's moves from 'discovered' to ``status``."""
    if status == "rejected":
        return ["rejected"]
    return list(FORWARD[: FORWARD.index(status) + 1]) if status in FORWARD else []


def walk(client: TestClient, key: str, rid: int, status: str) -> None:
    for to in path_to(status):
        r = move(client, key, rid, to, **({"rating": 5} if to == "evaluated" else {}))
        assert r.status_code == 200, r.text


def history(client: TestClient, key: str, rid: int) -> list[dict[str, Any]]:
    r = client.get(f"/v1/reports/{rid}/events", headers=auth(key))
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def get(client: TestClient, key: str, rid: int) -> dict[str, Any]:
    r = client.get(f"/v1/reports/{rid}", headers=auth(key))
    assert r.status_code == 200, r.text
    return dict(r.json())


# ---------------------------------------------------------------- the loop


def test_happy_path_runs_all_eight_steps_records_each_time_and_closes_the_case(
    client: TestClient, keys, demo_locator
) -> None:
    op = keys["operator"]
    case = file_report(client, keys["reporter"], demo_locator, 200)
    rid = case["id"]
    steps = [("accepted", {}), ("dispatched", {}), ("handling", {}), ("handled", {}),
             ("verified", {}), ("fed_back", {"note": "已电话回复市民"})]
    seen_at = [dt.datetime.fromisoformat(case["reported_at"])]
    for i, (to, extra) in enumerate(steps):
        r = move(client, op, rid, to, **extra)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"] == to and body["closed_at"] is None
        seen_at.append(dt.datetime.fromisoformat(body["status_at"]))
        if i == 1:  # 督办 while the unit handles it
            r = client.post(f"/v1/reports/{rid}/supervise", json={"note": "领导批示"},
                            headers=auth(op))
            assert r.status_code == 200 and r.json()["supervised"] is True
    r = move(client, keys["reporter"], rid, "evaluated", rating=5, note="满意")
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["status"] == "evaluated" and done["rating"] == 5
    assert done["closed_at"] == done["status_at"]
    assert seen_at == sorted(seen_at)

    items = history(client, op, rid)
    assert [e["action"] for e in items] == [
        "discover", "accept", "dispatch", "supervise", "start", "complete", "verify",
        "feed_back", "evaluate"]
    assert [e["to_status"] for e in items] == [
        "discovered", "accepted", "dispatched", "dispatched", "handling", "handled", "verified",
        "fed_back", "evaluated"]
    assert [e["from_status"] for e in items[1:]] == [
        "discovered", "accepted", "dispatched", "dispatched", "handling", "handled",
        "verified", "fed_back"]
    assert items[0]["duration_s"] is None
    assert all(e["duration_s"] >= 0 for e in items[1:])
    ats = [dt.datetime.fromisoformat(e["at"]) for e in items]
    assert ats == sorted(ats) and ats[-1] == dt.datetime.fromisoformat(done["closed_at"])
    total = sum(e["duration_s"] for e in items[1:])
    assert total == pytest.approx((ats[-1] - ats[0]).total_seconds())
    assert all(e["actor"] == "operator" for e in items[1:-1])
    assert items[-1]["actor"] == "reporter" and items[-1]["note"] == "满意"
    assert items[2]["unit"]["code"] == case["unit"]["code"]  # dispatched to the routed unit
    assert items[6]["note"] is None and items[7]["note"] == "已电话回复市民"


@pytest.fixture(scope="module")
def case_in(client: TestClient, keys, demo_locator) -> dict[str, int]:
    """One case in each status, for the refusals (which change nothing)."""
    out = {}
    for n, status in enumerate(STATUSES):
        rid = file_report(client, keys["operator"], demo_locator, 300 + n)["id"]
        walk(client, keys["operator"], rid, status)
        out[status] = rid
    return out


def test_the_transition_table_is_the_specification() -> None:
    assert {s: tuple(t) for s, t in workflow.TRANSITIONS.items()} == ALLOWED
    assert set(workflow.STATUSES) == set(STATUSES)
    assert len(ALLOWED_PAIRS) == 10 and len(REFUSED_PAIRS) == 71


def test_open_statuses_agree_everywhere() -> None:
    """Intake (duplicates), queries (overdue) and the loop must share one idea of 'open'."""
    expected = tuple(s for s in STATUSES if s not in ("evaluated", "rejected"))
    assert intake.OPEN_STATUSES == queries.OPEN_STATUSES == expected
    assert set(workflow.CLOSED_STATUSES) == {"evaluated", "rejected"}


@pytest.mark.parametrize("source, target", ALLOWED_PAIRS)
def test_every_allowed_transition_works(
    client: TestClient, keys, demo_locator, source: str, target: str
) -> None:
    op = keys["operator"]
    rid = file_report(client, op, demo_locator, 400 + ALLOWED_PAIRS.index((source, target)))["id"]
    walk(client, op, rid, source)
    r = move(client, op, rid, target, note=f"{source}→{target}",
             **({"rating": 3} if target == "evaluated" else {}))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == target
    assert (body["closed_at"] is not None) is (target in ("evaluated", "rejected"))
    last = history(client, op, rid)[-1]
    assert (last["from_status"], last["to_status"]) == (source, target)
    assert last["note"] == f"{source}→{target}" and last["actor"] == "operator"


@pytest.mark.parametrize("source, target", REFUSED_PAIRS)
def test_every_refused_transition_is_409_naming_the_allowed_targets(
    client: TestClient, keys, case_in, source: str, target: str
) -> None:
    op = keys["operator"]
    rid = case_in[source]
    before = len(history(client, op, rid))
    r = move(client, op, rid, target, **({"rating": 4} if target == "evaluated" else {}))
    assert r.status_code == 409, r.text
    allowed = ", ".join(ALLOWED[source]) or "none (the case is closed)"
    assert r.json()["message"] == f"cannot go from {source!r} to {target!r}: allowed: {allowed}"
    assert get(client, op, rid)["status"] == source
    assert len(history(client, op, rid)) == before


@pytest.mark.parametrize(
    "body, fragment",
    [
        ({"to": "solved"}, "unknown status 'solved'"),
        ({"to": "evaluated"}, "rating from 1 to 5"),
        ({"to": "evaluated", "rating": 6}, "rating: Input should be less than or equal to 5"),
        ({"to": "accepted", "rating": 5}, "only when the case is evaluated"),
        ({"to": "accepted", "colour": "red"}, "colour"),
        ({}, "to"),
    ],
)
def test_unknown_status_or_misplaced_rating_is_422(
    client: TestClient, keys, case_in, body: dict[str, Any], fragment: str
) -> None:
    r = client.post(f"/v1/reports/{case_in['discovered']}/transitions", json=body,
                    headers=auth(keys["operator"]))
    assert r.status_code == 422, r.text
    assert fragment in r.json()["message"]


def test_unknown_report_is_404(client: TestClient, keys) -> None:
    op = auth(keys["operator"])
    assert move(client, keys["operator"], 10**12, "accepted").status_code == 404
    assert client.get(f"/v1/reports/{10**12}/events", headers=op).status_code == 404


def test_rework_loop_sends_a_poor_result_back_to_handling(
    client: TestClient, keys, demo_locator
) -> None:
    op = keys["operator"]
    rid = file_report(client, op, demo_locator, 500)["id"]
    walk(client, op, rid, "handled")
    r = move(client, op, rid, "handling", note="现场核查未整改到位")
    assert r.json()["status"] == "handling"
    assert move(client, op, rid, "handled").json()["status"] == "handled"
    assert move(client, op, rid, "verified").json()["status"] == "verified"
    actions = [e["action"] for e in history(client, op, rid)]
    assert actions[-4:] == ["complete", "rework", "complete", "verify"]


def test_return_loop_lets_the_unit_send_a_case_back_for_another_dispatch(
    client: TestClient, keys, demo_locator
) -> None:
    op = keys["operator"]
    rid = file_report(client, op, demo_locator, 501)["id"]
    walk(client, op, rid, "dispatched")
    r = move(client, op, rid, "accepted", note="不属于本单位职责")
    assert r.status_code == 200 and r.json()["status"] == "accepted"
    assert move(client, op, rid, "dispatched").json()["status"] == "dispatched"
    assert move(client, op, rid, "handling").json()["status"] == "handling"
    actions = [e["action"] for e in history(client, op, rid)]
    assert actions == ["discover", "accept", "dispatch", "return", "dispatch", "start"]


# ---------------------------------------------------------------- reassign, escalate, supervise


def test_reassign_to_a_new_category_re_routes_to_its_unit_and_sla(
    client: TestClient, keys, demo_locator
) -> None:
    op = keys["operator"]
    _, _, grid = point_in(demo_locator, 510)
    case = file_report(client, op, demo_locator, 510)
    assert case["unit"]["code"] == f"grid_team:{grid}"
    walk(client, op, case["id"], "handling")
    r = client.post(f"/v1/reports/{case['id']}/reassign",
                    json={"category": "illegal_construction", "note": "实为违建"},
                    headers=auth(op))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["category"] == "illegal_construction"
    assert body["unit"]["code"] == f"town_law_enforcement:{grid[:9]}"
    assert body["unit"]["type"] == "town_law_enforcement"
    assert body["handling_level"] == "town" and body["routed_by"] == "rule"
    assert body["status"] == "dispatched"  # the new unit starts afresh
    last = history(client, op, case["id"])[-1]
    # the new unit gets the new category's whole handling limit, in working time
    due = dt.datetime.fromisoformat(body["due_at"])
    assert due == catalogue.deadline("illegal_construction", "handle",
                                     dt.datetime.fromisoformat(last["at"]))
    assert last["action"] == "reassign" and last["from_status"] == "handling"
    assert last["unit"]["code"] == body["unit"]["code"]
    assert "safety_hazard → illegal_construction" in last["note"]


def test_reassign_to_a_named_unit_keeps_the_status_before_dispatch(
    client: TestClient, keys, demo_locator
) -> None:
    op = keys["operator"]
    _, _, grid = point_in(demo_locator, 511)
    case = file_report(client, op, demo_locator, 511)
    r = client.post(f"/v1/reports/{case['id']}/reassign",
                    json={"unit_code": f"town_centre:{grid[:9]}", "note": "转镇中心"},
                    headers=auth(op))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["unit"]["code"] == f"town_centre:{grid[:9]}" and body["routed_by"] == "manual"
    assert body["handling_level"] == "town" and body["status"] == "discovered"
    assert body["category"] == "safety_hazard" and body["due_at"] == case["due_at"]


@pytest.mark.parametrize(
    "body, status, fragment",
    [
        ({"note": "x"}, 422, "needs a category, a unit_code or both"),
        ({"note": "x", "unit_code": "nowhere:1"}, 422, "unknown unit 'nowhere:1'"),
        ({"note": "x", "category": "ufo"}, 422, "unknown category 'ufo'"),
        ({"category": "theft"}, 422, "note"),
    ],
)
def test_reassign_refuses_what_it_cannot_do(
    client: TestClient, keys, case_in, body: dict[str, Any], status: int, fragment: str
) -> None:
    r = client.post(f"/v1/reports/{case_in['accepted']}/reassign", json=body,
                    headers=auth(keys["operator"]))
    assert r.status_code == status, r.text
    assert fragment in r.json()["message"]


@pytest.mark.parametrize("action", ["reassign", "escalate", "supervise"])
@pytest.mark.parametrize("closed", ["evaluated", "rejected"])
def test_closed_cases_cannot_be_reassigned_escalated_or_supervised(
    client: TestClient, keys, case_in, action: str, closed: str
) -> None:
    body = {"note": "x", **({"category": "theft"} if action == "reassign" else {})}
    r = client.post(f"/v1/reports/{case_in[closed]}/{action}", json=body,
                    headers=auth(keys["operator"]))
    assert r.status_code == 409 and f"is closed ({closed})" in r.json()["message"]


def test_escalate_goes_community_then_town_then_county_then_409(
    client: TestClient, keys, demo_locator
) -> None:
    op = keys["operator"]
    _, _, grid = point_in(demo_locator, 520)
    case = file_report(client, op, demo_locator, 520)
    walk(client, op, case["id"], "handling")
    assert (case["handling_level"], case["unit"]["code"]) == ("community", f"grid_team:{grid}")
    url = f"/v1/reports/{case['id']}/escalate"
    town = client.post(url, json={"note": "村里解决不了"}, headers=auth(op)).json()
    assert town["handling_level"] == "town" and town["hard"] is False
    assert town["unit"]["code"] == f"town_safety_office:{grid[:9]}"
    assert town["status"] == "dispatched"
    county = client.post(url, json={"note": "镇里解决不了", "hard": True}, headers=auth(op)).json()
    assert county["handling_level"] == "county" and county["hard"] is True
    assert county["unit"]["code"] == "emergency_bureau:330411"
    r = client.post(url, json={"note": "还要升级"}, headers=auth(op))
    assert r.status_code == 409
    assert "'county' level, the highest" in r.json()["message"]
    items = history(client, op, case["id"])
    assert [e["action"] for e in items[-2:]] == ["escalate", "escalate"]
    assert items[-2]["note"] == "村里解决不了 (community → town)"
    assert items[-1]["note"] == "镇里解决不了 (town → county)"


def test_supervise_flag_is_shown_and_filterable(
    client: TestClient, keys, demo_locator
) -> None:
    op = keys["operator"]
    rid = file_report(client, op, demo_locator, 530)["id"]
    plain = file_report(client, op, demo_locator, 531)["id"]
    r = client.post(f"/v1/reports/{rid}/supervise", json={"note": "群众反映强烈"},
                    headers=auth(op))
    assert r.status_code == 200 and r.json()["supervised"] is True
    assert r.json()["status"] == "discovered"
    assert get(client, keys["planner"], rid)["supervised"] is True
    assert get(client, op, plain)["supervised"] is False
    flagged = client.get("/v1/reports", params={"supervised": "true", "limit": 1000},
                         headers=auth(op)).json()["items"]
    unflagged = client.get("/v1/reports", params={"supervised": "false", "limit": 1000},
                           headers=auth(op)).json()["items"]
    assert rid in {i["id"] for i in flagged} and plain not in {i["id"] for i in flagged}
    assert plain in {i["id"] for i in unflagged} and rid not in {i["id"] for i in unflagged}
    last = history(client, op, rid)[-1]
    assert (last["action"], last["from_status"], last["to_status"]) == (
        "supervise", "discovered", "discovered")
    assert last["note"] == "群众反映强烈"


# ---------------------------------------------------------------- overdue sweep


def _state(engine: Engine, rid: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT r.handling_level, r.due_at, r.status, u.code AS unit FROM reports r "
                 "LEFT JOIN units u ON u.id = r.unit_id WHERE r.id = :id"), {"id": rid}
        ).one()


def _sweep(engine: Engine, now: dt.datetime) -> int:
    with engine.begin() as conn:
        return workflow.escalate_overdue(conn, now, RoutingTable.load(conn))


def test_escalate_overdue_escalates_an_overdue_case_once_per_sla_period_and_not_a_fresh_one(
    client: TestClient, keys, engine, demo_locator
) -> None:
    op = keys["operator"]
    _, _, grid = point_in(demo_locator, 540)
    late = file_report(client, op, demo_locator, 540,
                       reported_at=LONG_AGO)
    fresh = file_report(client, op, demo_locator, 541)
    walk(client, op, late["id"], "handling")
    with engine.begin() as conn:  # its handling limit ran out a minute ago
        conn.execute(text("UPDATE reports SET due_at = now() - interval '1 minute', "
                          "handle_due_at = now() - interval '1 minute' WHERE id = :id"),
                     {"id": late["id"]})
    assert get(client, op, late["id"])["overdue"] is True

    now = dt.datetime.now(dt.UTC)
    assert _sweep(engine, now) >= 1
    s = _state(engine, late["id"])
    assert (s.handling_level, s.unit) == ("town", f"town_safety_office:{grid[:9]}")
    # due again one handling limit (working time) later; still overdue: the escalation
    # moves the sweep's clock, not the deadline its handling is judged by
    assert s.due_at == catalogue.deadline("safety_hazard", "handle", now)
    assert s.status == "dispatched"
    assert _state(engine, fresh["id"]).handling_level == "community"
    assert get(client, op, late["id"])["overdue"] is True
    last = history(client, op, late["id"])[-1]
    assert last["action"] == "escalate_overdue" and last["actor"] == "system"
    assert last["note"].endswith("escalated (community → town)")

    _sweep(engine, now)  # within the new SLA period: nothing more
    assert _state(engine, late["id"]).handling_level == "town"
    with engine.begin() as conn:  # the next period runs out too
        conn.execute(text("UPDATE reports SET due_at = :t WHERE id = :id"),
                     {"t": now - dt.timedelta(minutes=1), "id": late["id"]})
    _sweep(engine, now)
    assert _state(engine, late["id"]).unit == "emergency_bureau:330411"
    with engine.begin() as conn:
        conn.execute(text("UPDATE reports SET due_at = :t WHERE id = :id"),
                     {"t": now - dt.timedelta(minutes=1), "id": late["id"]})
    _sweep(engine, now)  # at the county already: it stays there
    assert _state(engine, late["id"]).handling_level == "county"
    assert [e["action"] for e in history(client, op, late["id"])].count("escalate_overdue") == 2


@pytest.mark.parametrize("max_parameters", [None, 12])
def test_one_sweep_escalates_many_cases_in_any_open_status_and_their_facts_follow(
    client: TestClient, keys, engine, demo_locator, monkeypatch, max_parameters
) -> None:
    """Cases of several statuses escalate together (their changes go out as one statement
    per set of columns, their events as one insert, cut in batches when a statement would
    carry too many values) and each ends as one escalation would leave it, its case facts
    (the figures' source) updated by the same statements."""
    from geo_service.store import reports as report_store

    if max_parameters is not None:  # two or three rows a statement: the batches are used
        monkeypatch.setattr(report_store, "MAX_PARAMETERS", max_parameters)
    op = keys["operator"]
    statuses = ("discovered", "accepted", "dispatched", "handling", "handling")
    first = 570 if max_parameters is None else 580
    cases = [file_report(client, op, demo_locator, first + i, reported_at=LONG_AGO)["id"]
             for i in range(len(statuses))]  # fmt: skip
    for rid, status in zip(cases, statuses, strict=True):
        walk(client, op, rid, status)
    with engine.begin() as conn:
        conn.execute(text("UPDATE reports SET due_at = now() - interval '1 minute' "
                          "WHERE id = ANY(:ids)"), {"ids": cases})  # fmt: skip
    now = dt.datetime.now(dt.UTC)
    assert _sweep(engine, now) >= len(cases)
    expected = {"discovered": "discovered", "accepted": "accepted"}
    for rid, before in zip(cases, statuses, strict=True):
        s = _state(engine, rid)
        assert s.handling_level == "town" and s.unit.startswith("town_safety_office:")
        assert s.due_at == catalogue.deadline("safety_hazard", "handle", now)
        assert s.status == expected.get(before, "dispatched")
        steps = [e["action"] for e in history(client, op, rid)]
        assert steps.count("escalate_overdue") == 1
    with engine.connect() as conn:
        facts = dict(conn.execute(
            text("SELECT f.report_id, f.status = r.status AND f.unit_id = r.unit_id "
                 "FROM case_facts f JOIN reports r ON r.id = f.report_id "
                 "WHERE f.report_id = ANY(:ids)"), {"ids": cases}).all())  # fmt: skip
    assert facts == dict.fromkeys(cases, True)


def test_escalate_overdue_endpoint_is_for_operators_and_the_cli_runs_it(
    client: TestClient, keys, engine, demo_locator, database_url, monkeypatch
) -> None:
    from geo_service.cli import app

    for role in ("reporter", "grid_worker", "planner"):
        r = client.post("/v1/reports:escalate-overdue", headers=auth(keys[role]))
        assert r.status_code == 403, role
    late = file_report(client, keys["operator"], demo_locator, 550,
                       reported_at=LONG_AGO)
    r = client.post("/v1/reports:escalate-overdue", headers=auth(keys["admin"]))
    assert r.status_code == 200 and r.json()["escalated"] >= 1
    assert _state(engine, late["id"]).handling_level == "town"
    assert history(client, keys["operator"], late["id"])[-1]["actor"] == "admin"

    again = file_report(client, keys["operator"], demo_locator, 551,
                        reported_at=LONG_AGO)
    monkeypatch.setenv("DATABASE_URL", database_url)
    result = CliRunner().invoke(app, ["reports", "escalate-overdue"])
    assert result.exit_code == 0, result.output
    assert "overdue case(s) escalated" in result.output
    assert _state(engine, again["id"]).handling_level == "town"


# ---------------------------------------------------------------- who may do what


def test_reporter_may_evaluate_their_own_case_but_not_accept_it(
    client: TestClient, keys, demo_locator
) -> None:
    rid = file_report(client, keys["reporter"], demo_locator, 560)["id"]
    r = move(client, keys["reporter"], rid, "accepted")
    assert r.status_code == 403 and "'reporter'" in r.json()["message"]
    walk(client, keys["operator"], rid, "fed_back")
    assert move(client, keys["reporter2"], rid, "evaluated", rating=1).status_code == 404
    assert client.get(f"/v1/reports/{rid}/events",
                      headers=auth(keys["reporter2"])).status_code == 404
    r = move(client, keys["reporter"], rid, "evaluated", rating=4)
    assert r.status_code == 200 and r.json()["rating"] == 4
    assert history(client, keys["reporter"], rid)[-1]["actor"] == "reporter"


def test_another_reporter_cannot_see_or_move_a_case(client: TestClient, keys,
                                                    demo_locator) -> None:
    rid = file_report(client, keys["reporter"], demo_locator, 561)["id"]
    for to in ("accepted", "rejected", "evaluated"):
        body = {"rating": 5} if to == "evaluated" else {}
        assert move(client, keys["reporter2"], rid, to, **body).status_code == 404


def test_grid_worker_in_scope_starts_and_completes_out_of_scope_gets_404(
    client: TestClient, keys, demo_locator
) -> None:
    op, gw = keys["operator"], keys["grid_worker"]
    mine = file_report(client, op, demo_locator, scoped_index(demo_locator, 1))["id"]
    assert move(client, gw, mine, "accepted").status_code == 403  # sees it, not its step
    walk(client, op, mine, "dispatched")
    r = move(client, gw, mine, "handling", note="已到现场")
    assert r.status_code == 200 and r.json()["status"] == "handling"
    r = move(client, gw, mine, "handled", note="已清理")
    assert r.status_code == 200 and r.json()["status"] == "handled"
    assert move(client, gw, mine, "verified").status_code == 403
    assert history(client, gw, mine)[-1]["actor"] == "grid_worker"

    theirs = file_report(client, op, demo_locator, other_town_index(demo_locator))["id"]
    walk(client, op, theirs, "dispatched")
    assert move(client, gw, theirs, "handling").status_code == 404
    assert client.get(f"/v1/reports/{theirs}/events", headers=auth(gw)).status_code == 404


def test_grid_worker_in_scope_may_return_a_case(client: TestClient, keys,
                                                demo_locator) -> None:
    rid = file_report(client, keys["operator"], demo_locator, scoped_index(demo_locator, 2))["id"]
    walk(client, keys["operator"], rid, "dispatched")
    r = move(client, keys["grid_worker"], rid, "accepted", note="非本网格事项")
    assert r.status_code == 200 and r.json()["status"] == "accepted"


def test_planner_may_read_a_case_but_not_move_it(client: TestClient, keys,
                                                 demo_locator) -> None:
    rid = file_report(client, keys["operator"], demo_locator, 570)["id"]
    assert move(client, keys["planner"], rid, "accepted").status_code == 403
    walk(client, keys["operator"], rid, "dispatched")
    r = move(client, keys["planner"], rid, "handling")
    assert r.status_code == 403 and "'planner'" in r.json()["message"]
    assert get(client, keys["planner"], rid)["status"] == "dispatched"
    assert len(history(client, keys["planner"], rid)) == 3


@pytest.mark.parametrize("action", ["reassign", "escalate", "supervise"])
@pytest.mark.parametrize(
    "role, expected",
    [("reporter", 403), ("reporter2", 404), ("grid_worker", 403), ("planner", 403),
     ("admin", 200)],
)
def test_only_operators_and_admins_reassign_escalate_and_supervise(
    client: TestClient, keys, demo_locator, action: str, role: str, expected: int
) -> None:
    rid = file_report(client, keys["reporter"], demo_locator, scoped_index(demo_locator, 3))["id"]
    body = {"note": "x", **({"category": "sanitation"} if action == "reassign" else {})}
    r = client.post(f"/v1/reports/{rid}/{action}", json=body, headers=auth(keys[role]))
    assert r.status_code == expected, r.text


# ---------------------------------------------------------------- concurrency


def test_two_concurrent_transitions_from_the_same_state_exactly_one_succeeds(
    live_server: str, client: TestClient, keys, demo_locator
) -> None:
    """Ten clients race to accept or reject one case against a real server: one wins."""
    import httpx

    rid = file_report(client, keys["operator"], demo_locator, 580)["id"]
    results: list[tuple[str, int]] = []
    barrier = threading.Barrier(10)

    def race(to: str) -> None:
        with httpx.Client(base_url=live_server, timeout=30) as http:
            barrier.wait()
            r = http.post(f"/v1/reports/{rid}/transitions", json={"to": to},
                          headers=auth(keys["operator"]))
        results.append((to, r.status_code))

    threads = [threading.Thread(target=race, args=(("accepted", "rejected")[i % 2],))
               for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [to for to, status in results if status == 200]
    assert len(winners) == 1 and sorted(s for _, s in results) == [200] + [409] * 9
    assert get(client, keys["operator"], rid)["status"] == winners[0]
    assert len(history(client, keys["operator"], rid)) == 2
