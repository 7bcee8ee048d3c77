"""The command-centre console in a real headless Chromium, as an operator uses it: sign in,
read the figures (equal to ``/v1/stats/indicators``), watch a report filed through the API
reach the counters and the map without a reload (within 5 s), open a grid's cases and a case's
drawer (its timeline), accept the case from the drawer, sign out. The page is ``zh-CN``, logs
no console error, fails no request and sends nothing off the machine (every non-loopback
request is aborted and fails the test). 1920x1080 screenshots go to ``tests/artifacts/``.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import httpx
import numpy as np
import pytest
import shapely
from sqlalchemy import Engine

from geo_service.locator import Locator
from tests.accounts_support import browser_sign_in, make_user
from tests.browser_support import Watch, no_problems, shot, watched_page
from tests.conftest import auth

PASSWORD = "Wall-screen-2026!"
FIGURES = ("reported", "accepted", "closed", "closure_rate", "on_time_rate", "overdue_open",
           "median_minutes_to_dispatch")  # fmt: skip
LIVE_S = 5.0


def _point(grid: Any, rng: np.random.Generator) -> tuple[float, float]:
    """A random point well inside a grid polygon."""
    inner = grid.geometry.buffer(-0.0004)
    shape = inner if not inner.is_empty else grid.geometry
    minx, miny, maxx, maxy = shape.bounds
    while True:
        x, y = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
        if shape.contains(shapely.Point(x, y)):
            return float(x), float(y)


def _report(lon: float, lat: float, at: dt.datetime, category: str, ext: str) -> dict[str, Any]:
    return {
        "channel": "wechat",
        "category": category,
        "description": "路灯损坏，夜间无照明",
        "reported_at": at.isoformat(),
        "location": {"lon": lon, "lat": lat, "crs": "wgs84"},
        "reporter": {"name": "李娜", "phone": "13800000000"},
        "external_id": ext,
    }


@pytest.fixture(scope="module")
def seeded(live_server: str, keys: dict[str, str], demo_locator: Locator) -> None:
    """Sixty reports over the last three days in thirty grids, filed with an operator key."""
    rng = np.random.default_rng(12)
    grids = demo_locator.grids
    now = dt.datetime.now(dt.UTC)
    run = uuid.uuid4().hex[:8]
    bodies = []
    for j, row in enumerate(rng.permutation(len(grids))[:30]):
        for i in range(2):
            lon, lat = _point(grids.iloc[row], rng)
            at = now - dt.timedelta(minutes=int(rng.integers(10, 3 * 24 * 60)))
            bodies.append(_report(lon, lat, at, "facility_damage", f"{run}-{j}-{i}"))
    r = httpx.post(f"{live_server}/v1/reports:bulk", json=bodies,
                   headers=auth(keys["operator"]), timeout=60)  # fmt: skip
    assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def operator(engine: Engine) -> str:
    """A signed-in operator account (name; password :data:`PASSWORD`)."""
    name = f"duty_{uuid.uuid4().hex[:6]}"
    make_user(engine, name, "operator", PASSWORD)
    return name


@pytest.fixture
def wall(browser: Any) -> Iterator[tuple[Any, Watch]]:
    """A watched 1920x1080 page (any HTTP error is a problem)."""
    with watched_page(browser) as pw:
        yield pw


def _shown(pg: Any, key: str, period: str) -> str:
    cell = pg.locator(f'#figures tr[data-figure="{key}"] td[data-period="{period}"]')
    return str(cell.get_attribute("data-value"))


def _same(shown: str, value: Any) -> bool:
    if value is None:
        return shown == "null"
    return abs(float(shown) - float(value)) < 1e-9


def _district(live_server: str, key: str, period: str) -> dict[str, Any]:
    r = httpx.get(f"{live_server}/v1/stats/indicators", headers=auth(key), timeout=60,
                  params={"period": period, "by": "area", "level": "district"})  # fmt: skip
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    assert len(items) == 1
    return items[0]


def test_an_operator_runs_the_wall_screen_from_sign_in_to_sign_out(
    wall: tuple[Any, Watch],
    live_server: str,
    keys: dict[str, str],
    operator: str,
    seeded: None,
    demo_locator: Locator,
) -> None:
    pg, watch = wall
    browser_sign_in(pg, live_server, operator, PASSWORD, next_path="/console")
    assert urlparse(pg.url).path == "/console"
    assert pg.evaluate("document.documentElement.lang") == "zh-CN"
    pg.wait_for_function(
        "window.gsConsole && gsConsole.figureLoads >= 1 && gsConsole.heatLoads >= 1"
        " && gsConsole.token !== null"
    )
    assert "网格化社会治理综合指挥中心" in pg.locator("h1").inner_text()
    assert "结案率" in pg.locator("#figures").inner_text()

    # the figures are the API's, for today, this week and this month
    for period in ("day", "week", "month"):
        row = _district(live_server, keys["operator"], period)
        for key in FIGURES:
            assert _same(_shown(pg, key, period), row[key]), (period, key)
    towns = httpx.get(f"{live_server}/v1/stats/indicators", headers=auth(keys["operator"]),
                      params={"period": "month", "by": "area", "level": "town"}).json()["items"]
    ranked = pg.locator("#ranking tbody tr").evaluate_all("rs => rs.map(r => r.dataset.code)")
    assert ranked == [t["code"] for t in towns] and len(ranked) == 9  # the API's order
    pg.wait_for_timeout(800)  # let the trend and the labels settle for the picture
    shot(pg, "console_1920x1080")

    # a report filed through the API reaches the counter and the map without a reload
    before = int(_shown(pg, "reported", "day"))
    heat_loads = pg.evaluate("gsConsole.heatLoads")
    grid = demo_locator.grids.iloc[7]
    lon, lat = _point(grid, np.random.default_rng(3))
    body = _report(lon, lat, dt.datetime.now(dt.UTC), "sanitation", uuid.uuid4().hex)
    filed_at = time.monotonic()
    r = httpx.post(f"{live_server}/v1/reports", json=body, headers=auth(keys["operator"]))
    assert r.status_code in (200, 201), r.text
    new_id = r.json()["id"]
    pg.wait_for_function(
        "([id, n, loads]) => gsConsole.liveIds.includes(id) && gsConsole.heatLoads > loads"
        " && Number(document.querySelector('#figures tr[data-figure=\"reported\"]"
        " td[data-period=\"day\"]').dataset.value) === n",
        arg=[new_id, before + 1, heat_loads],
        timeout=LIVE_S * 1000,
    )
    assert time.monotonic() - filed_at < LIVE_S
    assert pg.evaluate("gsConsole.notModified") >= 1  # polls in between saw the same token

    # click the grid on the map (the live pins off) -> its cases -> the case's drawer
    pg.locator('#layers button[data-layer="live"]').click()
    pg.evaluate(f"gsConsole.map.jumpTo({{center: [{lon}, {lat}], zoom: 15}})")
    pg.wait_for_function(
        f"gsConsole.map.loaded() && gsConsole.map.queryRenderedFeatures("
        f"gsConsole.map.project([{lon}, {lat}]), {{layers: ['grids-fill']}}).length > 0"
    )
    x, y = pg.evaluate(
        f"(() => {{ const p = gsConsole.map.project([{lon}, {lat}]);"
        " const r = gsConsole.map.getCanvas().getBoundingClientRect();"
        " return [r.left + p.x, r.top + p.y]; })()"
    )
    pg.mouse.click(x, y)
    item = pg.locator(f'#view-list li[data-id="{new_id}"]')
    item.wait_for()
    assert grid["code"] in pg.locator("#view-list").inner_text()
    item.click()
    pg.locator('#case-timeline li[data-action="discover"]').wait_for()
    timeline = pg.locator("#case-timeline").inner_text()
    assert "发现上报" in timeline and "用时" in timeline and "处理人" in timeline
    assert "环境卫生" in pg.locator("#drawer-title").inner_text()
    pg.wait_for_function("gsConsole.minimap && gsConsole.minimap.loaded()")
    pg.wait_for_timeout(500)
    shot(pg, "console_drawer_1920x1080")

    # act on the case: accept it (the page sends its CSRF token)
    pg.locator("#action-note").fill("值班员核实后立案")
    pg.locator('#case-actions button[data-action="accept"]').click()
    pg.locator('#case-timeline li[data-action="accept"]').wait_for()
    assert "值班员核实后立案" in pg.locator("#case-timeline").inner_text()
    case = httpx.get(f"{live_server}/v1/reports/{new_id}", headers=auth(keys["operator"]))
    assert case.json()["status"] == "accepted"
    events = httpx.get(f"{live_server}/v1/reports/{new_id}/events", headers=auth(keys["operator"]))
    assert events.json()["items"][-1]["actor"] is not None

    # sign out: back to the sign-in page, and the console asks for it again
    pg.locator("#drawer-close").click()
    no_problems(watch)  # nothing went wrong while signed in
    watch.problems.clear()
    with pg.expect_navigation(url=lambda u: "/login" in u):
        pg.locator("#sign-out").click()
    pg.goto(f"{live_server}/console", wait_until="load")
    assert urlparse(pg.url).path == "/login"
    # leaving cancels the page's in-flight poll and tiles, or finds the session ended
    assert all("net::ERR_ABORTED" in p or "HTTP 401" in p for p in watch.problems)
    no_problems(Watch(requests=watch.requests))


def test_the_console_speaks_english_on_request(
    wall: tuple[Any, Watch], live_server: str, operator: str, seeded: None
) -> None:
    pg, watch = wall
    browser_sign_in(pg, live_server, operator, PASSWORD, next_path="/console?lang=en")
    pg.wait_for_function("window.gsConsole && gsConsole.figureLoads >= 1")
    assert pg.evaluate("document.documentElement.lang") == "en"
    assert "Closure rate" in pg.locator("#figures").inner_text()
    assert "WeChat" in pg.locator("#channels").inner_text()
    no_problems(watch)
