"""Publishing a draft (atomic switch on a date, validation errors refused), the open-case
policy, rolling back, time travel with ``as_of``, an area's history, and locating under load
while a version is published. Each test that changes state works on its own copy of a world
built once for the module (demo published from 2025-01-01, a synthetic year of reports)."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import shapely
from fastapi.testclient import TestClient
from sqlalchemy import text

from geo_service.app import create_app
from geo_service.boundaries import publish, versions
from geo_service.settings import DatabaseSettings, Settings
from tests.conftest import auth
from tests.planning_world import (
    World,
    build_world,
    busiest_grids,
    clone,
    drop,
    plan,
    serve,
    store_draft,
)

TODAY = dt.date.today()
OWNER = text(
    "SELECT r.id, (SELECT min(va.code) FROM version_areas va JOIN areas a ON a.id = va.area_id "
    "WHERE va.version_id = :v AND va.level = 'grid' AND ST_Covers(a.geom, r.geom)) AS code "
    "FROM reports r WHERE r.status = ANY(:open) ORDER BY r.id"
)
SNAPSHOT = text(
    "SELECT id, status, grid_code, community_code, boundary_version_id, unit_id, routed_by "
    "FROM reports ORDER BY id"
)
OPEN = ["discovered", "accepted", "dispatched", "handling", "handled", "verified", "fed_back"]


@dataclass(frozen=True)
class Base:
    """The module's world: a clean draft (one grid split, two merged) and a broken one."""

    world: World
    draft: int
    broken: int
    split: str
    new_code: str
    merged_away: str
    point: tuple[float, float]  # inside the split grid, in its new part


@pytest.fixture(scope="module")
def base(new_database) -> Base:  # type: ignore[no-untyped-def]
    world = build_world(new_database)
    busy = busiest_grids(world, 1)[0]
    engine = world.engine()
    with engine.connect() as conn:
        pair = conn.execute(
            text(
                "SELECT a.code AS a, b.code AS b FROM version_areas x "
                "JOIN areas a ON a.id = x.area_id JOIN version_areas y "
                "ON y.version_id = x.version_id AND y.level = 'grid' "
                "JOIN areas b ON b.id = y.area_id WHERE x.version_id = :v AND x.level = 'grid' "
                "AND a.parent_code = b.parent_code AND a.code < b.code AND a.code <> :busy "
                "AND b.code <> :busy AND a.households + b.households <= 1000 "
                "AND ST_Length(ST_Intersection(a.geom, b.geom)) > 0.001 "
                "AND EXISTS (SELECT 1 FROM reports r WHERE r.grid_code = b.code "
                "AND r.status = ANY(:open)) "  # so the merge surely moves an open case
                "ORDER BY a.code LIMIT 1"
            ),
            {"v": world.demo_id, "busy": busy, "open": OPEN},
        ).one()
    engine.dispose()
    edited = plan(world, {busy: 2}, [[pair.a, pair.b]])
    draft = store_draft(world, edited.frame, "publish-draft")
    new_code = edited.splits[0]["parts"][1]["code"]
    part = edited.frame.loc[edited.frame["code"] == new_code].geometry.iloc[0]
    point = shapely.point_on_surface(part)
    broken_frame = edited.frame.copy()
    row = broken_frame.index[broken_frame["code"] == pair.a][0]
    broken_frame.loc[row, "geometry"] = shapely.buffer(broken_frame.loc[row, "geometry"], 0.0005)
    broken_frame.loc[row, "area_id"] = None
    broken = store_draft(world, broken_frame, "publish-broken")
    return Base(world, draft, broken, busy, new_code, pair.b, (point.x, point.y))


@pytest.fixture
def world(base: Base) -> Iterator[World]:
    """A copy of the module's world for one test."""
    copy = clone(base.world)
    yield copy
    drop(copy)


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(database=DatabaseSettings(url=world.url)))) as c:
        yield c


def _publish(client: TestClient, world: World, vid: int, day: dt.date, role: str = "planner"):  # type: ignore[no-untyped-def]
    return client.post(
        f"/v1/boundaries/versions/{vid}/publish",
        json={"effective_from": day.isoformat()},
        headers=auth(world.keys[role]),
    )


def _rollback(client: TestClient, world: World, vid: int, role: str = "planner"):  # type: ignore[no-untyped-def]
    return client.post(f"/v1/boundaries/versions/{vid}/rollback", headers=auth(world.keys[role]))


def _rows(world: World, query: Any, **params: Any) -> list[Any]:
    engine = world.engine()
    try:
        with engine.connect() as conn:
            return list(conn.execute(query, params).all())
    finally:
        engine.dispose()


def _locate(client: TestClient, base: Base, as_of: dt.date | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"lon": base.point[0], "lat": base.point[1]}
    if as_of is not None:
        params["as_of"] = as_of.isoformat()
    r = client.get("/v1/locate", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_a_draft_with_validation_errors_is_refused_with_every_error_listed(
    base: Base, world: World, client: TestClient
) -> None:
    r = _publish(client, world, base.broken, TODAY)
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "boundary_validation_failed"
    kinds = {p["kind"] for p in body["details"]}
    assert {"overlap", "outside_parent"} <= kinds
    assert all(p["severity"] == "error" for p in body["details"])
    engine = world.engine()
    with engine.connect() as conn:
        assert versions.get_version(conn, base.broken).status == "draft"
        assert versions.version_in_force(conn).id == world.demo_id
    engine.dispose()


def test_publish_switches_the_version_in_force_in_one_step(
    base: Base, world: World, client: TestClient
) -> None:
    r = _publish(client, world, base.draft, TODAY)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["version"] == {
        "id": base.draft,
        "label": "publish-draft",
        "status": "published",
        "effective_from": TODAY.isoformat(),
        "effective_to": None,
    }
    assert body["replaced"]["id"] == world.demo_id
    assert body["replaced"]["status"] == "retired"
    assert body["replaced"]["effective_to"] == TODAY.isoformat()
    engine = world.engine()
    with engine.connect() as conn:
        assert versions.version_in_force(conn).id == base.draft
        assert versions.version_in_force(conn, TODAY - dt.timedelta(days=1)).id == world.demo_id
        published = conn.execute(
            text("SELECT count(*) FROM boundary_versions WHERE status = 'published'")
        ).scalar_one()
    engine.dispose()
    assert published == 1
    # the service answers with the new version once its cache rechecks (every ~2 s)
    deadline = time.monotonic() + 10
    while _locate(client, base)["version"]["id"] != base.draft and time.monotonic() < deadline:
        time.sleep(0.2)
    answer = _locate(client, base)
    assert answer["version"]["id"] == base.draft
    assert answer["grid"]["code"] == base.new_code


def test_open_cases_follow_the_new_grids_and_past_reports_keep_theirs(
    base: Base, world: World, client: TestClient
) -> None:
    before = {r.id: r for r in _rows(world, SNAPSHOT)}
    impact = client.get(
        f"/v1/boundaries/versions/{base.draft}/impact", headers=auth(world.keys["planner"])
    ).json()
    r = _publish(client, world, base.draft, TODAY)
    assert r.status_code == 200, r.text
    moved_report = r.json()["open_cases"]
    after = {r.id: r for r in _rows(world, SNAPSHOT)}
    owners = {r.id: r.code for r in _rows(world, OWNER, v=base.draft, open=OPEN)}
    moved = [i for i in owners if before[i].grid_code != owners[i]]
    assert moved, "the split and the merge should move some open cases"
    assert moved_report["moved"] == len(moved) == impact["open_cases"]["change_grid"]
    assert moved_report["unit_changed"] == impact["open_cases"]["change_unit"]
    for i, row in after.items():
        old = before[i]
        if i in owners:  # open: located as PostGIS would under the new version
            assert row.grid_code == owners[i]
            assert row.boundary_version_id == (
                base.draft if i in moved else old.boundary_version_id
            )
            if (
                i in moved
                and row.unit_id != old.unit_id
                and old.status in ("dispatched", "handling")
            ):
                assert row.status == "dispatched"
        else:  # closed: untouched
            assert row == old
    events = _rows(
        world,
        text(
            "SELECT report_id, actor, note FROM report_events WHERE action = 'relocate' "
            "ORDER BY report_id"
        ),
    )
    assert [e.report_id for e in events] == sorted(moved)
    assert all(e.actor == "planner" and "publish-draft" in e.note for e in events)
    merged_cases = [i for i in moved if before[i].grid_code == base.merged_away]
    assert all(after[i].grid_code != base.merged_away for i in merged_cases)


def test_rollback_restores_the_replaced_version_and_moves_cases_back(
    base: Base, world: World, client: TestClient
) -> None:
    before = {r.id: r for r in _rows(world, SNAPSHOT)}
    assert _publish(client, world, base.draft, TODAY).status_code == 200
    r = _rollback(client, world, base.draft)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["mode"] == "withdrawn"  # it came into force today
    assert body["version"]["id"] == world.demo_id
    assert body["version"]["status"] == "published"
    assert body["version"]["effective_to"] is None
    assert body["rolled_back"]["status"] == "retired"
    assert body["rolled_back"]["effective_from"] is None
    assert body["open_cases"]["moved"] > 0
    after = {r.id: r for r in _rows(world, SNAPSHOT)}
    for i, row in after.items():
        assert row.grid_code == before[i].grid_code
        assert row.community_code == before[i].community_code
    assert _locate(client, base, TODAY)["version"]["id"] == world.demo_id
    # the rolled-back version is not published again, nor rolled back twice
    assert _publish(client, world, base.draft, TODAY).status_code == 409
    assert _rollback(client, world, base.draft).status_code == 409


def test_as_of_answers_the_version_in_force_on_each_day_across_publish_and_rollback(
    base: Base, world: World, client: TestClient
) -> None:
    start = TODAY - dt.timedelta(days=10)
    assert _publish(client, world, base.draft, start).status_code == 200
    day = dt.timedelta(days=1)
    assert _locate(client, base, start - day)["version"]["id"] == world.demo_id
    assert _locate(client, base, start)["grid"]["code"] == base.new_code
    r = _rollback(client, world, base.draft)
    assert r.status_code == 200 and r.json()["mode"] == "ended"
    assert r.json()["rolled_back"]["effective_to"] == TODAY.isoformat()
    for when, version, code in (
        (start - day, world.demo_id, base.split),
        (start, base.draft, base.new_code),
        (TODAY - day, base.draft, base.new_code),
        (TODAY, world.demo_id, base.split),
    ):
        answer = _locate(client, base, when)
        assert (answer["version"]["id"], answer["grid"]["code"]) == (version, code), when
    batch = client.post(
        "/v1/locate",
        json={"points": [list(base.point)], "as_of": (TODAY - day).isoformat()},
    ).json()
    assert batch["version"]["id"] == base.draft
    assert batch["results"][0]["grid"]["code"] == base.new_code


def test_a_publish_dated_later_changes_nothing_until_that_day(
    base: Base, world: World, client: TestClient
) -> None:
    later = TODAY + dt.timedelta(days=7)
    before = _rows(world, SNAPSHOT)
    r = _publish(client, world, base.draft, later)
    assert r.status_code == 200, r.text
    assert r.json()["open_cases"] is None
    assert r.json()["replaced"]["status"] == "published"
    assert r.json()["replaced"]["effective_to"] == later.isoformat()
    assert _rows(world, SNAPSHOT) == before
    assert _locate(client, base)["version"]["id"] == world.demo_id
    assert _locate(client, base, later)["version"]["id"] == base.draft
    sweep = client.post(
        "/v1/boundaries/reroute-open-cases", headers=auth(world.keys["operator"])
    )  # the version in force today is still the demo: nothing moves
    assert sweep.status_code == 200 and sweep.json()["moved"] == 0
    r = _rollback(client, world, base.draft)
    assert r.status_code == 200 and r.json()["mode"] == "unscheduled"
    assert r.json()["rolled_back"]["status"] == "draft"
    assert r.json()["version"]["effective_to"] is None
    assert _locate(client, base, later)["version"]["id"] == world.demo_id


def test_open_cases_move_once_when_a_dated_version_comes_into_force(
    base: Base, world: World, client: TestClient
) -> None:
    later = TODAY + dt.timedelta(days=1)
    impact = client.get(
        f"/v1/boundaries/versions/{base.draft}/impact", headers=auth(world.keys["planner"])
    ).json()
    assert _publish(client, world, base.draft, later).status_code == 200
    engine = world.engine()
    with engine.begin() as conn:  # the sweep as it runs on that day
        first = publish.follow_in_force(conn, None, "boundary version in force", later)
    with engine.begin() as conn:
        again = publish.follow_in_force(conn, None, "boundary version in force", later)
    engine.dispose()
    assert first.version_id == base.draft
    assert first.moved == impact["open_cases"]["change_grid"] > 0
    assert again.moved == 0


def test_bad_publish_and_rollback_requests_are_4xx_naming_the_problem(
    base: Base, world: World, client: TestClient
) -> None:
    demo = world.demo_id
    r = _publish(client, world, demo, TODAY)
    assert r.status_code == 409 and "only a draft" in r.json()["message"]
    assert _publish(client, world, base.draft, TODAY, role="operator").status_code == 403
    assert _publish(client, world, base.draft, TODAY, role="reporter").status_code == 403
    r = client.post(
        f"/v1/boundaries/versions/{base.draft}/publish", json={"effective_from": "2026-13-01"}
    )
    assert r.status_code == 401
    for payload, needle in (
        ({"effective_from": "2026-13-01"}, "2026-13-01"),
        ({}, "effective_from"),
        ({"effective_from": "2027-01-01", "extra": 1}, "extra"),
    ):
        r = client.post(
            f"/v1/boundaries/versions/{base.draft}/publish",
            json=payload,
            headers=auth(world.keys["planner"]),
        )
        assert r.status_code == 422 and needle in r.json()["message"], payload
    assert _publish(client, world, 99999, TODAY).status_code == 404
    r = _publish(client, world, base.draft, dt.date(2024, 12, 31))
    assert r.status_code == 409 and "later effective date" in r.json()["message"]
    r = _rollback(client, world, demo)
    assert r.status_code == 409 and "nothing to roll back to" in r.json()["message"]
    assert _rollback(client, world, base.draft).status_code == 409  # a draft
    assert _rollback(client, world, demo, role="operator").status_code == 403
    engine = world.engine()
    with engine.connect() as conn:  # nothing of the above changed a version
        rows = conn.execute(
            text("SELECT id, status, effective_from, effective_to FROM boundary_versions")
        ).all()
    engine.dispose()
    assert {(r.id, r.status) for r in rows} == {
        (demo, "published"),
        (base.draft, "draft"),
        (base.broken, "draft"),
    }


def test_an_area_history_lists_its_versions_and_changes(
    base: Base, world: World, client: TestClient
) -> None:
    assert _publish(client, world, base.draft, TODAY - dt.timedelta(days=3)).status_code == 200
    assert _rollback(client, world, base.draft).status_code == 200

    def history(code: str) -> list[dict[str, Any]]:
        r = client.get(f"/v1/boundaries/areas/{code}/history")
        assert r.status_code == 200, r.text
        return r.json()["versions"]

    split = history(base.split)
    assert [(v["version"]["id"], v["change"]) for v in split] == [
        (world.demo_id, "appeared"),
        (base.draft, "geometry"),
    ]
    assert split[1]["area_changed_m2"] > 0
    assert split[1]["version"]["rolled_back_at"] is not None
    assert split[1]["area_m2"] < split[0]["area_m2"]
    merged = history(base.merged_away)
    assert [(v["version"]["id"], v["change"]) for v in merged] == [
        (world.demo_id, "appeared"),
        (base.draft, "absent"),
    ]
    assert [v["change"] for v in history(base.new_code)] == ["appeared"]
    r = client.get("/v1/boundaries/areas/330411999999999/history")
    assert r.status_code == 404 and "330411999999999" in r.json()["message"]
    assert client.get("/v1/boundaries/areas/abc/history").status_code == 422


def test_locating_under_load_during_a_publish_has_no_failed_request(
    base: Base, world: World
) -> None:
    """Several threads locate (GET and POST) while a planner publishes a draft effective today:
    every request answers 200, and the answers switch to the new version and grid."""
    stop = threading.Event()
    answers: list[tuple[float, int, int | None, str | None]] = []
    errors: list[str] = []
    lock = threading.Lock()
    lon, lat = base.point

    def hammer(url: str, batch: bool) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            while not stop.is_set():
                try:
                    if batch:
                        r = http.post("/v1/locate", json={"points": [[lon, lat]] * 50})
                        body = r.json()
                        code = body["results"][0]["grid"]["code"]
                    else:
                        r = http.get("/v1/locate", params={"lon": lon, "lat": lat})
                        body = r.json()
                        code = body["grid"]["code"]
                    with lock:
                        if r.status_code != 200:
                            errors.append(f"{r.status_code}: {r.text[:200]}")
                        answers.append(
                            (time.monotonic(), r.status_code, body["version"]["id"], code)
                        )
                except Exception as exc:  # every failure is counted
                    with lock:
                        errors.append(repr(exc))

    with serve(world.url) as url:
        threads = [threading.Thread(target=hammer, args=(url, i % 2 == 1)) for i in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        with httpx.Client(base_url=url, timeout=120) as http:
            r = http.post(
                f"/v1/boundaries/versions/{base.draft}/publish",
                json={"effective_from": TODAY.isoformat()},
                headers=auth(world.keys["planner"]),
            )
        published_at = time.monotonic()
        assert r.status_code == 200, r.text
        deadline = published_at + 15
        while time.monotonic() < deadline:
            with lock:
                recent = [a for a in answers if a[0] > published_at + 0.5]
            if len(recent) > 20 and all(a[2] == base.draft for a in recent[-20:]):
                break
            time.sleep(0.2)
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert errors == []
    assert len(answers) > 100
    first, last = answers[0], answers[-1]
    assert (first[2], first[3]) == (world.demo_id, base.split)
    assert (last[2], last[3]) == (base.draft, base.new_code)
    first_new = min(a[0] for a in answers if a[2] == base.draft)
    last_old = max(a[0] for a in answers if a[2] == world.demo_id)
    assert last_old - first_new < 1.0  # only requests already in flight finish on the old one
