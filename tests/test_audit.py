"""The audit log: who changed boundaries, cases, units and keys — the key or the local account,
what, to what, when and from where — written in the transaction of the change, append-only in
the database, and readable by admins only at ``GET /v1/audit``.

A database of its own (the small layout): boundaries are imported, edited, published and rolled
back here, over HTTP and from the command line, without disturbing the session's demo.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from shapely.geometry import mapping
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from geo_service.app import create_app
from geo_service.audit import local_actor, local_origin
from geo_service.auth import KeyStore, Principal, create_key
from geo_service.cli import app as cli
from geo_service.db.engine import make_engine
from geo_service.db.migrate import upgrade
from geo_service.reports import workflow
from geo_service.settings import DatabaseSettings, Settings
from tests.conftest import auth
from tests.layouts import small_layout

runner = CliRunner()
CLIENT = "testclient"  # the client address Starlette's TestClient connects from
INSIDE = (120.7025, 30.7475)  # in grid 330411100001001
FIRST_GRID = "330411100001001"


@dataclass
class World:
    url: str
    engine: Engine
    client: TestClient
    keys: dict[str, str]
    ids: dict[str, int]  # key ids by role
    report: int  # a report moved along the loop over HTTP
    draft: int  # the draft edited, published and rolled back over HTTP


def _entries(client: TestClient, admin: str, **params: Any) -> dict[str, Any]:
    r = client.get("/v1/audit", params=params, headers=auth(admin))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


@pytest.fixture(scope="module")
def world(new_database, tmp_path_factory, monkeypatch_module) -> Iterator[World]:  # type: ignore[no-untyped-def]
    url = str(new_database("geo_audit"))
    upgrade(url)
    monkeypatch_module.setenv("DATABASE_URL", url)
    layout = tmp_path_factory.mktemp("audit") / "small.geojson"
    small_layout().to_file(layout)
    for label, extra in (("audit-v1", ["--effective-from", "2025-01-01", "--publish"]),
                         ("audit-v2", [])):  # fmt: skip
        done = runner.invoke(
            cli, ["boundaries", "import", str(layout), "--version", label, "--crs", "wgs84", *extra]
        )
        assert done.exit_code == 0, done.output
    engine = make_engine(url, pool_size=2)
    with engine.begin() as conn:
        keys = {r: create_key(conn, r, label=f"audit {r}", scope="330411" if r == "grid_worker"
                              else None)
                for r in ("reporter", "grid_worker", "operator", "planner", "admin")}  # fmt: skip
    store = KeyStore(engine)
    ids = {role: store.lookup(key).key_id for role, key in keys.items()}  # type: ignore[union-attr]
    with engine.connect() as conn:
        draft = conn.execute(
            text("SELECT id FROM boundary_versions WHERE label = 'audit-v2'")
        ).scalar_one()
    settings = Settings(database=DatabaseSettings(url=url))
    with TestClient(create_app(settings)) as client:
        body = {"channel": "wechat", "category": "sanitation", "description": "垃圾堆放",
                "reported_at": dt.datetime.now(dt.UTC).isoformat(),
                "location": {"lon": INSIDE[0], "lat": INSIDE[1]}}  # fmt: skip
        filed = client.post("/v1/reports", json=body, headers=auth(keys["reporter"]))
        assert filed.status_code == 201, filed.text
        yield World(url, engine, client, keys, ids, int(filed.json()["id"]), int(draft))
    engine.dispose()


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as mp:
        yield mp


# --------------------------------------------------------------------------- what is recorded


def test_the_command_line_is_audited_as_the_local_account(world: World) -> None:
    got = _entries(world.client, world.keys["admin"], origin=local_origin(), limit=1000)
    actions = [e["action"] for e in reversed(got["items"])]  # oldest first
    assert actions[:3] == ["boundary.draft_create", "unit.seed", "boundary.publish"]
    assert actions.count("boundary.draft_create") == 2  # audit-v1, then the draft audit-v2
    assert [a for a in actions if a == "key.create"] == ["key.create"] * 5
    for e in got["items"]:
        assert e["actor"] == local_actor() and e["actor_key_id"] is None
        assert e["actor_role"] is None
    publish = next(e for e in got["items"] if e["action"] == "boundary.publish")
    assert publish["details"]["effective_from"] == "2025-01-01"
    assert publish["details"]["label"] == "audit-v1"
    seeded = next(e for e in got["items"] if e["action"] == "unit.seed")
    assert seeded["target_type"] == "unit" and seeded["details"]["created"] > 0
    key = next(e for e in got["items"] if e["action"] == "key.create")
    assert set(key["details"]) == {"role", "prefix", "label", "scope"}  # never the key itself
    assert all(k not in str(got) for k in world.keys.values())


def test_every_loop_step_is_audited_with_key_role_and_address(world: World) -> None:
    c, rid, op = world.client, world.report, auth(world.keys["operator"])
    steps = [
        ("/transitions", {"to": "accepted", "note": "核实属实"}),
        ("/transitions", {"to": "dispatched"}),
        ("/reassign", {"note": "改派", "category": "facility_damage"}),
        ("/escalate", {"note": "社区处理不了"}),
        ("/supervise", {"note": "督办"}),
        ("/public", {"public": True}),
    ]
    for path, body in steps:
        r = c.post(f"/v1/reports/{rid}{path}", json=body, headers=op)
        assert r.status_code == 200, (path, r.text)
    got = _entries(c, world.keys["admin"], target_type="report", target_id=str(rid))
    assert [e["action"] for e in reversed(got["items"])] == [
        "report.accept", "report.dispatch", "report.reassign", "report.escalate",
        "report.supervise", "report.make_public",
    ]  # fmt: skip
    for e in got["items"]:
        assert e["actor_key_id"] == world.ids["operator"] and e["actor_role"] == "operator"
        assert e["actor"] == f"key:{world.ids['operator']}" and e["origin"] == CLIENT
        recent = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
        assert dt.datetime.fromisoformat(e["at"]) > recent
    accept = got["items"][-1]
    assert accept["details"]["from_status"] == "discovered"
    assert accept["details"]["to_status"] == "accepted"
    reassign = got["items"][-3]
    assert reassign["details"]["category"] == "facility_damage"
    assert "改派" not in str(got) and "核实属实" not in str(got)  # notes stay in the case history


def test_draft_edits_publish_and_rollback_over_http_are_audited(world: World) -> None:
    c, vid, planner = world.client, world.draft, auth(world.keys["planner"])
    square = small_layout().set_index("code").geometry[FIRST_GRID]
    r = c.put(f"/v1/boundaries/versions/{vid}/grids/{FIRST_GRID}",
              json={"geometry": mapping(square), "households": 123}, headers=planner)  # fmt: skip
    assert r.status_code == 200, r.text
    r = c.post(f"/v1/boundaries/versions/{vid}/renumber", headers=planner)
    assert r.status_code == 200 and r.json()["renamed"] == {}  # the same ground keeps its code
    today = dt.date.today().isoformat()
    r = c.post(f"/v1/boundaries/versions/{vid}/publish", json={"effective_from": today},
               headers=planner)  # fmt: skip
    assert r.status_code == 200, r.text
    r = c.post(f"/v1/boundaries/versions/{vid}/rollback", headers=planner)
    assert r.status_code == 200, r.text
    got = _entries(c, world.keys["admin"], target_type="boundary_version", target_id=str(vid),
                   actor_key_id=world.ids["planner"])  # fmt: skip
    assert [e["action"] for e in reversed(got["items"])] == [
        "boundary.grid_replace", "boundary.renumber", "boundary.publish", "boundary.rollback",
    ]  # fmt: skip (the open case's grid keeps its code: nothing to re-route)
    assert all(e["origin"] == CLIENT and e["actor_role"] == "planner" for e in got["items"])
    replace = got["items"][-1]
    assert replace["details"] == {"code": FIRST_GRID, "households": 123}
    assert got["items"][0]["details"]["mode"] == "withdrawn"  # in force today, taken back
    seeded = _entries(c, world.keys["admin"], action="unit.seed", actor_key_id=world.ids["planner"])
    assert seeded["items"] == []  # every code was in force already: no unit to create


def test_an_uploaded_draft_is_audited_as_its_planner(world: World) -> None:
    body = small_layout().to_json().encode()
    r = world.client.post(
        "/v1/boundaries/versions",
        files={"file": ("layout.geojson", body, "application/geo+json")},
        data={"label": "audit-v3", "crs": "wgs84"},
        headers=auth(world.keys["planner"]),
    )
    assert r.status_code == 201, r.text
    got = _entries(world.client, world.keys["admin"], action="boundary.draft_create", limit=1)
    (entry,) = got["items"]
    assert entry["target_id"] == str(r.json()["id"]) and entry["details"]["label"] == "audit-v3"
    assert entry["actor_key_id"] == world.ids["planner"] and entry["origin"] == CLIENT


def test_keys_revoked_from_the_command_line_are_audited(world: World) -> None:
    with world.engine.begin() as conn:
        key = create_key(conn, "reporter", label="audit revoke me")
    done = runner.invoke(cli, ["keys", "revoke", key[:10]])
    assert done.exit_code == 0, done.output
    got = _entries(world.client, world.keys["admin"], action="key.")
    latest = got["items"][0]
    assert latest["action"] == "key.revoke" and latest["details"]["prefix"] == key[:10]
    assert latest["actor"] == local_actor() and latest["origin"] == local_origin()


# --------------------------------------------------------------------------- all or nothing


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM audit_log")).scalar_one())


def test_an_entry_exists_exactly_when_its_change_committed(world: World) -> None:
    body = {"channel": "visit", "category": "other", "description": "试",
            "reported_at": dt.datetime.now(dt.UTC).isoformat(),
            "location": {"lon": INSIDE[0], "lat": INSIDE[1]}}  # fmt: skip
    rid = world.client.post("/v1/reports", json=body, headers=auth(world.keys["operator"]))
    rid_ = int(rid.json()["id"])
    operator = Principal(world.ids["operator"], "operator")
    before = _count(world.engine)
    with pytest.raises(RuntimeError), world.engine.begin() as conn:
        workflow.transition(conn, rid_, operator, "accepted")
        raise RuntimeError("the transaction fails after the step")
    assert _count(world.engine) == before  # rolled back with the change
    refused = world.client.post(f"/v1/reports/{rid_}/transitions", json={"to": "handled"},
                                headers=auth(world.keys["operator"]))  # fmt: skip
    assert refused.status_code == 409 and _count(world.engine) == before
    with world.engine.begin() as conn:
        workflow.transition(conn, rid_, operator, "accepted")
    assert _count(world.engine) == before + 1


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_log SET action = 'forged'", "DELETE FROM audit_log", "TRUNCATE audit_log"],
)
def test_the_log_is_append_only_in_the_database(world: World, statement: str) -> None:
    before = _count(world.engine)
    with pytest.raises(DBAPIError, match="append-only"), world.engine.begin() as conn:
        conn.execute(text(statement))
    assert _count(world.engine) == before


# --------------------------------------------------------------------------- reading it


@pytest.mark.parametrize(
    ("role", "status"),
    [("anonymous", 401), ("reporter", 403), ("grid_worker", 403), ("operator", 403),
     ("planner", 403), ("admin", 200)],
)
def test_only_admins_read_the_log(world: World, role: str, status: int) -> None:
    headers = {} if role == "anonymous" else auth(world.keys[role])
    assert world.client.get("/v1/audit", headers=headers).status_code == status


def test_pages_and_filters(world: World) -> None:
    admin = world.keys["admin"]
    everything = _entries(world.client, admin, limit=1000)
    assert everything["total"] == len(everything["items"]) == _count(world.engine)
    ids = [e["id"] for e in everything["items"]]
    assert ids == sorted(ids, reverse=True)  # newest first
    page = _entries(world.client, admin, limit=3, offset=2)
    assert [e["id"] for e in page["items"]] == ids[2:5] and page["total"] == len(ids)
    reports = _entries(world.client, admin, action="report.", limit=1000)
    assert reports["items"] and all(e["action"].startswith("report.") for e in reports["items"])
    exact = _entries(world.client, admin, action="report.accept")
    assert {e["action"] for e in exact["items"]} == {"report.accept"}
    newest = dt.datetime.fromisoformat(everything["items"][0]["at"])
    later = _entries(world.client, admin, since=(newest + dt.timedelta(seconds=1)).isoformat())
    assert later["total"] == 0
    earlier = _entries(world.client, admin, until=newest.isoformat())
    assert earlier["total"] < everything["total"]


@pytest.mark.parametrize(
    "params",
    [{"limit": 1001}, {"limit": 0}, {"offset": -1}, {"offset": 2**63}, {"actor_key_id": 2**40},
     {"target_type": "planet"}, {"action": "report.\x00"}, {"since": "yesterday"}],
)
def test_bad_parameters_are_422(world: World, params: dict[str, Any]) -> None:
    r = world.client.get("/v1/audit", params=params, headers=auth(world.keys["admin"]))
    assert r.status_code == 422, r.text


# --------------------------------------------------------------------------- drafts are not public


def test_drafts_their_validation_and_diff_need_a_planner_operator_or_admin_key(
    world: World, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    layout = tmp_path / "small.geojson"
    small_layout().to_file(layout)
    done = runner.invoke(
        cli, ["boundaries", "import", str(layout), "--version", "hidden-draft", "--crs", "wgs84"]
    )
    assert done.exit_code == 0, done.output
    c = world.client

    def labels(headers: dict[str, str]) -> dict[str, str]:
        r = c.get("/v1/boundaries/versions", headers=headers)
        assert r.status_code == 200, r.text
        return {v["label"]: v["status"] for v in r.json()["versions"]}

    public = labels({})
    assert "hidden-draft" not in public and "draft" not in public.values()
    assert public["audit-v1"] == "published"  # published and retired versions stay public
    assert "hidden-draft" not in labels(auth(world.keys["reporter"]))
    for role in ("planner", "operator", "admin"):
        assert labels(auth(world.keys[role]))["hidden-draft"] == "draft", role
    vid = next(
        v["id"] for v in c.get("/v1/boundaries/versions", headers=auth(world.keys["planner"]))
        .json()["versions"] if v["label"] == "hidden-draft"
    )  # fmt: skip
    diff_page = f"/maps/versions/{vid}/diff"  # a page: anonymous visitors go to sign in
    assert c.get(diff_page, follow_redirects=False).status_code == 303
    assert c.get(f"/v1/boundaries/versions/{vid}/validation").status_code == 401
    for path in (f"/v1/boundaries/versions/{vid}/validation", diff_page):
        assert c.get(path, headers=auth(world.keys["reporter"])).status_code == 403, path
        assert c.get(path, headers=auth(world.keys["grid_worker"])).status_code == 403, path
        for role in ("planner", "operator", "admin"):
            assert c.get(path, headers=auth(world.keys[role])).status_code == 200, (path, role)
    later = ["--version", "audit-2099", "--crs", "wgs84", "--effective-from", "2099-01-01"]
    done = runner.invoke(cli, ["boundaries", "import", str(layout), *later, "--publish"])
    assert done.exit_code == 0, done.output  # published, in force only from 2099
    ids = {v["label"]: v["id"] for v in c.get("/v1/boundaries/versions").json()["versions"]}
    diff = c.get(f"/maps/versions/{ids['audit-2099']}/diff",  # against the one in force
                 headers=auth(world.keys["operator"]))
    assert diff.status_code == 200, diff.text  # no draft on either side: an operator's page
