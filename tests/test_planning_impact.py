"""Impact of a draft against the version in force: which grids change (by code and by land),
how many reports and open cases would change grid (checked against PostGIS ST_Covers with the
lowest-code tie-break), the workload per grid worker, the role rules, and the diff map page."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import shapely
from fastapi.testclient import TestClient
from sqlalchemy import text

from geo_service.app import create_app
from geo_service.maps.base import remote_assets
from geo_service.metric import lonlat_area_m2 as area_m2
from geo_service.reports.queries import OPEN_STATUSES
from geo_service.reports.schemas import CHINA_TZ
from geo_service.settings import DatabaseSettings, Settings
from tests.conftest import auth
from tests.planning_world import World, build_world, busiest_grids, plan, store_draft

OWNER = text(
    "SELECT r.id, r.status, (SELECT min(va.code) FROM version_areas va "
    "JOIN areas a ON a.id = va.area_id WHERE va.version_id = :v AND va.level = 'grid' "
    "AND ST_Covers(a.geom, r.geom)) AS code FROM reports r ORDER BY r.id"
)


@dataclass(frozen=True)
class Setup:
    world: World
    draft: int
    split: dict[str, int]
    merge: list[str]
    attribute_only: str
    new_codes: set[str]


def _neighbours(world: World, avoid: set[str]) -> list[str]:
    """Two grids of one community sharing an edge, none of them in ``avoid``."""
    engine = world.engine()
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT a.code AS a, b.code AS b FROM version_areas x "
                "JOIN areas a ON a.id = x.area_id "
                "JOIN version_areas y ON y.version_id = x.version_id AND y.level = 'grid' "
                "JOIN areas b ON b.id = y.area_id WHERE x.version_id = :v AND x.level = 'grid' "
                "AND a.parent_code = b.parent_code AND a.code < b.code "
                "AND NOT a.code = ANY(:avoid) AND NOT b.code = ANY(:avoid) "
                "AND ST_Length(ST_Intersection(a.geom, b.geom)) > 0.001 ORDER BY a.code LIMIT 1"
            ),
            {"v": world.demo_id, "avoid": sorted(avoid)},
        ).one()
    engine.dispose()
    return [row.a, row.b]


@pytest.fixture(scope="module")
def setup(new_database) -> Setup:  # type: ignore[no-untyped-def]
    """The demo with its two busiest grids split (in 2 and 3), two neighbours merged and one
    grid's households changed, stored as a draft."""
    world = build_world(new_database)
    busy = busiest_grids(world, 3)
    split = {busy[0]: 2, busy[1]: 3}
    merge = _neighbours(world, set(busy))
    edited = plan(world, split, [merge])
    frame = edited.frame
    attribute_only = busy[2]
    row = frame.index[frame["code"] == attribute_only][0]
    frame.loc[row, "households"] = int(frame.loc[row, "households"]) + 10
    frame.loc[row, "area_id"] = None  # its content changed: store it as a new row
    draft = store_draft(world, frame, "impact-draft")
    new_codes = {p["code"] for s in edited.splits for p in s["parts"]} - set(split)
    return Setup(world, draft, split, merge, attribute_only, new_codes)


@pytest.fixture(scope="module")
def client(setup: Setup) -> Iterator[TestClient]:
    app = create_app(Settings(database=DatabaseSettings(url=setup.world.url)))
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def impact(setup: Setup, client: TestClient) -> dict[str, Any]:
    r = client.get(
        f"/v1/boundaries/versions/{setup.draft}/impact", headers=auth(setup.world.keys["planner"])
    )
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture(scope="module")
def owners(setup: Setup) -> dict[str, Any]:
    """Per report: status, and the grid that owns it under the demo and under the draft."""
    engine = setup.world.engine()
    with engine.connect() as conn:
        before = conn.execute(OWNER, {"v": setup.world.demo_id}).all()
        after = conn.execute(OWNER, {"v": setup.draft}).all()
    engine.dispose()
    return {
        "status": np.array([r.status for r in before], dtype=object),
        "before": np.array([r.code for r in before], dtype=object),
        "after": np.array([r.code for r in after], dtype=object),
    }


def test_new_removed_and_changed_grids_are_named_by_code(setup: Setup, impact) -> None:  # type: ignore[no-untyped-def]
    grids = impact["grids"]
    assert {g["code"] for g in grids["new"]} == setup.new_codes
    assert [g["code"] for g in grids["removed"]] == [setup.merge[1]]
    changed = {g["code"]: g for g in grids["changed"]}
    assert set(changed) == {*setup.split, setup.merge[0], setup.attribute_only}
    for code in [*setup.split, setup.merge[0]]:
        assert changed[code]["geometry_changed"] is True
    attr = changed[setup.attribute_only]
    assert attr["geometry_changed"] is False
    assert attr["attributes_changed"] == ["households"]
    assert attr["households_after"] == attr["households_before"] + 10
    summary = grids["summary"]
    assert summary["unchanged"] == 2988 - len(changed) - 1
    assert grids["levels"]["grid"]["new"] == len(setup.new_codes)
    assert grids["levels"]["community"] == {"new": 0, "removed": 0, "changed": 0, "unchanged": 95}


def test_land_flows_from_split_and_merged_grids_to_their_new_owners(setup: Setup, impact) -> None:  # type: ignore[no-untyped-def]
    flows = impact["grids"]["flows"]
    by_pair = {(f["from"], f["to"]): f for f in flows}
    merged_away = by_pair[(setup.merge[1], setup.merge[0])]
    removed = next(g for g in impact["grids"]["removed"] if g["code"] == setup.merge[1])
    assert merged_away["area_m2"] == pytest.approx(removed["area_m2"], rel=1e-6)
    assert merged_away["households_est"] == pytest.approx(removed["households"], rel=1e-6)
    new_area = sum(g["area_m2"] for g in impact["grids"]["new"])
    from_split = sum(f["area_m2"] for f in flows if f["from"] in setup.split)
    assert from_split == pytest.approx(new_area, rel=1e-6)
    # no land moves between grids that did not change
    touched = {*setup.split, *setup.merge, *setup.new_codes}
    assert all(f["from"] in touched and f["to"] in touched for f in flows)


def test_reports_and_open_cases_changing_grid_are_those_postgis_moves(impact, owners) -> None:  # type: ignore[no-untyped-def]
    moved = owners["before"] != owners["after"]
    is_open = np.isin(owners["status"], OPEN_STATUSES)
    assert moved.sum() > 0
    assert impact["reports"]["total"] == len(moved)
    assert impact["reports"]["change_grid"] == int(moved.sum())
    assert impact["open_cases"]["total"] == int(is_open.sum())
    assert impact["open_cases"]["change_grid"] == int((moved & is_open).sum())
    assert 0 <= impact["open_cases"]["change_unit"] <= impact["open_cases"]["change_grid"]


def test_workload_before_and_after_is_reports_per_grid_worker(impact, owners) -> None:  # type: ignore[no-untyped-def]
    for side, n_grids in (("before", 2988), ("after", impact["workload"]["after"]["grids"])):
        codes = owners[side][owners[side] != None]  # noqa: E711
        _, counts = np.unique(codes.astype(str), return_counts=True)
        counts = np.r_[counts, np.zeros(n_grids - len(counts))]
        stats = impact["workload"][side]
        assert stats["total"] == len(codes)
        assert stats["mean"] == pytest.approx(counts.mean(), abs=1e-3)
        assert stats["max"] == counts.max()
        assert stats["cv"] == pytest.approx(counts.std() / counts.mean(), abs=1e-4)
    assert impact["workload"]["after"]["grids"] == 2988 + 3 - 1  # +1 and +2 parts, one merged
    assert impact["workload"]["after"]["max"] < impact["workload"]["before"]["max"]


def test_since_counts_only_reports_from_that_beijing_day(setup: Setup, client: TestClient) -> None:
    day = dt.date.today() - dt.timedelta(days=60)
    r = client.get(
        f"/v1/boundaries/versions/{setup.draft}/impact",
        params={"since": day.isoformat()},
        headers=auth(setup.world.keys["operator"]),
    )
    assert r.status_code == 200, r.text
    engine = setup.world.engine()
    with engine.connect() as conn:
        expected = conn.execute(
            text("SELECT count(*) FROM reports WHERE reported_at >= :t"),
            {"t": dt.datetime.combine(day, dt.time(0), CHINA_TZ)},
        ).scalar_one()
    engine.dispose()
    assert 0 < r.json()["reports"]["total"] == expected


@pytest.mark.parametrize("role", ["reporter"])
def test_impact_is_for_planners_operators_and_admins(
    setup: Setup, client: TestClient, role: str
) -> None:
    url = f"/v1/boundaries/versions/{setup.draft}/impact"
    assert client.get(url, headers=auth(setup.world.keys[role])).status_code == 403
    assert client.get(url).status_code == 401
    assert client.get(url, headers=auth(setup.world.keys["admin"])).status_code == 200


def test_bad_impact_requests_are_4xx_naming_the_problem(setup: Setup, client: TestClient) -> None:
    headers = auth(setup.world.keys["planner"])
    r = client.get("/v1/boundaries/versions/99999/impact", headers=headers)
    assert r.status_code == 404 and "99999" in r.json()["message"]
    r = client.get(f"/v1/boundaries/versions/{setup.world.demo_id}/impact", headers=headers)
    assert r.status_code == 422 and "base itself" in r.json()["message"]
    r = client.get(
        f"/v1/boundaries/versions/{setup.draft}/impact",
        params={"since": "yesterday"},
        headers=headers,
    )
    assert r.status_code == 422 and "since" in r.json()["message"]


def test_a_vertex_added_on_an_edge_is_not_a_change(setup: Setup, impact) -> None:  # type: ignore[no-untyped-def]
    """Splitting inserts each cut's ends into the neighbours' rings: stored as new rows, their
    outline is the same, and impact counts them unchanged."""
    engine = setup.world.engine()
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT b.code, ST_AsBinary(a.geom) AS before, ST_AsBinary(d.geom) AS after "
                "FROM version_areas b JOIN areas a ON a.id = b.area_id "
                "JOIN version_areas x ON x.code = b.code AND x.version_id = :d "
                "JOIN areas d ON d.id = x.area_id "
                "WHERE b.version_id = :b AND x.area_id <> b.area_id"
            ),
            {"b": setup.world.demo_id, "d": setup.draft},
        ).all()
    engine.dispose()
    snapped = [
        r for r in rows if r.code not in {*setup.split, setup.merge[0], setup.attribute_only}
    ]
    assert snapped, "the split should have touched a neighbour's ring"
    changed = {g["code"] for g in impact["grids"]["changed"]}
    assert not changed & {r.code for r in snapped}
    for r in snapped:
        a, b = shapely.from_wkb(bytes(r.before)), shapely.from_wkb(bytes(r.after))
        assert not shapely.equals_exact(a, b, 0.0)
        assert area_m2([shapely.symmetric_difference(a, b)])[0] < 1e-3


def test_diff_map_draws_the_changes_from_local_assets_only(
    setup: Setup, client: TestClient
) -> None:
    anonymous = client.get(f"/maps/versions/{setup.draft}/diff", follow_redirects=False)
    assert anonymous.status_code == 303  # a page: sign in first
    assert anonymous.headers["location"].startswith("/login?next=%2Fmaps%2Fversions%2F")
    reporter = client.get(f"/maps/versions/{setup.draft}/diff",
                          headers=auth(setup.world.keys["reporter"]))
    assert reporter.status_code == 403
    planner = auth(setup.world.keys["planner"])
    r = client.get(f"/maps/versions/{setup.draft}/diff", headers=planner)
    assert r.status_code == 200
    page = r.text
    assert remote_assets(page) == []
    assert "/static/vendor/leaflet" in page
    for code in [*setup.new_codes, setup.merge[1]]:
        assert code in page
    assert "撤销的网格" in page and "新增网格" in page
    assert '<html lang="zh-CN">' in page
    assert client.get("/maps/versions/99999/diff", headers=planner).status_code == 404
    assert client.get("/maps/versions/99999/diff", follow_redirects=False).status_code == 303
