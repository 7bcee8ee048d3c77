"""Suggested splits and merges: overloaded grids cut into parts of even workload, light
neighbours of one community joined, emitted as a valid draft a planner can edit and publish,
with the workload spread (CV) before and after as impact measures it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import shapely
from fastapi.testclient import TestClient
from shapely.geometry import box
from sqlalchemy import text

from geo_service.app import create_app
from geo_service.boundaries import versions
from geo_service.metric import local_metric
from geo_service.metric import lonlat_area_m2 as area_m2
from geo_service.planning.splitting import split_polygon
from geo_service.planning.suggest import workload_index
from geo_service.settings import DatabaseSettings, Settings
from tests.conftest import auth
from tests.planning_world import World, build_world, clone, drop


@pytest.fixture(scope="module")
def world(new_database) -> World:  # type: ignore[no-untyped-def]
    return build_world(new_database)


@pytest.fixture(scope="module")
def spare(world: World) -> Iterator[World]:
    """A copy of the world, made before any service connects to it (a template has no users)."""
    copy = clone(world)
    yield copy
    drop(copy)


@pytest.fixture(scope="module")
def client(world: World, spare: World) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(database=DatabaseSettings(url=world.url)))) as c:
        yield c


@pytest.fixture(scope="module")
def suggested(world: World, client: TestClient) -> dict[str, Any]:
    r = client.post(
        "/v1/boundaries/versions/current/suggestions",
        json={"label": "suggested"},
        headers=auth(world.keys["planner"]),
    )
    assert r.status_code == 201, r.text
    return r.json()


def _areas(world: World, vid: int) -> Any:
    engine = world.engine()
    with engine.connect() as conn:
        frame = versions.load_areas(conn, vid)
    engine.dispose()
    return frame.set_index("code")


def test_suggestions_are_a_valid_draft_that_evens_out_the_workload(
    world: World, client: TestClient, suggested: dict[str, Any]
) -> None:
    assert suggested["base"]["id"] == world.demo_id
    assert suggested["splits"] and suggested["merges"]
    cv = suggested["cv"]
    assert cv["workload_index"]["after"] < cv["workload_index"]["before"]
    assert cv["reports"]["after"] < cv["reports"]["before"]
    assert suggested["workload"]["after"]["max"] < suggested["workload"]["before"]["max"]
    draft = suggested["draft"]
    assert draft["status"] == "draft" and draft["label"] == "suggested"
    report = client.get(
        f"/v1/boundaries/versions/{draft['id']}/validation", headers=auth(world.keys["planner"])
    ).json()
    assert report["valid"] is True and report["errors"] == 0
    assert suggested["validation"]["errors"] == 0


def test_split_parts_cover_the_old_grid_and_share_its_households(
    world: World, suggested: dict[str, Any]
) -> None:
    before, after = _areas(world, world.demo_id), _areas(world, suggested["draft"]["id"])
    engine = world.engine()
    with engine.connect() as conn:
        demo_codes = set(
            conn.execute(
                text("SELECT code FROM version_areas WHERE version_id = :v"), {"v": world.demo_id}
            ).scalars()
        )
    engine.dispose()
    options = suggested["options"]
    for split in suggested["splits"]:
        code = split["code"]
        parts = [p["code"] for p in split["parts"]]
        assert parts[0] == code and len(parts) >= 2
        assert split["workload"] > options["split_above"]
        assert not set(parts[1:]) & demo_codes  # fresh numbers
        assert all(p.startswith(code[:12]) for p in parts)  # in the same community
        union = shapely.union_all([after.loc[p].geometry for p in parts])
        old = before.loc[code].geometry
        assert area_m2([shapely.symmetric_difference(union, old)])[0] < 1.0
        assert sum(int(after.loc[p, "households"]) for p in parts) == before.loc[code, "households"]
        assert after.loc[code, "grid_worker"] == before.loc[code, "grid_worker"]
        assert all(after.loc[p].geometry.geom_type in ("Polygon", "MultiPolygon") for p in parts)


def test_merges_join_light_neighbours_of_one_community(
    world: World, suggested: dict[str, Any]
) -> None:
    before, after = _areas(world, world.demo_id), _areas(world, suggested["draft"]["id"])
    options = suggested["options"]
    for merge in suggested["merges"]:
        codes = merge["codes"]
        assert merge["into"] == codes[0] == min(codes)
        assert len({c[:12] for c in codes}) == 1
        assert min(merge["workloads"]) < options["merge_below"]
        assert merge["workload"] <= options["merge_max"] + 1e-9
        for gone in codes[1:]:
            assert gone not in after.index
        union = shapely.union_all([before.loc[c].geometry for c in codes])
        kept = after.loc[merge["into"]].geometry
        assert area_m2([shapely.symmetric_difference(union, kept)])[0] < 1.0
        assert after.loc[merge["into"], "households"] == sum(
            int(before.loc[c, "households"]) for c in codes
        )


def test_the_answer_agrees_with_the_impact_of_the_draft(
    world: World, client: TestClient, suggested: dict[str, Any]
) -> None:
    impact = client.get(
        f"/v1/boundaries/versions/{suggested['draft']['id']}/impact",
        headers=auth(world.keys["planner"]),
    ).json()
    assert impact["workload"]["before"] == suggested["workload"]["before"]
    assert impact["workload"]["after"] == suggested["workload"]["after"]
    split_codes = {s["code"] for s in suggested["splits"]}
    new = {p["code"] for s in suggested["splits"] for p in s["parts"]} - split_codes
    removed = {c for m in suggested["merges"] for c in m["codes"][1:]}
    assert {g["code"] for g in impact["grids"]["new"]} == new
    assert {g["code"] for g in impact["grids"]["removed"]} == removed


def test_the_suggested_draft_can_be_published(spare: World) -> None:
    app = create_app(Settings(database=DatabaseSettings(url=spare.url)))
    with TestClient(app) as c:
        headers = auth(spare.keys["admin"])
        r = c.post("/v1/boundaries/versions/current/suggestions", headers=headers)
        assert r.status_code == 201, r.text
        draft = r.json()["draft"]["id"]
        r = c.post(
            f"/v1/boundaries/versions/{draft}/publish",
            json={"effective_from": dt.date.today().isoformat()},
            headers=headers,
        )
        assert r.status_code == 200, r.text
        assert r.json()["open_cases"]["moved"] > 0


def test_thresholds_that_change_nothing_are_refused_with_the_reason(
    world: World, client: TestClient
) -> None:
    r = client.post(
        f"/v1/boundaries/versions/{world.demo_id}/suggestions",
        json={"split_above": 1000, "merge_below": 0.001},
        headers=auth(world.keys["admin"]),
    )
    assert r.status_code == 422 and "nothing to suggest" in r.json()["message"]


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        ({"report_weight": 2}, "report_weight"),
        ({"merge_below": 1.5, "merge_max": 1.2}, "merge_below"),
        ({"split_above": 0.9}, "split_above"),
        ({"max_parts": 20}, "max_parts"),
        ({"label": ""}, "label"),
        ({"since": "last week"}, "last week"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_suggestion_requests_are_422_naming_the_field(
    world: World, client: TestClient, payload: dict[str, Any], needle: str
) -> None:
    r = client.post(
        "/v1/boundaries/versions/current/suggestions",
        json=payload,
        headers=auth(world.keys["planner"]),
    )
    assert r.status_code == 422 and needle in r.json()["message"], r.text


def test_only_planners_and_admins_ask_for_suggestions(world: World, client: TestClient) -> None:
    url = "/v1/boundaries/versions/current/suggestions"
    assert client.post(url, headers=auth(world.keys["operator"])).status_code == 403
    assert client.post(url).status_code == 401
    assert (
        client.post(
            "/v1/boundaries/versions/99999/suggestions", headers=auth(world.keys["planner"])
        ).status_code
        == 404
    )


def test_a_split_balances_reports_and_area_between_the_parts() -> None:
    """A 1 km x 0.5 km grid with every report in its western tenth: cut where half the
    workload (reports weigh half, households by area the other half) lies on each side."""
    grid = box(120.70, 30.70, 120.7104, 30.7045)
    to_m = local_metric(grid.bounds)
    rng = np.random.default_rng(1)
    lons = rng.uniform(120.70, 120.70104, 200)
    lats = rng.uniform(30.70, 30.7045, 200)
    only_area = split_polygon(grid, 2, to_m, lons, lats, report_share=0.0)
    assert only_area is not None
    assert only_area.area_share == pytest.approx([0.5, 0.5], abs=1e-6)
    mixed = split_polygon(grid, 2, to_m, lons, lats, report_share=0.5)
    assert mixed is not None
    west = next(p for p in mixed.parts if p.bounds[0] == pytest.approx(120.70))
    inside = shapely.contains_xy(west, lons, lats).sum()
    share = next(s for p, s in zip(mixed.parts, mixed.area_share, strict=True) if p is west)
    assert 0.5 * inside / 200 + 0.5 * share == pytest.approx(0.5, abs=0.01)
    assert area_m2([shapely.symmetric_difference(shapely.union_all(mixed.parts), grid)])[0] < 1e-3
    assert split_polygon(grid, 2, to_m, lons, lats, 0.5, min_area_m2=1e9) is None


def test_workload_index_weighs_reports_and_households_around_an_average_of_one() -> None:
    w = workload_index([0, 10, 20], [100, 100, 400], report_weight=0.5)
    assert w == pytest.approx([0.5 * 0 + 0.5 * 0.5, 0.5 * 1 + 0.5 * 0.5, 0.5 * 2 + 0.5 * 2])
    assert workload_index([0, 0], [1, 3], 0.5) == pytest.approx([0.5, 1.5])  # no reports
