"""The locate hot path over HTTP: ``GET /v1/locate`` against one PostGIS query per point.

One throw-away database with the Xiuzhou demo boundaries published; 20,000 points drawn
uniformly inside the district's grids (every point in coverage: what reports look like).

* **PostGIS**: one ``ST_Covers`` query per point over one connection (and over 8, one client
  process each), psycopg with a prepared statement, on the service's own tables, lowest grid
  code on ties, answering only the grid code. The reference is the query on the version's
  grid polygons (``areas``, GiST: the exactness tests' query, and the issue's); the query on
  their ``ST_Subdivide`` pieces (``area_parts``), PostGIS at its fastest here, is shown too.
* **Ours**: ``geo-service serve --workers N`` (uvicorn, uvloop, httptools) in its own
  processes, ``GET /v1/locate?lon=…&lat=…`` answering the whole routing contract (grid and its
  attributes, chain, version, boundary distance, runner-up); rate limiting on, at rates that
  never refuse the client (its cost is in the figures).
* **The client**: :mod:`benchmarks._rawhttp` (uvloop, raw HTTP/1.1 keep-alive, closed loop),
  in this process; its own ceiling is measured against a server that answers canned bytes.
  ``GET /`` (the service's index, through FastAPI's routing) shows what the web stack alone
  costs.

Every path runs the same closed loop: 1 or 8 connections, a warm-up, then ``SECONDS``
counted; best of ``REPS``, every path taking turns. Targets: one worker ≥ 5,000 req/s over
one connection and ≥ 0.75× the reference PostGIS query over one connection; two workers at
least as fast as one (8 connections).
"""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
import os
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import psycopg
from rich.console import Console

from benchmarks import _rawhttp
from benchmarks._common import CpuSnapshot, ResultTable, throwaway_database
from benchmarks._service import UNLIMITED_RATES, Service, free_port
from geo_service.boundaries.importer import import_layout
from geo_service.db.engine import make_engine
from geo_service.db.migrate import upgrade
from geo_service.locator import Locator
from geo_service.settings import PROJECT_ROOT

N_POINTS = 20_000
POINT_SEED = 20261201
SECONDS = 4.0
WARMUP_S = 1.0
REPS = 2
CONNECTIONS = (1, 8)
WORKERS = (1, 2)
TARGET_RPS = 5_000.0
TARGET_RATIO = 0.75
CHECKED_POINTS = 300  # answers compared between PostGIS and the service
DEMO_LAYOUT = PROJECT_ROOT / "boundaries" / "xiuzhou_demo.geojson"

POSTGIS = "PostGIS ST_Covers per point, grid polygons (reference)"
PIECES = "PostGIS ST_Covers per point, subdivided pieces"
OURS = "GET /v1/locate"
INDEX = "GET / (web stack alone)"
CEILING = "client ceiling (canned answers)"

# one point → the grid that owns it: the version's grids covering the point, lowest code
POINT_QUERIES = {
    POSTGIS: """
        SELECT va.code FROM areas a
        JOIN version_areas va ON va.area_id = a.id
        WHERE va.version_id = %s AND va.level = 'grid'
          AND ST_Covers(a.geom, ST_SetSRID(ST_MakePoint(%s, %s), 4326))
        ORDER BY va.code LIMIT 1
    """,
    PIECES: """
        SELECT min(va.code) FROM area_parts p
        JOIN version_areas va ON va.area_id = p.area_id
        WHERE va.version_id = %s AND va.level = 'grid'
          AND ST_Covers(p.geom, ST_SetSRID(ST_MakePoint(%s, %s), 4326))
    """,
}


@dataclass(frozen=True)
class Row:
    """One measured path at one number of connections."""

    path: str
    workers: int  # server processes (0: not our server)
    connections: int
    outcome: _rawhttp.Outcome
    cpu_us: float | None  # server CPU per answer (our service only)


def prepare(url: str) -> tuple[Locator, int]:
    """Schema and the demo boundaries, published; their Locator and version id."""
    upgrade(url)
    engine = make_engine(url, pool_size=1)
    try:
        import_layout(
            engine, DEMO_LAYOUT, "bench", crs="wgs84", effective_from=dt.date(2025, 1, 1),
            publish=True,
        )  # fmt: skip
    finally:
        engine.dispose()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE")  # fresh tables: give the planner its statistics (GiST first)
    locator = Locator.from_database(url)
    assert locator.version.id is not None
    return locator, locator.version.id


def draw_points(locator: Locator) -> np.ndarray:
    """``N_POINTS`` points uniform over the grids (drawn in the bounding box, kept if covered)."""
    rng = np.random.default_rng(POINT_SEED)
    minx, miny, maxx, maxy = locator.grids.total_bounds
    kept: list[np.ndarray] = []
    while sum(len(k) for k in kept) < N_POINTS:
        xy = np.column_stack([rng.uniform(minx, maxx, N_POINTS), rng.uniform(miny, maxy, N_POINTS)])
        kept.append(xy[locator.locate(xy[:, 0], xy[:, 1]).found])
    return np.concatenate(kept)[:N_POINTS]


# --- PostGIS: one process per connection --------------------------------------------------


def _postgis_client(
    url: str, query: str, version: int, points: np.ndarray, start_at: float, seconds: float,
    out: Any,
) -> None:  # fmt: skip
    """One connection's closed loop (a process of its own: no GIL shared between clients)."""
    latencies: list[int] = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(query, (version, 120.7, 30.7), prepare=True).fetchone()
        i, n = 0, len(points)
        pts = points.tolist()
        time.sleep(max(start_at - time.time(), 0))
        count_from = time.perf_counter_ns() + int(WARMUP_S * 1e9)
        stop_at = count_from + int(seconds * 1e9)
        while True:
            x, y = pts[i % n]
            i += 1
            t0 = time.perf_counter_ns()
            conn.execute(query, (version, x, y), prepare=True).fetchone()
            t1 = time.perf_counter_ns()
            if t1 >= count_from:
                latencies.append(t1 - t0)
            if t1 >= stop_at:
                break
    out.put(np.asarray(latencies, dtype=np.int64).tobytes())


def postgis_run(
    url: str, path: str, version: int, points: np.ndarray, connections: int
) -> _rawhttp.Outcome:
    """``path``'s query per point from ``connections`` client processes for ``SECONDS``."""
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    start_at = time.time() + 1.0
    procs = [
        ctx.Process(
            target=_postgis_client,
            args=(
                url,
                POINT_QUERIES[path],
                version,
                points[c::connections],
                start_at,
                SECONDS,
                out,
            ),
        )
        for c in range(connections)
    ]
    for p in procs:
        p.start()
    parts = [np.frombuffer(out.get(timeout=120), dtype=np.int64) for _ in procs]
    for p in procs:
        p.join()
    latencies = np.concatenate(parts) / 1e6
    return _rawhttp.Outcome(SECONDS, latencies, Counter({200: len(latencies)}))


def postgis_codes(url: str, query: str, version: int, points: np.ndarray) -> list[str | None]:
    """The grid code PostGIS names for each point."""
    with psycopg.connect(url) as conn:
        return [
            conn.execute(query, (version, x, y), prepare=True).fetchone()[0]  # type: ignore[index]
            for x, y in points.tolist()
        ]


# --- HTTP ---------------------------------------------------------------------------------


def locate_requests(points: np.ndarray) -> list[bytes]:
    """One ``GET /v1/locate`` per point (coordinates written as Python prints them)."""
    return [_rawhttp.get(f"/v1/locate?lon={x!r}&lat={y!r}") for x, y in points.tolist()]


def http_run(service: Service, path: str, requests: list[bytes], connections: int) -> Row:
    """One closed loop against the service, with its CPU per answer."""
    cpu0 = service.cpu_seconds()
    outcome = _rawhttp.closed_loop(service.port, requests, connections, SECONDS, WARMUP_S)
    cpu = (service.cpu_seconds() - cpu0) / max(outcome.answered, 1) * 1e6  # warm-up included
    return Row(path, service.workers, connections, outcome, cpu)


def run_spread(rows: list[Row], path: str, workers: int, connections: int) -> float:
    """How far apart the repeated runs of one path landed: (max - min) / max of their rates."""
    rates = [
        r.outcome.rate
        for r in rows
        if (r.path, r.workers, r.connections) == (path, workers, connections)
    ]
    return (max(rates) - min(rates)) / max(rates) if rates else 0.0


def best_rows(rows: list[Row]) -> list[Row]:
    """The fastest row of each (path, workers, connections), in the order first seen."""
    best: dict[tuple[str, int, int], Row] = {}
    for r in rows:
        key = (r.path, r.workers, r.connections)
        if key not in best or r.outcome.rate > best[key].outcome.rate:
            best[key] = r
    return list(best.values())


def client_ceiling(connections: int) -> Row:
    """The client against a server answering canned bytes: the most it can measure."""
    port = free_port()
    server = mp.get_context("fork").Process(target=_rawhttp.serve_canned, args=(port,))
    server.start()
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with httpx.Client() as c:
                    c.get(f"http://127.0.0.1:{port}/")
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        outcome = _rawhttp.closed_loop(port, [_rawhttp.get("/")], connections, SECONDS, WARMUP_S)
    finally:
        server.kill()
        server.join()
    return Row(CEILING, 0, connections, outcome, None)


def check_answers(base: str, url: str, version: int, points: np.ndarray) -> None:
    """The service and PostGIS name the same grid for the first points (same data, same
    answers), or the benchmark stops."""
    sample = points[:CHECKED_POINTS]
    theirs = postgis_codes(url, POINT_QUERIES[POSTGIS], version, sample)
    if postgis_codes(url, POINT_QUERIES[PIECES], version, sample) != theirs:
        raise RuntimeError("the two PostGIS queries answer differently")
    with httpx.Client(base_url=base) as http:
        ours = [
            http.get("/v1/locate", params={"lon": x, "lat": y}).json()["grid"]["code"]
            for x, y in sample.tolist()
        ]
    wrong = [i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b]
    if wrong:
        raise RuntimeError(f"{len(wrong)} points answered differently, e.g. {sample[wrong[0]]}")


def run() -> None:
    """Measure every path; print and write the table."""
    console = Console()
    say = console.print
    rows: list[Row] = []
    start = CpuSnapshot.take()
    t0 = time.perf_counter()
    with throwaway_database("bench_locate_http") as url:
        say("preparing the database and the points ...")
        locator, version = prepare(url)
        points = draw_points(locator)
        requests = locate_requests(points)
        for connections in CONNECTIONS:
            say(f"client ceiling, {connections} connection(s) ...")
            rows.append(client_ceiling(connections))
        # PostGIS, one worker and two take turns, so that the machine's noise falls on all
        for rep in range(REPS):
            for path in POINT_QUERIES:
                for connections in CONNECTIONS:
                    say(f"{path}, {connections} connection(s) ...")
                    outcome = postgis_run(url, path, version, points, connections)
                    rows.append(Row(path, 0, connections, outcome, None))
            for workers in WORKERS:
                with Service(url, workers, env=UNLIMITED_RATES) as service:
                    if rep == 0:
                        check_answers(service.base, url, version, points)
                    # warm-up: every worker's Locator and per-grid parts for these points
                    _rawhttp.closed_loop(service.port, requests, 8, 2.0 * workers, 0.0)
                    for connections in CONNECTIONS:
                        say(f"{OURS}, {workers} worker(s), {connections} connection(s) ...")
                        rows.append(http_run(service, OURS, requests, connections))
                    if workers == 1:
                        for connections in CONNECTIONS:
                            say(f"{INDEX}, {connections} connection(s) ...")
                            index = [_rawhttp.get("/")]
                            rows.append(http_run(service, INDEX, index, connections))
        spread = max(run_spread(rows, OURS, w, 8) for w in WORKERS)
        rows = best_rows(rows)
    others, steal = CpuSnapshot.take().others_since(start)
    show(console, rows, spread, others, steal, time.perf_counter() - t0)


def _find(rows: list[Row], path: str, workers: int, connections: int) -> Row:
    return next(
        r for r in rows if r.path == path and r.workers == workers and r.connections == connections
    )


def show(
    console: Console, rows: list[Row], spread: float, others_s: float, steal_s: float,
    wall_s: float,
) -> None:  # fmt: skip
    """The table (ratios to PostGIS at the same number of connections) and the verdicts;
    ``spread`` is the run-to-run spread of the service's rates, the noise two rates that
    should be equal differ by."""
    table = ResultTable(
        title=f"GET /v1/locate vs one PostGIS query per point ({N_POINTS:,} points in coverage)",
        columns=[
            "path", "server workers", "connections", "req/s", "p50 ms", "p99 ms",
            "server CPU µs/req", "errors", "ratio to PostGIS", "ratio to pieces",
        ],
        right_aligned=[
            "server workers", "connections", "req/s", "p50 ms", "p99 ms", "server CPU µs/req",
            "errors", "ratio to PostGIS", "ratio to pieces",
        ],
    )  # fmt: skip
    for r in rows:
        pg = _find(rows, POSTGIS, 0, r.connections).outcome.rate
        pieces = _find(rows, PIECES, 0, r.connections).outcome.rate
        table.add(
            r.path,
            str(r.workers) if r.workers else "—",
            str(r.connections),
            f"{r.outcome.rate:,.0f}",
            f"{r.outcome.percentile(50):.3f}",
            f"{r.outcome.percentile(99):.3f}",
            f"{r.cpu_us:,.0f}" if r.cpu_us is not None else "—",
            f"{r.outcome.errors:,}",
            f"{r.outcome.rate / pg:.2f}",
            f"{r.outcome.rate / pieces:.2f}",
        )
    one = _find(rows, OURS, 1, 1).outcome.rate
    pg1 = _find(rows, POSTGIS, 0, 1).outcome.rate
    pieces1 = _find(rows, PIECES, 0, 1).outcome.rate
    w1, w2 = _find(rows, OURS, 1, 8).outcome.rate, _find(rows, OURS, 2, 8).outcome.rate
    c1, c2 = _find(rows, OURS, 1, 1).outcome.rate, _find(rows, OURS, 2, 1).outcome.rate

    def verdict(ok: bool, text: str) -> str:
        return ("target met: " if ok else "target missed: ") + text

    table.verdicts = [
        verdict(
            one >= TARGET_RPS,
            f"one worker, one connection: {one:,.0f} req/s (≥ {TARGET_RPS:,.0f})",
        ),
        verdict(
            one >= TARGET_RATIO * pg1,
            f"one worker vs PostGIS over one connection: {one / pg1:.2f}× (≥ {TARGET_RATIO}; "
            f"{one / pieces1:.2f}× its subdivided pieces)",
        ),
        verdict(
            w2 >= w1 * (1 - spread),
            f"two workers vs one, 8 connections: {w2:,.0f} vs {w1:,.0f} req/s, at least as "
            f"fast within the runs' own spread of {spread:.1%} (one connection: {c2:,.0f} vs "
            f"{c1:,.0f})",
        ),
    ]  # fmt: skip
    table.notes = [
        "closed loop: each connection sends its next request when the answer is in; "
        f"{WARMUP_S:g} s warm-up, then {SECONDS:g} s counted; best of {REPS}; p50/p99 per "
        "request; the service was warmed first (each worker's Locator and per-grid parts)",
        "PostGIS (reference): `"
        + " ".join(POINT_QUERIES[POSTGIS].split())
        + "`; pieces: `"
        + " ".join(POINT_QUERIES[PIECES].split())
        + "`; prepared, psycopg, one client process "
        "per connection; PostGIS answers the grid code only, the service the whole contract",
        "service: `geo-service serve --workers N` (uvicorn, uvloop, httptools), numba threads "
        "per worker = cores ÷ workers; rate limiting on with rates that never refuse; server "
        "CPU µs/req = CPU seconds of all its processes ÷ answers (machine noise hurts it less "
        "than req/s)",
        f"the same {CHECKED_POINTS} points were answered with the same grid by all three",
        f"machine: {os.cpu_count()} CPUs shared by the client, the service and PostgreSQL; "
        f"other processes used {others_s:.1f} CPU s (steal {steal_s:.1f} s) in the "
        f"{wall_s:.0f} s run, a sign of noise",
    ]
    console.print()
    table.show(console)
    path = table.write_markdown("locate_http")
    console.print(f"[dim]written to {path.relative_to(PROJECT_ROOT)}[/dim]", highlight=False)


if __name__ == "__main__":
    run()
