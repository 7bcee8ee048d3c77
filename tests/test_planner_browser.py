"""The planner's workbench in a real headless Chromium: a planner signs in, starts a draft from
the version in force, splits a grid by a line drawn on the map, drags a shared vertex (every
grid sharing it follows: PostGIS finds the community still tiled, no gap, no overlap), sees
the impact figures change, publishes, and ``/v1/locate`` answers the new grid. Anonymous
visitors are sent to sign in, other roles get the 403 page, and the browser asks nothing of any
host but the loopback. Screenshots at 1920x1080 go to ``tests/artifacts/``."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import numpy as np
import pytest
import shapely
from sqlalchemy import text

from geo_service.boundaries import versions
from geo_service.db.engine import make_engine
from geo_service.planning.vertices import moved
from tests.accounts_support import browser_sign_in, make_user
from tests.browser_support import Watch, shot, watched_page
from tests.planning_world import World, build_world, drop
from tests.support import serve

PASSWORD = "Planner-" + secrets.token_hex(6)

TILING = text("""
    WITH kids AS (
        SELECT a.code, a.geom FROM version_areas va JOIN areas a ON a.id = va.area_id
        WHERE va.version_id = :vid AND va.level = 'grid' AND a.parent_code = :community),
    parent AS (
        SELECT a.geom FROM version_areas va JOIN areas a ON a.id = va.area_id
        WHERE va.version_id = :vid AND va.code = :community)
    SELECT ST_Area((SELECT ST_Union(geom) FROM kids)::geography) AS union_m2,
           ST_Area((SELECT geom FROM parent)::geography) AS community_m2,
           ST_Area(ST_SymDifference((SELECT ST_Union(geom) FROM kids),
                                    (SELECT geom FROM parent))::geography) AS mismatch_m2,
           (SELECT count(*) FROM kids x JOIN kids y ON x.code < y.code
             WHERE ST_Overlaps(x.geom, y.geom)) AS overlapping,
           (SELECT bool_and(ST_IsValid(geom)) FROM kids) AS valid
""")


@pytest.fixture(scope="module")
def world(new_database) -> Iterator[World]:  # type: ignore[no-untyped-def]
    """The demo in force with 1,500 reports, and a planner and an operator account."""
    w = build_world(new_database, reports=1500)
    engine = w.engine()
    try:
        make_user(engine, "planner1", "planner", PASSWORD)
        make_user(engine, "operator1", "operator", PASSWORD)
    finally:
        engine.dispose()
    yield w
    drop(w)


@pytest.fixture(scope="module")
def base_url(world: World) -> Iterator[str]:
    with serve(world.url) as url:
        yield url


@pytest.fixture
def page(browser: Any) -> Iterator[tuple[Any, Watch]]:
    """A watched 1920x1080 page."""
    with watched_page(browser, http_errors=False) as pw:
        yield pw


def planner_shot(pg: Any, name: str) -> None:
    """Save ``tests/artifacts/planner_NAME.png``."""
    shot(pg, f"planner_{name}")


def idle(pg: Any, refreshed_after: int = 0) -> None:
    """Wait until the page has no request in flight and refreshed more than given times."""
    pg.wait_for_function(
        f"() => window.plannerIdle && window.plannerIdle() && "
        f"window.planner.refreshed > {refreshed_after}", timeout=60_000)
    pg.wait_for_timeout(300)  # MapLibre draws the new data
    pg.wait_for_function("() => window.plannerIdle()", timeout=60_000)


def refreshed(pg: Any) -> int:
    return int(pg.evaluate("window.planner.refreshed || 0"))


def pixel(pg: Any, lon: float, lat: float) -> tuple[float, float]:
    x, y = pg.evaluate(
        "([lon, lat]) => { const p = window.geoMap.project([lon, lat]);"
        " const r = window.geoMap.getCanvas().getBoundingClientRect();"
        " return [r.left + p.x, r.top + p.y]; }", [lon, lat])
    return float(x), float(y)


def figure(pg: Any, name: str) -> str:
    return str(pg.locator(f'#pl-impact dd[data-figure="{name}"]').inner_text())


def tiles(world: World, vid: int, community: str) -> Any:
    engine = world.engine()
    try:
        with engine.connect() as conn:
            return conn.execute(TILING, {"vid": vid, "community": community}).one()
    finally:
        engine.dispose()


@dataclass(frozen=True)
class Plan:
    """Where the browser works: a grid to split, and an inner vertex of its community shared by
    three or more grids, with a target a little way off that keeps every grid valid."""

    community: str
    grid: str
    grid_geom: Any
    vertex: tuple[float, float]
    sharing: list[str]
    target: tuple[float, float]


def make_plan(world: World) -> Plan:
    engine = make_engine(world.url, pool_size=1)
    try:
        with engine.connect() as conn:
            areas = versions.load_areas(conn, world.demo_id)
    finally:
        engine.dispose()
    grids = areas[areas["level"] == "grid"]
    communities = areas[areas["level"] == "community"].set_index("code")
    for community, kids in sorted(grids.groupby("parent_code"), key=lambda kv: -len(kv[1])):
        boundary = shapely.boundary(communities.geometry[community])
        owners: dict[tuple[float, float], list[str]] = {}
        for code, geom in zip(kids["code"], kids.geometry, strict=True):
            for xy in {tuple(c) for c in shapely.get_coordinates(geom).tolist()}:
                owners.setdefault(xy, []).append(code)
        by_code = dict(zip(kids["code"], kids.geometry, strict=True))
        for xy, codes in sorted(owners.items()):
            if len(codes) < 3 or shapely.distance(boundary, shapely.Point(xy)) < 1e-6:
                continue
            split_grid = next((c for c in sorted(by_code) if c not in codes), None)
            if split_grid is None:
                continue
            centre = np.asarray(shapely.centroid(by_code[codes[0]]).coords[0])
            v = np.asarray(xy)
            step = (centre - v) / np.linalg.norm(centre - v) * 0.00012  # about 12 m
            target = (float(v[0] + step[0]), float(v[1] + step[1]))
            if all(shapely.is_valid(moved(by_code[c], xy, target)) for c in codes):
                return Plan(community, split_grid, by_code[split_grid], xy, sorted(codes), target)
    raise AssertionError("no inner vertex shared by three grids in the demo")


def test_a_planner_splits_moves_a_shared_vertex_sees_the_impact_and_publishes(
    world: World, base_url: str, page: tuple[Any, Watch]
) -> None:
    pg, watch = page
    plan = make_plan(world)
    browser_sign_in(pg, base_url, "planner1", PASSWORD, next_path="/planner")
    assert urlparse(pg.url).path == "/planner"
    assert pg.evaluate("document.documentElement.lang") == "zh-CN"
    idle(pg)
    token = pg.evaluate("document.querySelector('meta[name=csrf-token]').content")
    assert len(token) >= 16
    planner_shot(pg, "1_signed_in")

    # a draft from the version in force
    before = refreshed(pg)
    pg.get_by_role("button", name="从现行版本新建草稿").click()
    pg.wait_for_function("window.planner.working !== window.planner.inForce")
    idle(pg, before)
    draft = int(pg.evaluate("window.planner.working"))
    assert figure(pg, "新增网格") == "0"

    # look at the grid to split, select it, draw a line across it
    minx, miny, maxx, maxy = plan.grid_geom.bounds
    pad = 0.6 * max(maxx - minx, maxy - miny)
    before = refreshed(pg)
    pg.evaluate(f"window.geoMap.fitBounds([[{minx - pad}, {miny - pad}], [{maxx + pad}, "
                f"{maxy + pad}]], {{animate: false}})")
    pg.wait_for_function(f"window.planner.grids.features.some(f => f.properties.code === "
                         f"'{plan.grid}')", timeout=30_000)
    inside = shapely.point_on_surface(plan.grid_geom)
    pg.get_by_role("button", name="选择网格").click()
    pg.mouse.click(*pixel(pg, inside.x, inside.y))
    pg.wait_for_function(f"window.planner.selected === '{plan.grid}'")
    assert plan.grid in pg.locator("#pl-attrs-title").inner_text()
    pg.get_by_role("button", name="画线拆分").click()
    y = inside.y
    a = pixel(pg, minx - 0.15 * (maxx - minx), y)
    b = pixel(pg, maxx + 0.15 * (maxx - minx), y)
    pg.mouse.click(*a)
    pg.wait_for_timeout(200)
    pg.mouse.click(*b)
    pg.wait_for_timeout(200)
    pg.mouse.click(*b)  # a click on the last point finishes the line
    pg.wait_for_function("window.planner.lastSplit || window.planner.lastError", timeout=30_000)
    assert pg.evaluate("window.planner.lastError") is None
    pieces = pg.evaluate("window.planner.lastSplit")
    assert len(pieces) >= 2
    idle(pg, before)
    assert figure(pg, "新增网格") == str(len(pieces))
    assert figure(pg, "撤销网格") == "1"
    changed_after_split = int(figure(pg, "变更网格"))
    planner_shot(pg, "2_split")

    # drag the shared vertex: every grid through it follows
    vx, vy = plan.vertex
    pad = 0.004
    pg.evaluate(f"window.geoMap.fitBounds([[{vx - pad}, {vy - pad}], [{vx + pad}, {vy + pad}]],"
                " {animate: false})")
    pg.get_by_role("button", name="拖动共享顶点").click()
    pg.wait_for_function(
        f"window.planner.grids.features.some(f => f.properties.code === '{plan.sharing[0]}')"
        " && window.planner.vertexCount > 0", timeout=30_000)
    pg.wait_for_timeout(500)
    before = refreshed(pg)
    start, end = pixel(pg, vx, vy), pixel(pg, *plan.target)
    pg.mouse.move(*start)
    pg.mouse.down()
    for k in range(1, 6):
        pg.mouse.move(start[0] + (end[0] - start[0]) * k / 5,
                      start[1] + (end[1] - start[1]) * k / 5)
    pg.mouse.up()
    pg.wait_for_function("window.planner.lastMove || window.planner.lastError", timeout=30_000)
    assert pg.evaluate("window.planner.lastError") is None
    move = pg.evaluate("window.planner.lastMove")
    assert sorted(g["code"] for g in move["grids"]) == plan.sharing
    assert move["from"] == list(plan.vertex)
    idle(pg, before)
    row = tiles(world, draft, plan.community)
    assert row.mismatch_m2 < 0.01 and row.overlapping == 0 and row.valid
    assert abs(row.union_m2 - row.community_m2) < 0.01
    assert int(figure(pg, "变更网格")) > changed_after_split
    problems = pg.evaluate("window.planner.validation")
    assert problems["errors"] == 0, problems["problems"][:3]
    planner_shot(pg, "3_vertex_moved")

    # publish today; the locator answers the new grid
    before = refreshed(pg)
    pg.get_by_role("button", name="发布", exact=True).click()
    pg.wait_for_function("window.planner.published || window.planner.lastError", timeout=60_000)
    assert pg.evaluate("window.planner.lastError") is None
    idle(pg, before)
    assert pg.evaluate("window.planner.inForce") == draft
    planner_shot(pg, "4_published")
    engine = world.engine()
    try:
        with engine.connect() as conn:
            grids = versions.load_areas(conn, draft, ("grid",)).set_index("code")
    finally:
        engine.dispose()
    point = shapely.point_on_surface(grids.geometry[pieces[0]])
    r = httpx.get(f"{base_url}/v1/locate", params={"lon": point.x, "lat": point.y})
    assert r.status_code == 200 and r.json()["grid"]["code"] == pieces[0]
    assert watch.problems == []


def test_the_workbench_and_the_diff_page_need_a_planner_or_operator_session(
    world: World, base_url: str, page: tuple[Any, Watch]
) -> None:
    pg, _ = page
    anonymous = httpx.get(f"{base_url}/planner", follow_redirects=False)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/login?next=%2Fplanner"
    diff = httpx.get(f"{base_url}/maps/versions/{world.demo_id}/diff", follow_redirects=False)
    assert diff.status_code == 303
    browser_sign_in(pg, base_url, "operator1", PASSWORD)
    r = pg.goto(f"{base_url}/planner")
    assert r.status == 403 and "无权访问" in pg.content()
    listed = pg.evaluate("fetch('/v1/boundaries/versions').then(r => r.json())")
    ids = [v["id"] for v in listed["versions"] if v["id"] != world.demo_id]
    if ids:  # a version to compare with the one in force: the operator's session opens it
        r = pg.goto(f"{base_url}/maps/versions/{ids[0]}/diff?against={world.demo_id}")
        assert r.status == 200
        assert pg.evaluate("document.documentElement.lang") == "zh-CN"
        pg.wait_for_selector(".gs-title")
        planner_shot(pg, "diff_map")


def test_a_planner_starts_a_draft_from_an_uploaded_file(
    world: World, base_url: str, page: tuple[Any, Watch], tmp_path: Path
) -> None:
    from tests.layouts import small_layout

    pg, watch = page
    path = tmp_path / "layout.geojson"
    frame = small_layout()
    first_grid = frame.index[frame["code"] == "330411100001001"][0]
    minx, miny, maxx, maxy = frame.geometry[first_grid].bounds
    frame.loc[first_grid, "geometry"] = shapely.box(minx, miny, maxx - 0.001, maxy)  # a gap
    frame.to_file(path)
    browser_sign_in(pg, base_url, "planner1", PASSWORD, next_path="/planner")
    idle(pg)
    first = int(pg.evaluate("window.planner.working"))
    pg.set_input_files("#pl-upload-file", str(path))
    assert pg.locator("#pl-upload-name").inner_text() == "layout.geojson"
    before = refreshed(pg)
    pg.get_by_role("button", name="上传", exact=True).click()
    pg.wait_for_function(f"window.planner.working !== {first} || window.planner.lastError")
    assert pg.evaluate("window.planner.lastError") is None
    idle(pg, before)
    working = pg.evaluate("window.planner.versions.find(v => v.id === window.planner.working)")
    assert working["status"] == "draft" and working["label"].startswith("上传-")
    assert pg.locator("#pl-timeline li.working").count() == 1
    # the gap is drawn where it is, named in Chinese with its area, and listed as an error
    before = refreshed(pg)
    pg.evaluate(f"window.geoMap.fitBounds([[{minx - 0.004}, {miny - 0.004}], "
                f"[{maxx + 0.01}, {maxy + 0.004}]], {{animate: false}})")
    pg.wait_for_function("window.planner.grids.features.length >= 4", timeout=30_000)
    pg.wait_for_timeout(500)
    report = pg.evaluate("window.planner.validation")
    assert [p["kind"] for p in report["problems"] if p["severity"] == "error"] == ["gap"]
    marker = pg.locator(".pl-marker.error").first.inner_text()
    assert marker.startswith("缝隙") and "平方米" in marker
    assert "错误：缝隙" in pg.locator("#pl-problems li.error").first.inner_text()
    drawn = pg.evaluate("window.geoMap.queryRenderedFeatures({layers: ['problems-fill']}).length")
    assert drawn >= 1
    assert before <= refreshed(pg)
    planner_shot(pg, "5_upload_with_a_gap")
    assert watch.problems == []
