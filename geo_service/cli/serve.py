"""``geo-service serve`` and ``demo``: run the API under uvicorn (numba threads shared out
among the workers), and the demo that loads the Xiuzhou data first; registered in ``__init__``."""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING, Annotated

import typer

from geo_service.cli.common import (
    DEMO_EFFECTIVE,
    DEMO_LABEL,
    DEMO_LAYOUT,
    console,
    database_url,
    progress_bar,
    reporting,
)
from geo_service.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

# uvicorn kills a worker that does not answer its supervisor's ping within this many seconds
# (default 5): a worker starting on a busy machine (imports, numba's cache) or building a large
# version's Locator can take longer, and killing it only starts the same work again
WORKER_HEALTHCHECK_S = 60


def numba_threads_per_worker(workers: int, cores: int | None = None) -> int:
    """numba threads for each of ``workers`` server processes: the cores this process may run
    on ÷ workers (at least 1), so that the workers' thread pools never ask for more threads
    than there are cores (two pools of two threads on two cores fight, and a one-point locate
    waits behind the other worker's pool)."""
    import os

    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0
        cores = cores or os.cpu_count() or 1
    return max(1, cores // max(1, workers))


def _serve(host: str | None, port: int | None, workers: int) -> None:
    import os

    import uvicorn

    settings = Settings()
    if not settings.database.url:
        os.environ["DATABASE_URL"] = database_url()  # one cluster for every worker
    host = host or settings.api.host
    port = port or settings.api.port
    # numba reads NUMBA_NUM_THREADS as each worker starts (imports it); an explicit one wins
    threads = os.environ.get("NUMBA_NUM_THREADS") or str(numba_threads_per_worker(workers))
    os.environ["NUMBA_NUM_THREADS"] = threads
    console.print(f"serving on http://{host}:{port}  (API docs: http://{host}:{port}/docs)")
    console.print(f"{workers} worker(s), {threads} numba thread(s) each", highlight=False)
    uvicorn.run(
        "geo_service.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,  # never shown at "warning"; skipped instead of filtered per request
        server_header=False,  # no "server: uvicorn": nothing to learn about the stack
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_S,
    )


def serve(
    host: Annotated[str | None, typer.Option()] = None,
    port: Annotated[int | None, typer.Option()] = None,
    workers: Annotated[int, typer.Option()] = 1,
) -> None:
    """Serve the API on DATABASE_URL (or the private cluster)."""
    _serve(host, port, workers)


def _load_demo_year(engine: Engine, url: str, n: int) -> None:
    """Store the demo's synthetic year of ``n`` reports unless it is there already."""
    from geo_service.locator import Locator
    from geo_service.reports.importer import demo_reports_stored, load_demo_history
    from geo_service.routing import RoutingTable

    have = demo_reports_stored(engine)
    if n == 0 or have >= n:
        console.print(f"demo year: {have:,} reports already loaded")
        return
    started = time.perf_counter()
    locator = Locator.from_database(url)
    with engine.connect() as conn:
        routing = RoutingTable.load(conn)
    with progress_bar() as bar:
        report = reporting(bar, "demo year", expected=n)
        stats = load_demo_history(engine, locator, routing, n=n, progress=report)
    assert stats is not None  # fewer than n were stored
    console.print(
        f"demo year: {stats.stored:,} reports stored ({stats.events:,} loop events, "
        f"{stats.skipped:,} already there) in {time.perf_counter() - started:.1f} s"
    )


def demo(
    host: Annotated[str | None, typer.Option()] = None,
    port: Annotated[int | None, typer.Option()] = None,
    serve_: Annotated[bool, typer.Option("--serve/--no-serve")] = True,
    reports: Annotated[
        int | None,
        typer.Option(min=0, help="reports in the demo year (default GEO_DEMO_REPORTS, 200,000)"),
    ] = None,
) -> None:
    """Migrate, load the Xiuzhou demo boundaries and a synthetic year of reports (once
    each), then serve."""
    from geo_service.accounts import demo_accounts
    from geo_service.boundaries import versions
    from geo_service.boundaries.importer import import_layout
    from geo_service.db.engine import make_engine
    from geo_service.db.migrate import upgrade
    from geo_service.routing import seed_units

    url = database_url()
    upgrade(url)
    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            have = any(v.label == DEMO_LABEL for v in versions.list_versions(conn))
        if not have:
            with console.status("loading the Xiuzhou demo boundaries..."):
                summary = import_layout(
                    engine,
                    DEMO_LAYOUT,
                    DEMO_LABEL,
                    crs="wgs84",
                    effective_from=DEMO_EFFECTIVE,
                    publish=True,
                )
            console.print(f"demo boundaries loaded: {summary.counts}")
        with engine.begin() as conn:  # units of areas stored before units existed
            for v in versions.list_versions(conn):
                if v.id is not None and v.status != "draft":
                    seed_units(conn, v.id)
        settings = Settings()
        _load_demo_year(engine, url, settings.demo.reports if reports is None else reports)
        with engine.begin() as conn:  # operator, planner, admin: GEO_DEMO_PASSWORD or random
            credentials = demo_accounts(conn, settings.demo.password)
    finally:
        engine.dispose()
    base = f"http://{host or settings.api.host}:{port or settings.api.port}"
    console.print(f"[bold]command centre:[/bold] {base}/console")
    source = "GEO_DEMO_PASSWORD" if settings.demo.password else "generated for this run"
    console.print(f"sign in as (user / password, {source}):")
    for name, secret in credentials.items():
        console.print(f"  {name:<9} {secret}", markup=False)
    console.print("open:")
    for path in (
        "/planner",
        f"/v1/stats/report?period=month&date={dt.date.today().isoformat()}&format=pdf",
        "/docs",
        "/health",
        "/v1/boundaries/versions",
        "/v1/locate?lon=120.7071&lat=30.7649&crs=gcj02",
        "/maps/heat",
        "/maps/hotspots",
        "/maps/grids",
        "/maps/tiles",
        "/ogc",
        "/open311/v2/services.json",
    ):
        console.print(f"  {base}{path}")
    if serve_:
        _serve(host, port, 1)
