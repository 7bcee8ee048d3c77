"""Console benchmark: the wall screen's real calls, replayed by 4 screens at once against the
real service on the demo year; p50/p95 per call (target: every p95 under 300 ms).

Each screen signs in through ``POST /login`` (the session cookie, as the browser) and then
loops over what ``static/console/console.js`` asks for: the page and its static files, the
areas, the figures of today / this week / this month, the trend, the town ranking, the heat
layer of the month, the hot spots and emerging hot spots (when switched on), the live poll
(``If-None-Match``: 304), a grid's cases, a case and its events. A round is what a screen
does when the token moves; a round starts every poll (2 s, the fastest the page refreshes: as
if a report came in before every poll), all three rankings each round where the page reads
the one tab on show, the hot spot layers every fourth round where the page reads them every
5 minutes. Rate limits stay on at their defaults: each screen has its own session (its own
buckets), and a 429 fails the run, as any other error does.

By default a throw-away database gets the demo boundaries and the synthetic year
(``GEO_BENCH_CONSOLE_REPORTS``, default 200,000) and ``geo-service serve`` runs on it
(``GEO_BENCH_CONSOLE_WORKERS``, default 1). ``GEO_BENCH_CONSOLE_URL`` (a running service) with
``GEO_BENCH_CONSOLE_USER`` / ``GEO_BENCH_CONSOLE_PASSWORD`` (an operator account) measures an
existing service instead.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

import httpx
import numpy as np
from rich.console import Console

from benchmarks._common import ResultTable, throwaway_database
from benchmarks.intake import served
from geo_service.console.page import POLL_MS

SCREENS: Final = 4
ROUNDS: Final = int(os.environ.get("GEO_BENCH_CONSOLE_ROUNDS", "15"))
TARGET_P95_MS: Final = 300.0
SLOW_EVERY: Final = 4  # rounds between two reads of the hot spot layers (the page: 5 min)
FIRST_PAINT_MS: Final = 1000.0
ROUND_S: Final = POLL_MS / 1000  # a round per poll: the fastest the page refreshes
N_REPORTS: Final = int(os.environ.get("GEO_BENCH_CONSOLE_REPORTS", "200000"))
WORKERS: Final = int(os.environ.get("GEO_BENCH_CONSOLE_WORKERS", "1"))
STATIC: Final = (
    "/static/console/console.css",
    "/static/console/console.js",
    "/static/vendor/maplibre-gl/5.24.1/maplibre-gl.js",
    "/static/vendor/echarts/5.6.0/echarts.min.js",
)


@contextlib.contextmanager
def _service() -> Iterator[tuple[str, str, str]]:
    """(base URL, user, password): the given service, or the demo year on a fresh one."""
    given = os.environ.get("GEO_BENCH_CONSOLE_URL")
    if given:
        yield given, os.environ["GEO_BENCH_CONSOLE_USER"], os.environ["GEO_BENCH_CONSOLE_PASSWORD"]
        return
    from geo_service.accounts import create_user
    from geo_service.boundaries.importer import import_layout
    from geo_service.db.engine import make_engine
    from geo_service.db.migrate import upgrade
    from geo_service.locator import Locator
    from geo_service.reports.importer import load_demo_history
    from geo_service.routing import RoutingTable
    from geo_service.settings import PROJECT_ROOT

    with throwaway_database("bench_console") as url:
        upgrade(url)
        engine = make_engine(url, pool_size=2)
        import_layout(engine, PROJECT_ROOT / "boundaries" / "xiuzhou_demo.geojson",
                      "bench-console", crs="wgs84", effective_from=dt.date(2024, 1, 1),
                      publish=True)  # fmt: skip
        locator = Locator.from_database(url)
        with engine.connect() as conn:
            routing = RoutingTable.load(conn)
        load_demo_history(engine, locator, routing, n=N_REPORTS)
        password = uuid.uuid4().hex
        with engine.begin() as conn:
            create_user(conn, "bench_duty", "operator", password, None)
        engine.dispose()
        with served(url, WORKERS, startup_s=300) as base:
            yield base, "bench_duty", password


def _sign_in(base: str, user: str, password: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=60)
    form = client.get("/login").text  # sets the sign-in form's cookie; its token is in the form
    found = re.search(r'name="login_token" value="([^"]*)"', form)
    fields = {"username": user, "password": password, "next": "/console"}
    if found:
        fields["login_token"] = found.group(1)
    r = client.post("/login", data=fields)
    if r.status_code != 303:
        raise RuntimeError(f"sign-in refused: {r.status_code} {r.text[:300]}")
    return client


def _month(client: httpx.Client) -> dict[str, str]:
    body: dict[str, Any] = client.get("/v1/console/figures", params={"period": "month"}).json()
    return {"from": body["period"]["start"], "to": body["period"]["end"], "k": "0"}


def _screen(client: httpx.Client, times: dict[str, list[float]], lock: threading.Lock,
            rounds: int, seed: int) -> None:  # fmt: skip
    """One wall screen: the page's calls, ``rounds`` times over."""
    rng = np.random.default_rng(seed)
    month = _month(client)
    etag: str | None = None
    grids: list[str] = []
    # grids with cases this month, for when nothing was filed today (the pinned reports)
    filed = client.get("/v1/reports", params={"from": month["from"], "to": month["to"],
                                              "limit": "200"}).json()["items"]  # fmt: skip
    month_grids = sorted({r["grid_code"] for r in filed if r.get("grid_code")})
    if not month_grids:
        raise RuntimeError("no report in a grid this month: nothing to drill into")

    def call(
        name: str,
        path: str,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> httpx.Response:
        t0 = time.perf_counter()
        r = client.get(path, params=params, headers=headers)
        ms = 1000 * (time.perf_counter() - t0)
        if r.status_code not in ok:
            raise RuntimeError(f"{name}: HTTP {r.status_code} {r.text[:300]}")
        with lock:
            times.setdefault(name, []).append(ms)
        return r

    start = time.monotonic()
    for round_no in range(rounds):
        time.sleep(max(0.0, start + round_no * ROUND_S - time.monotonic()))
        call("GET /console (the page)", "/console")
        for path in STATIC:
            call("static files (each)", path)
        call("areas", "/v1/console/areas")
        for period in ("day", "week", "month"):
            call("figures (each period)", "/v1/console/figures", {"period": period})
        call("trend (year by month)", "/v1/stats/trend",
             {"period": "year", "step": "month", "by": "area", "level": "district"})
        call("ranking: towns", "/v1/stats/indicators",
             {"period": "month", "by": "area", "level": "town"})
        call("ranking: communities", "/v1/stats/indicators",
             {"period": "month", "by": "area", "level": "community"})
        call("ranking: units", "/v1/stats/indicators",
             {"period": "month", "by": "unit", "level": "town"})
        heat = call("heat (H3 res 8, month)", "/v1/analytics/heat", {**month, "res": "8"})
        if round_no % SLOW_EVERY == 0:  # the page re-reads these every 5 minutes only
            call("hot spots (H3 res 7, month)", "/v1/analytics/hotspots", {**month, "res": "7"})
            call("emerging hot spots (community, weeks)", "/v1/analytics/emerging-hotspots",
                 {"slice": "week", "level": "community", "k": "0"})
        first = call("live poll: changed (200)", "/v1/console/summary")
        etag = first.headers["etag"]
        for _ in range(5):
            call("live poll: unchanged (304)", "/v1/console/summary",
                 headers={"If-None-Match": etag}, ok=(200, 304))
        if not grids:
            latest = first.json()["latest"]
            grids = [r["grid_code"] for r in latest if r["grid_code"]] or month_grids
            if not heat.json()["features"]:
                raise RuntimeError("the heat layer is empty: no reports in the month")
        grid = grids[int(rng.integers(len(grids)))]
        cases = call("a grid's cases", "/v1/reports", {"area": grid, "limit": "100",
                                                       "from": month["from"], "to": month["to"]})
        items = cases.json()["items"]
        if items:
            rid = items[int(rng.integers(len(items)))]["id"]
            call("a case", f"/v1/reports/{rid}")
            call("a case's events", f"/v1/reports/{rid}/events")


def run() -> None:
    """Replay 4 screens, print p50/p95 per call and whether every p95 is under 300 ms."""
    console = Console()
    with _service() as (base, user, password):
        clients = [_sign_in(base, user, password) for _ in range(SCREENS)]
        for c in clients:  # warm each worker's caches once
            _screen(c, {}, threading.Lock(), 1, 0)
        times: dict[str, list[float]] = {}
        lock = threading.Lock()
        t0 = time.perf_counter()
        with ThreadPoolExecutor(SCREENS) as pool:  # a screen's error ends the run
            runs = [pool.submit(_screen, c, times, lock, ROUNDS, i + 1)
                    for i, c in enumerate(clients)]  # fmt: skip
            for done in runs:
                done.result()
        wall_s = time.perf_counter() - t0
        for c in clients:
            c.close()
    table = ResultTable(
        f"Console: {SCREENS} screens at once, {ROUNDS} rounds each (p50 / p95 per call)",
        ["call", "n", "p50 ms", "p95 ms"],
        right_aligned=["n", "p50 ms", "p95 ms"],
    )
    worst = 0.0
    for name, values in times.items():
        p50, p95 = np.percentile(values, [50, 95])
        worst = max(worst, float(p95))
        table.add(name, str(len(values)), f"{p50:.1f}", f"{p95:.1f}")
    page = float(np.percentile(times["GET /console (the page)"], 95)) + float(
        np.percentile(times["static files (each)"], 95)
    )
    table.verdicts.append(
        ("target met" if worst < TARGET_P95_MS else "target missed")
        + f": the slowest call's p95 is {worst:.0f} ms (target < {TARGET_P95_MS:.0f} ms)"
    )
    table.verdicts.append(
        ("target met" if page < FIRST_PAINT_MS else "target missed")
        + f": page + one static file p95 {page:.0f} ms before first paint (< {FIRST_PAINT_MS:.0f})"
    )
    table.notes.append(f"{sum(len(v) for v in times.values()):,} calls in {wall_s:.1f} s, "
                       f"{WORKERS} worker(s), signed in by session cookie")  # fmt: skip
    table.show(console)
    table.write_markdown("console")
