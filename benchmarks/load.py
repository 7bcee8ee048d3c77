"""Load: locate, tiles, intake and indicators at fixed request rates, for a fixed time.

``make load`` (``python -m benchmarks.load [--seconds S] [--workers N] [--scale F]``).

A throw-away database with the demo boundaries and a synthetic year of reports, served by
``geo-service serve`` (its own processes, loopback only). Four streams run at once, each at a
fixed rate whatever the service does (an open loop: latency counts from the moment a request
was due, so a stall shows as latency, not as fewer requests), each over its own keep-alive
connections:

* **locate**: ``GET /v1/locate`` at random points over the district (anonymous);
* **tiles**: ``GET /tiles/{grids,heat,reports}/z/x/y.mvt`` at z12-z15 where the grids are
  (anonymous; a mix of cache misses and hits);
* **intake**: ``POST /v1/reports``, each under a new ``Idempotency-Key`` (a reporter key);
* **indicators**: ``GET /v1/stats/indicators`` for this month by grid (an operator key),
  when the service has the route.

Printed: per stream the rate asked and got, p50/p99, errors by status; and the service's
resident memory (``VmRSS`` of ``/proc/PID/status``, all its processes) before, at its peak,
and after. Rates are per stream, bounded (``--scale`` multiplies them); rate limiting is on
with rates that never refuse these clients.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import math
import random
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import orjson
import uvloop
from rich.console import Console

from benchmarks import _rawhttp
from benchmarks._common import CpuSnapshot, ResultTable, throwaway_database
from benchmarks._service import UNLIMITED_RATES, Service
from geo_service.auth import create_key
from geo_service.boundaries.importer import import_layout
from geo_service.db.engine import make_engine
from geo_service.db.migrate import upgrade
from geo_service.locator import Locator
from geo_service.settings import PROJECT_ROOT

DEMO_LAYOUT = PROJECT_ROOT / "boundaries" / "xiuzhou_demo.geojson"
SEED = 20261202
HISTORY = 20_000  # synthetic reports stored before the run (tiles and figures have data)
SECONDS = 30.0
RSS_EVERY_S = 0.25


@dataclass(frozen=True)
class Stream:
    """One kind of request at a fixed rate."""

    name: str
    rate: float  # requests per second
    connections: int
    request: Callable[[int], bytes]


def prepare(url: str) -> tuple[Locator, str, str]:
    """Schema, demo boundaries, a synthetic year of reports; a reporter and an operator key."""
    from geo_service.reports.importer import load_demo_history
    from geo_service.routing import RoutingTable

    upgrade(url)
    engine = make_engine(url, pool_size=1)
    try:
        import_layout(
            engine, DEMO_LAYOUT, "load", crs="wgs84", effective_from=dt.date(2025, 1, 1),
            publish=True,
        )  # fmt: skip
        locator = Locator.from_database(url)
        with engine.connect() as conn:
            routing = RoutingTable.load(conn)
        load_demo_history(engine, locator, routing, n=HISTORY, end=dt.date.today())
        with engine.begin() as conn:
            reporter = create_key(conn, "reporter", label="load run")
            operator = create_key(conn, "operator", label="load run")
    finally:
        engine.dispose()
    return locator, reporter, operator


def _tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2**z
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    return x, y


def streams(
    locator: Locator, reporter: str, operator: str, scale: float, indicators: bool
) -> list[Stream]:
    """The four streams (indicators only when the service has the route)."""
    rng = random.Random(SEED)
    minx, miny, maxx, maxy = locator.grids.total_bounds
    minx, miny, maxx, maxy = (float(v) for v in (minx, miny, maxx, maxy))
    points = [(rng.uniform(minx, maxx), rng.uniform(miny, maxy)) for _ in range(20_000)]
    inside = [g.representative_point() for g in locator.grids.geometry]
    locate = [_rawhttp.get(f"/v1/locate?lon={x!r}&lat={y!r}") for x, y in points]
    tiles = []
    for p in rng.sample(inside, min(len(inside), 800)):
        z = rng.choice((12, 13, 14, 15))
        x, y = _tile_of(p.x, p.y, z)
        tiles.append(
            _rawhttp.get(f"/tiles/{rng.choice(('grids', 'heat', 'reports'))}/{z}/{x}/{y}.mvt")
        )
    run = uuid.uuid4().hex[:8]
    auth = {"Authorization": f"Bearer {reporter}"}

    serial = itertools.count()  # a new key every call, warm-up included

    def intake(i: int) -> bytes:
        i = next(serial)
        p = inside[(i * 7919) % len(inside)]
        body = orjson.dumps({
            "channel": "grid_app", "category": "safety_hazard", "description": f"load {run} {i}",
            "reported_at": dt.datetime.now(dt.UTC).isoformat(),
            "location": {"lon": p.x, "lat": p.y, "crs": "wgs84"},
        })  # fmt: skip
        return _rawhttp.post("/v1/reports", body, {**auth, "Idempotency-Key": f"load-{run}-{i}"})

    figures = _rawhttp.get(
        "/v1/stats/indicators?period=month&by=area&level=grid",
        {"Authorization": f"Bearer {operator}"},
    )
    out = [
        Stream("locate", 300 * scale, 8, lambda i: locate[i % len(locate)]),
        Stream("tiles", 60 * scale, 8, lambda i: tiles[i % len(tiles)]),
        Stream("intake", 30 * scale, 4, intake),
    ]
    if indicators:
        out.append(Stream("indicators", 0.5 * scale, 2, lambda i: figures))
    return out


def has_route(base: str, path: str) -> bool:
    """Whether the service's OpenAPI document lists ``path``."""
    return path in httpx.get(f"{base}/openapi.json", timeout=60).json().get("paths", {})


async def _run_streams(port: int, chosen: list[Stream], seconds: float) -> list[_rawhttp.Outcome]:
    return await asyncio.gather(
        *(_rawhttp.open_loop(port, s.request, s.rate, seconds, s.connections) for s in chosen)
    )


@dataclass
class Memory:
    """The service's resident memory over the run, MB (all its processes together)."""

    before: float = 0.0
    peak: float = 0.0
    after: float = 0.0
    each: list[float] = field(default_factory=list)  # after, per process, the master first


def run(seconds: float = SECONDS, workers: int = 2, scale: float = 1.0) -> None:
    """Prepare, warm the service, run every stream at once for ``seconds``; print the table."""
    console = Console()
    say = console.print
    with throwaway_database("bench_load") as url:
        say(f"preparing the database ({HISTORY:,} synthetic reports) ...")
        locator, reporter, operator = prepare(url)
        with Service(url, workers, env=UNLIMITED_RATES) as service:
            with_figures = has_route(service.base, "/v1/stats/indicators")
            chosen = streams(locator, reporter, operator, scale, with_figures)
            say("warming up (each worker's Locator, a few tiles, one figure table) ...")
            uvloop.run(_run_streams(service.port, chosen, 3.0))
            memory = Memory(before=service.rss_mb())
            memory.peak = memory.before
            done = threading.Event()

            def sample() -> None:
                while not done.wait(RSS_EVERY_S):
                    memory.peak = max(memory.peak, service.rss_mb())

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            say(f"{seconds:g} s of load: " + ", ".join(f"{s.name} {s.rate:g}/s" for s in chosen))
            start = CpuSnapshot.take()
            outcomes = uvloop.run(_run_streams(service.port, chosen, seconds))
            others, steal = CpuSnapshot.take().others_since(start)
            done.set()
            sampler.join()
            memory.after = service.rss_mb()
            memory.each = service.rss_by_process()
            show(console, chosen, outcomes, memory, workers, seconds, with_figures, others, steal)


def show(
    console: Console,
    chosen: list[Stream],
    outcomes: list[_rawhttp.Outcome],
    memory: Memory,
    workers: int,
    seconds: float,
    with_figures: bool,
    others_s: float,
    steal_s: float,
) -> None:
    """One row per stream, the memory figures, notes."""
    table = ResultTable(
        title=f"Load: {seconds:g} s at fixed rates, `geo-service serve --workers {workers}`",
        columns=[
            "stream", "rate asked /s", "answered /s", "p50 ms", "p99 ms", "errors", "statuses",
        ],
        right_aligned=["rate asked /s", "answered /s", "p50 ms", "p99 ms", "errors"],
    )  # fmt: skip
    for s, o in zip(chosen, outcomes, strict=True):
        statuses = ", ".join(f"{k}: {v:,}" for k, v in sorted(o.statuses.items()))
        if o.transport_errors:
            statuses += f", transport: {o.transport_errors:,}"
        table.add(
            s.name, f"{s.rate:g}", f"{o.rate:,.1f}", f"{o.percentile(50):.1f}",
            f"{o.percentile(99):.1f}", f"{o.errors:,}", statuses,
        )  # fmt: skip
    errors = sum(o.errors for o in outcomes)
    table.verdicts.append(
        ("target met: " if errors == 0 else "target missed: ") + f"{errors:,} errors"
    )

    table.notes = [
        f"service RSS (all its processes): {memory.before:,.0f} MB before, "
        f"{memory.peak:,.0f} MB at its peak, {memory.after:,.0f} MB after (per process, the "
        "uvicorn master first: " + ", ".join(f"{m:,.0f}" for m in memory.each) + " MB)",
        "open loop: request i of a stream is due at i / rate; latency from that moment (a "
        "request waiting for a free connection waits on the clock); 3 s warm-up first",
        "locate: random points over the district's bounding box (about half outside coverage);"
        " tiles: z12-z15 over the grids, layers grids/heat/reports, 800 distinct; intake: new "
        "key each; indicators: this month per grid, operator key",
        "RSS: VmRSS of every service process (master and workers) summed, sampled every "
        f"{RSS_EVERY_S:g} s",
        f"other processes used {others_s:.1f} CPU s (steal {steal_s:.1f} s) during the run",
    ]
    if not with_figures:
        table.notes.append("indicators skipped: the service has no /v1/stats/indicators route")
    console.print()
    table.show(console)
    path = table.write_markdown("load")
    console.print(f"[dim]written to {path.relative_to(PROJECT_ROOT)}[/dim]", highlight=False)


def main() -> int:
    """Parse ``--seconds``, ``--workers``, ``--scale`` and run."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__)
    parser.add_argument("--seconds", type=float, default=SECONDS)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every rate")
    args = parser.parse_args()
    run(args.seconds, args.workers, args.scale)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
