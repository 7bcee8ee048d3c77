"""Operator maps in a real headless Chromium: every page draws features from local assets only,
shows a legend, a layer switcher and hover details (grid code, unit, counts) that agree with the
analytics API, reloads with new filters, and the browser logs no error and fails no request.

Chromium runs with ``--headless --no-sandbox --disable-gpu --disable-background-networking``
plus ``--use-angle=swiftshader --enable-unsafe-swiftshader`` so MapLibre gets software WebGL
without a GPU. Every request to a host other than the loopback is aborted and fails the test.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlparse

import geopandas as gpd
import httpx
import numpy as np
import pytest
import shapely
from fastapi.testclient import TestClient

from geo_service.locator import Locator
from geo_service.maps.base import operator_map, remote_assets, render_page
from geo_service.maps.controls import Panel
from geo_service.maps.layers import geojson_layer
from geo_service.settings import PROJECT_ROOT
from tests.browser_support import Watch, no_problems, shot, watched_page
from tests.conftest import auth

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Place:
    """A grid and the point in it where reports of one category were filed."""

    code: str
    lon: float
    lat: float
    category: str


def _body(lon: float, lat: float, category: str, at: dt.datetime, ext: str) -> dict[str, Any]:
    return {
        "channel": "grid_app",
        "category": category,
        "description": "井盖缺失",
        "reported_at": at.isoformat(),
        "location": {"lon": lon, "lat": lat, "crs": "wgs84"},
        "reporter": {"name": "王芳", "phone": "13700000000"},
        "external_id": ext,
    }


@dataclass(frozen=True)
class Filed:
    """Where this module's reports went: clusters of 12, and single reports."""

    clusters: list[Place]
    singles: list[Place]


@pytest.fixture(scope="module")
def filed(client: TestClient, keys: dict[str, str], demo_locator: Locator) -> Filed:
    """Eight clusters of 12 reports (sanitation in four grids, safety hazards in four) and
    60 single reports in 60 other grids, filed through the bulk intake with an operator key."""
    rng = np.random.default_rng(4)
    grids = demo_locator.grids
    order = rng.permutation(len(grids))
    run = uuid.uuid4().hex[:8]
    clusters, singles, bodies = [], [], []
    for i, row in enumerate(order[:8]):
        g = grids.iloc[row]
        p = g.geometry.representative_point()
        category = "sanitation" if i < 4 else "safety_hazard"
        clusters.append(Place(g["code"], p.x, p.y, category))
        for j in range(12):
            at = NOW - dt.timedelta(minutes=int(rng.integers(5, 2 * 24 * 60)))
            bodies.append(_body(p.x + 2e-6 * j, p.y, category, at, f"{run}-{i}-{j}"))
    for j, row in enumerate(order[8:68]):
        g = grids.iloc[row]
        p = g.geometry.representative_point()
        singles.append(Place(g["code"], p.x, p.y, "facility_damage"))
        at = NOW - dt.timedelta(hours=3)
        bodies.append(_body(p.x, p.y, "facility_damage", at, f"{run}-s{j}"))
    r = client.post("/v1/reports:bulk", json=bodies, headers=auth(keys["operator"]))
    assert r.status_code == 200, r.text
    assert {i["status"] for i in r.json()["items"]} == {"stored"}
    return Filed(clusters, singles)


@pytest.fixture(scope="module")
def clusters(filed: Filed) -> list[Place]:
    return filed.clusters


# --------------------------------------------------------------------------- browser


@pytest.fixture
def page(browser: Any) -> Iterator[tuple[Any, Watch]]:
    """A fresh watched 1400x1000 page (any HTTP error is a problem)."""
    with watched_page(browser, 1400, 1000) as pw:
        yield pw


LEAFLET_MAP = "Object.values(window).find(v => v instanceof L.Map)"
LEAFLET_PIXEL = (
    f"(lon, lat) => {{ const m = {LEAFLET_MAP}; const p = m.latLngToContainerPoint([lat, lon]);"
    " const r = m.getContainer().getBoundingClientRect(); return [r.left + p.x, r.top + p.y]; }"
)
MAPLIBRE_PIXEL = (
    "(lon, lat) => { const p = window.geoMap.project([lon, lat]);"
    " const r = window.geoMap.getCanvas().getBoundingClientRect();"
    " return [r.left + p.x, r.top + p.y]; }"
)


def open_leaflet(pg: Any, url: str) -> int:
    """Load a folium page; the number of interactive vector paths drawn."""
    pg.goto(url, wait_until="load")
    pg.wait_for_function("document.querySelectorAll('path.leaflet-interactive').length > 0")
    return int(pg.evaluate("document.querySelectorAll('path.leaflet-interactive').length"))


def hover_lonlat(pg: Any, lon: float, lat: float) -> str:
    """Move the pointer over a place on the Leaflet map; the tooltip's text."""
    x, y = pg.evaluate(f"([lon, lat]) => ({LEAFLET_PIXEL})(lon, lat)", [lon, lat])
    pg.mouse.move(x, y)
    # one tooltip: the feature under the pointer (a previous one fades out within 200 ms)
    pg.wait_for_function("document.querySelectorAll('.leaflet-tooltip .gs-hover').length === 1")
    return str(pg.locator(".leaflet-tooltip .gs-hover").inner_text())


def switch_layer(pg: Any, name: str) -> None:
    """Pick a layer in Leaflet's layer switcher by its label."""
    pg.locator(".leaflet-control-layers label", has_text=name).locator("input").click()


def visible_cluster(pg: Any, clusters: list[Place], js_pixel: str) -> Place:
    """A cluster whose place on screen is the map itself (not under the panel or legend)."""
    for c in clusters:
        hit = pg.evaluate(
            f"([lon, lat]) => {{ const [x, y] = ({js_pixel})(lon, lat);"
            " const e = document.elementFromPoint(x, y);"
            " return !!e && !e.closest('.gs-panel, .leaflet-control, .maplibregl-ctrl'); }",
            [c.lon, c.lat],
        )
        if hit:
            return c
    raise AssertionError("every cluster is hidden behind a panel")


def api(live_server: str, path: str, **params: Any) -> dict[str, Any]:
    r = httpx.get(f"{live_server}{path}", params=params, timeout=60)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


# --------------------------------------------------------------------------- tests


def test_heat_page_draws_the_heat_cells_the_api_serves(
    page: tuple[Any, Watch], live_server: str, clusters: list[Place]
) -> None:
    pg, watch = page
    drawn = open_leaflet(pg, f"{live_server}/maps/heat")
    cells = api(live_server, "/v1/analytics/heat", res=8)["features"]
    assert drawn == len(cells) > 0
    assert pg.evaluate("document.documentElement.lang") == "zh-CN"
    legend = pg.locator(".gs-legend").inner_text()
    assert "H3 六边形上报数" in legend
    c = visible_cluster(pg, clusters, LEAFLET_PIXEL)
    tip = hover_lonlat(pg, c.lon, c.lat)
    assert "H3 六边形" in tip and "上报数" in tip
    no_problems(watch)


def test_heat_page_per_grid_hover_names_the_grid_its_unit_and_its_count(
    page: tuple[Any, Watch], live_server: str, clusters: list[Place]
) -> None:
    pg, watch = page
    open_leaflet(pg, f"{live_server}/maps/heat")
    switch_layer(pg, "网格上报数")
    pg.wait_for_function("document.querySelectorAll('path.leaflet-interactive').length >= 2988")
    assert "网格上报数" in pg.locator(".gs-legend").inner_text()
    c = visible_cluster(pg, clusters, LEAFLET_PIXEL)
    tip = hover_lonlat(pg, c.lon, c.lat)
    grids = api(live_server, "/v1/analytics/heat", level="grid", area=c.code)["features"]
    n = next(f["properties"]["n"] for f in grids if f["properties"]["code"] == c.code)
    assert n >= 12
    assert re.search(rf"网格编码\s+{c.code}", tip)
    assert re.search(rf"责任单位\s+.*网格工作组 \(grid_team:{c.code}\)", tip)
    assert re.search(rf"上报数\s+{n}\b", tip)
    no_problems(watch)


def test_heat_surface_is_an_overlay_of_the_layer_switcher(
    page: tuple[Any, Watch], live_server: str, clusters: list[Place]
) -> None:
    pg, watch = page
    open_leaflet(pg, f"{live_server}/maps/heat")
    assert pg.locator("canvas.leaflet-heatmap-layer").count() == 0
    switch_layer(pg, "热力面")
    pg.wait_for_selector("canvas.leaflet-heatmap-layer")
    painted = pg.evaluate(
        "() => { const c = document.querySelector('canvas.leaflet-heatmap-layer');"
        " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        " let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }"
    )
    assert painted > 0
    no_problems(watch)


def test_filter_form_reloads_the_page_with_the_chosen_category(
    page: tuple[Any, Watch], live_server: str, clusters: list[Place]
) -> None:
    pg, watch = page
    open_leaflet(pg, f"{live_server}/maps/heat")
    pg.select_option("select[name=category]", "sanitation")
    pg.select_option("select[name=res]", "7")  # the public sees at most res 8
    with pg.expect_navigation():
        pg.click("#gs-filter-form button[type=submit]")
    query = parse_qs(urlparse(pg.url).query)
    assert query == {"category": ["sanitation"], "res": ["7"]}  # empty fields left out
    pg.wait_for_function("document.querySelectorAll('path.leaflet-interactive').length > 0")
    drawn = pg.evaluate("document.querySelectorAll('path.leaflet-interactive').length")
    cells = api(live_server, "/v1/analytics/heat", res=7, category="sanitation")["features"]
    assert drawn == len(cells) > 0
    chosen = pg.eval_on_selector(
        "select[name=category]", "s => [...s.selectedOptions].map(o => o.value)"
    )
    assert chosen == ["sanitation"]  # the form shows what the page was drawn with
    no_problems(watch)


def test_hotspots_page_classes_grids_like_the_api(
    page: tuple[Any, Watch], live_server: str, clusters: list[Place]
) -> None:
    pg, watch = page
    drawn = open_leaflet(pg, f"{live_server}/maps/hotspots")
    cells = api(live_server, "/v1/analytics/hotspots", res=8)["features"]
    assert drawn == len(cells) >= 30
    assert "热点(99%置信)" in pg.locator(".gs-legend").inner_text()
    switch_layer(pg, "网格 Gi*")
    pg.wait_for_function("document.querySelectorAll('path.leaflet-interactive').length >= 2988")
    c = visible_cluster(pg, clusters, LEAFLET_PIXEL)
    tip = hover_lonlat(pg, c.lon, c.lat)
    grids = api(live_server, "/v1/analytics/hotspots", level="grid")["features"]
    props = next(f["properties"] for f in grids if f["properties"]["code"] == c.code)
    assert re.search(rf"网格编码\s+{c.code}", tip)
    assert f"grid_team:{c.code}" in tip
    shown = re.search(r"Gi\* z 值\s+(-?[\d.]+)", tip)
    assert shown and abs(float(shown.group(1)) - props["z"]) < 0.006
    no_problems(watch)


def test_grids_page_shows_case_stages_units_and_boundaries(
    page: tuple[Any, Watch], live_server: str, clusters: list[Place]
) -> None:
    pg, watch = page
    drawn = open_leaflet(pg, f"{live_server}/maps/grids")
    assert drawn >= 2988
    switcher = pg.locator(".leaflet-control-layers").inner_text()
    for name in ("各网格未结案件", "各网格超期案件", "村(社区)边界"):
        assert name in switcher
    c = visible_cluster(pg, clusters, LEAFLET_PIXEL)
    tip = hover_lonlat(pg, c.lon, c.lat)
    stats = api(live_server, "/v1/analytics/grid-stats", area=c.code)["features"]
    props = next(f["properties"] for f in stats if f["properties"]["code"] == c.code)
    assert re.search(rf"网格编码\s+{c.code}", tip)
    assert f"grid_team:{c.code}" in tip
    assert re.search(rf"未结案件\s+{props['open']}\b", tip)
    assert re.search(rf"上报数\s+{props['reports']}\b", tip)
    no_problems(watch)


def test_grid_of_fewer_than_k_reports_shows_no_figures_on_hover(
    page: tuple[Any, Watch], live_server: str, filed: Filed
) -> None:
    pg, watch = page
    open_leaflet(pg, f"{live_server}/maps/grids")
    stats = api(live_server, "/v1/analytics/grid-stats")["features"]
    hidden = {f["properties"]["code"] for f in stats if f["properties"]["suppressed"]}
    single = visible_cluster(pg, [p for p in filed.singles if p.code in hidden], LEAFLET_PIXEL)
    tip = hover_lonlat(pg, single.lon, single.lat)
    assert re.search(rf"网格编码\s+{single.code}", tip)
    assert f"grid_team:{single.code}" in tip  # who answers for the grid is public
    for label in ("上报数", "未结案件", "超期案件"):
        assert re.search(rf"{label}\s+已隐藏（小数抑制）", tip)
    no_problems(watch)


ENGLISH_LABELS = re.compile(r"\b(Reports|Grid code|Responsible unit|Hot spot|Filters|Apply)\b")


@pytest.mark.parametrize("name", ["heat", "hotspots", "grids", "tiles"])
def test_every_map_page_speaks_chinese_on_a_1920_screen(
    browser: Any, live_server: str, clusters: list[Place], name: str
) -> None:
    """The page is zh-CN, its panel, switcher and legend carry no English label, and a
    1920x1080 picture of it is saved as ``tests/artifacts/maps_NAME.png`` to look at."""
    with watched_page(browser, 1920, 1080) as (pg, watch):
        pg.goto(f"{live_server}/maps/{name}", wait_until="load")
        if name == "tiles":
            pg.evaluate(
                "() => new Promise(resolve => { const m = window.geoMap;"
                " if (m.loaded() && m.areTilesLoaded()) resolve(); else m.once('idle', resolve); })"
            )
        else:
            pg.wait_for_function(
                "document.querySelectorAll('path.leaflet-interactive').length > 0"
            )
        assert pg.evaluate("document.documentElement.lang") == "zh-CN"
        chrome = pg.locator(".gs-panel").all_inner_texts()
        if name != "tiles":
            chrome += pg.locator(".leaflet-control-layers").all_inner_texts()
        words = " ".join(chrome)
        assert "筛选" in words and not ENGLISH_LABELS.search(words), words
        shot(pg, f"maps_{name}")
        no_problems(watch)


def test_tiles_page_sends_the_filters_to_the_report_layers_only(
    page: tuple[Any, Watch], live_server: str, clusters: list[Place]
) -> None:
    pg, watch = page
    pg.goto(f"{live_server}/maps/tiles?category=sanitation&status=open", wait_until="load")
    pg.evaluate(
        "() => new Promise(resolve => { const m = window.geoMap;"
        " if (m.loaded() && m.areTilesLoaded()) resolve(); else m.once('idle', resolve); })"
    )
    asked = sorted(
        (urlparse(u).path, urlparse(u).query)
        for u in watch.requests
        if urlparse(u).path.startswith("/tiles/") and urlparse(u).path.endswith(".json")
    )
    filters = "category=sanitation&status=open"
    assert asked == [
        ("/tiles/areas.json", "level=community"),
        ("/tiles/areas.json", "level=town"),
        ("/tiles/grids.json", ""),
        ("/tiles/heat.json", filters),
        ("/tiles/hotspots.json", filters),
        ("/tiles/reports.json", filters),
    ]
    tiles = [u for u in watch.requests if urlparse(u).path.startswith("/tiles/heat/")]
    assert tiles and all(urlparse(u).query == filters for u in tiles)
    no_problems(watch)


def test_tiles_page_draws_vector_tiles_with_maplibre(
    page: tuple[Any, Watch], live_server: str, clusters: list[Place]
) -> None:
    pg, watch = page
    pg.goto(f"{live_server}/maps/tiles", wait_until="load")
    layers = pg.evaluate(
        "() => new Promise(resolve => { const m = window.geoMap;"
        " const done = () => resolve(m.queryRenderedFeatures().map(f => f.layer.id));"
        " if (m.loaded() && m.areTilesLoaded()) done(); else m.once('idle', done); })"
    )
    assert {"grids", "heat", "towns", "reports"} <= set(layers)
    assert any(u.endswith(".mvt") or ".mvt?" in u for u in watch.requests)
    assert "H3 六边形上报数" in pg.locator("#gs-legend").inner_text()
    c = visible_cluster(pg, clusters, MAPLIBRE_PIXEL)
    x, y = pg.evaluate(f"([lon, lat]) => ({MAPLIBRE_PIXEL})(lon, lat)", [c.lon, c.lat])
    pg.mouse.move(x, y)
    hover = pg.locator("#gs-hover")
    hover.wait_for(state="visible")
    text = hover.inner_text()
    assert re.search(rf"网格编码\s+{c.code}", text)
    assert "网格工作组" in text
    assert re.search(r"上报数（热力格）\s+\d+", text)
    pg.locator("#gs-layers label", has_text="冷热点").locator("input").check()
    assert "Gi* 冷热点" in pg.locator("#gs-legend").inner_text()
    no_problems(watch)


# --------------------------------------------------------------------------- no browser


def test_pages_reference_only_local_assets_which_are_served(client: TestClient) -> None:
    for path in ("/maps/heat", "/maps/hotspots", "/maps/grids", "/maps/tiles"):
        r = client.get(path)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/html")
        assert remote_assets(r.text) == []
        for src in re.findall(r'<(?:script|link)[^>]+(?:src|href)="(/static/[^"]+)"', r.text):
            assert client.get(src).status_code == 200, src


def test_bad_filters_are_refused_naming_the_value(client: TestClient) -> None:
    r = client.get("/maps/heat", params={"category": "nonsense"})
    assert r.status_code == 422 and "nonsense" in r.json()["message"]
    r = client.get("/maps/grids", params={"from": "yesterday"})
    assert r.status_code == 422 and "yesterday" in r.json()["message"]
    r = client.get("/maps/hotspots", params={"res": 12})
    assert r.status_code == 422


def test_hotspots_page_says_in_chinese_why_gi_did_not_run(
    client: TestClient, clusters: list[Place]
) -> None:
    """One grid's area holds fewer than 30 cells and one grid: the page still draws, and its
    panel says why there is no Gi* layer (the printed report's wording)."""
    r = client.get("/maps/hotspots", params={"area": clusters[0].code})
    assert r.status_code == 200
    assert "H3 六边形（分辨率 8）未作 Gi* 分析：六边形数少于30个。" in r.text
    assert "网格未作 Gi* 分析：网格数少于30个。" in r.text


def test_lowering_k_on_a_page_needs_a_staff_key(client: TestClient, keys: dict[str, str]) -> None:
    assert client.get("/maps/heat", params={"k": 0}).status_code == 401
    r = client.get("/maps/heat", params={"k": 0}, headers=auth(keys["reporter"]))
    assert r.status_code == 403
    r = client.get("/maps/heat", params={"k": 0}, headers=auth(keys["operator"]))
    assert r.status_code == 200 and "k = 0" in r.text


def test_vendored_assets_match_their_pinned_checksums() -> None:
    script = PROJECT_ROOT / "scripts" / "vendor_assets.py"
    out = subprocess.run([sys.executable, script, "--check"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    vendor = PROJECT_ROOT / "geo_service" / "static" / "vendor"
    for pkg in ("leaflet/1.9.4", "leaflet.heat/0.2.0", "maplibre-gl/5.24.1"):
        assert any((vendor / pkg).glob("LICENSE*")), pkg


def test_operator_map_refuses_a_page_that_would_load_from_a_cdn() -> None:
    from folium.plugins import Fullscreen

    m = operator_map((120.5, 30.5, 120.9, 31.0))
    assert remote_assets(render_page(m)) == []
    Fullscreen().add_to(m)  # folium's plugins name CDN URLs by default
    with pytest.raises(RuntimeError, match="remote assets"):
        render_page(m)


def test_feature_text_reaches_the_page_as_data_never_as_markup_or_template() -> None:
    nasty = "{{ 7*7 }}{% if 1 %}x{% endif %}</script><b>bold</b>"
    frame = gpd.GeoDataFrame(
        {"code": ["330411101001001"], "name": [nasty]},
        geometry=[shapely.box(120.6, 30.7, 120.61, 30.71)],
        crs="EPSG:4326",
    )
    m = operator_map(tuple(frame.total_bounds))
    layer = geojson_layer(
        frame, name="t", fields=(("code", "Grid code"), ("name", "Name")), styles=[{}]
    )
    layer.add_to(m)
    Panel(f"<p>{nasty}</p>").add_to(m)
    page = render_page(m)
    blob = re.search(rf'<script type="application/json" id="{layer.data_id}">(.*?)</script>', page)
    assert blob is not None
    assert json.loads(blob.group(1))["features"][0]["properties"]["name"] == nasty
    script = page.replace(blob.group(1), "")
    assert "</script><b>" not in page
    # the panel's text came through unevaluated (branca re-reads scripts as templates)
    assert "7*7" in script and "endif" in script
