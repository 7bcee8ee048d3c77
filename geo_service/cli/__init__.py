"""``geo-service``: migrate, boundaries, locate, db, serve, demo."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from geo_service.batch.cli import batch_app
from geo_service.errors import GeoServiceError
from geo_service.settings import PROJECT_ROOT, Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from geo_service.boundaries.publish import Switch

app = typer.Typer(no_args_is_help=True, help="Grid-governance spatial core.")
boundaries_app = typer.Typer(no_args_is_help=True, help="Boundary versions: import, publish.")
db_app = typer.Typer(no_args_is_help=True, help="The private PostGIS cluster.")
keys_app = typer.Typer(no_args_is_help=True, help="API keys and roles.")
reports_app = typer.Typer(no_args_is_help=True, help="Reports and their closed loop.")
users_app = typer.Typer(no_args_is_help=True, help="People who sign in to the pages.")
app.add_typer(boundaries_app, name="boundaries")
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
app.add_typer(reports_app, name="reports")
app.add_typer(users_app, name="users")
app.add_typer(batch_app, name="batch")
stats_app = typer.Typer(no_args_is_help=True, help="The command centre's figures and reports.")
app.add_typer(stats_app, name="stats")
console = Console()

DEMO_LAYOUT = PROJECT_ROOT / "boundaries" / "xiuzhou_demo.geojson"
DEMO_LABEL = "xiuzhou-demo-2025"
DEMO_EFFECTIVE = dt.date(2025, 1, 1)


def _url() -> str:
    from geo_service.db.engine import resolve_database_url

    return resolve_database_url(Settings().database)


def _fail(exc: GeoServiceError) -> None:
    console.print(f"[red]error ({exc.code}):[/red] {exc.message}")
    if isinstance(exc.details, list):
        for item in exc.details[:50]:
            console.print(f"  - {item.get('message', item) if isinstance(item, dict) else item}")
        if len(exc.details) > 50:
            console.print(f"  ... and {len(exc.details) - 50} more")
    raise typer.Exit(2)


@app.command()
def migrate() -> None:
    """Bring the database (DATABASE_URL, or the private cluster) to the current schema."""
    from geo_service.db.migrate import current_revision, upgrade

    url = _url()
    upgrade(url)
    console.print(f"schema at revision {current_revision(url)}")


@boundaries_app.command("import")
def boundaries_import(
    path: Annotated[Path, typer.Argument(help="GeoJSON, GeoPackage or zipped Shapefile")],
    version: Annotated[str, typer.Option("--version", help="label of the new version")],
    crs: Annotated[str | None, typer.Option(help="wgs84|cgcs2000|gcj02|bd09|EPSG:n")] = None,
    effective_from: Annotated[str | None, typer.Option(help="YYYY-MM-DD")] = None,
    publish: Annotated[bool, typer.Option("--publish", help="publish on import")] = False,
    tolerance_m2: Annotated[float, typer.Option(help="overlap/gap tolerance, m²")] = 1.0,
) -> None:
    """Validate a layout and store it as a new boundary version (nothing written if refused)."""
    from geo_service.boundaries.importer import import_layout
    from geo_service.boundaries.versions import parse_date
    from geo_service.db.engine import make_engine

    engine = make_engine(_url(), pool_size=1)
    try:
        with console.status(f"importing {path.name}..."):
            summary = import_layout(
                engine,
                path,
                version,
                crs=crs,
                effective_from=parse_date(effective_from),
                publish=publish,
                tolerance_m2=tolerance_m2,
            )
    except GeoServiceError as exc:
        _fail(exc)
        return
    finally:
        engine.dispose()
    v = summary.version
    console.print(
        f"version [bold]{v.label}[/bold] (id {v.id}) {v.status}"
        + (f" from {v.effective_from}" if v.effective_from else "")
        + f": {summary.counts}, {summary.new_areas} new areas, {summary.shared_areas} shared"
    )
    if summary.published is not None:
        _print_switch(summary.published)


@boundaries_app.command("validate")
def boundaries_validate(
    path: Path,
    crs: Annotated[str | None, typer.Option()] = None,
    tolerance_m2: Annotated[float, typer.Option()] = 1.0,
) -> None:
    """Check a layout without writing anything; list every problem with its location."""
    from geo_service.boundaries.reader import read_layout
    from geo_service.boundaries.validation import validate_layout

    try:
        layout = read_layout(path, crs=crs)
    except GeoServiceError as exc:
        _fail(exc)
        return
    problems = validate_layout(layout.frame, tolerance_m2)
    for p in problems:
        console.print(f"- {p.kind}: {p.message} at {p.location}")
    console.print(f"{len(layout.frame)} features, {len(problems)} problem(s)")
    if problems:
        raise typer.Exit(1)


def _print_switch(done: Switch) -> None:
    """What a publish or rollback did to the versions and to open cases."""
    v, other = done.version, done.other
    if done.mode == "published":
        console.print(
            f"version {v.label} (id {v.id}) published from {v.effective_from}"
            + (f", replacing {other.label} (id {other.id})" if other else "")
        )
    else:
        assert other is not None, "a rollback names the version it took back"
        console.print(
            f"version {other.label} (id {other.id}) rolled back ({done.mode}); "
            f"{v.label} (id {v.id}) is in force again"
        )
    moved = done.rerouted
    if moved is None:
        console.print("open cases follow on that day (boundaries reroute-open-cases)")
    else:
        console.print(
            f"{moved.open_cases} open case(s) checked, {moved.moved} moved to another grid, "
            f"{moved.unit_changed} given another unit"
        )


@boundaries_app.command("publish")
def boundaries_publish(
    version: Annotated[str, typer.Argument(help="label or id of a draft")],
    effective_from: Annotated[str | None, typer.Option(help="YYYY-MM-DD, default today")] = None,
) -> None:
    """Publish a draft from a date, as the HTTP publish does: refused with every validation
    error, units seeded, open cases re-routed when it is in force today."""
    from geo_service.boundaries import publish
    from geo_service.boundaries.versions import parse_date
    from geo_service.db.engine import make_engine

    engine = make_engine(_url(), pool_size=1)
    try:
        day = parse_date(effective_from) or dt.date.today()
        done = publish.publish(engine, version, day, limits=Settings().planning)
    except GeoServiceError as exc:
        _fail(exc)
        return
    finally:
        engine.dispose()
    _print_switch(done)


@boundaries_app.command("rollback")
def boundaries_rollback(
    version: Annotated[str, typer.Argument(help="label or id of the latest published version")],
) -> None:
    """Take back the latest published version; the one it replaced is in force again and
    still-open cases move back, as the HTTP rollback does."""
    from geo_service.boundaries import publish
    from geo_service.db.engine import make_engine

    engine = make_engine(_url(), pool_size=1)
    try:
        done = publish.rollback(engine, version)
    except GeoServiceError as exc:
        _fail(exc)
        return
    finally:
        engine.dispose()
    _print_switch(done)


@boundaries_app.command("reroute-open-cases")
def boundaries_reroute_open_cases() -> None:
    """Move open cases to the version in force today (after a publish dated later); from cron."""
    from geo_service.boundaries.publish import IN_FORCE, follow_in_force
    from geo_service.db.engine import make_engine

    engine = make_engine(_url(), pool_size=1)
    try:
        with engine.begin() as conn:
            done = follow_in_force(conn, None, IN_FORCE)
    finally:
        engine.dispose()
    console.print(
        f"{done.open_cases} open case(s) checked, {done.moved} moved to another grid, "
        f"{done.unit_changed} given another unit"
    )


@boundaries_app.command("list")
def boundaries_list() -> None:
    """The boundary versions, newest first."""
    from geo_service.boundaries import versions
    from geo_service.db.engine import make_engine

    engine = make_engine(_url(), pool_size=1)
    with engine.connect() as conn:
        rows = versions.list_versions(conn)
    engine.dispose()
    table = Table("id", "label", "status", "from", "to")
    for v in rows:
        table.add_row(
            str(v.id), v.label, v.status, str(v.effective_from or ""), str(v.effective_to or "")
        )
    console.print(table)


@app.command()
def locate(
    lon: float,
    lat: float,
    crs: Annotated[str, typer.Option()] = "wgs84",
    as_of: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Print the grid that owns one point (from the version in force)."""
    from geo_service.locator import Locator

    try:
        loc = Locator.from_database(_url(), as_of=as_of)
        res = loc.locate([lon], [lat], crs=crs)
    except GeoServiceError as exc:
        _fail(exc)
        return
    g = int(res.grid_index[0])
    out = {"grid": None if g < 0 else loc.chain(g), "version": loc.version.as_dict()}
    console.print_json(json.dumps(out, ensure_ascii=False))


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="reporter|grid_worker|operator|planner|admin")],
    label: Annotated[str | None, typer.Option(help="who holds the key")] = None,
    scope: Annotated[str | None, typer.Option(help="area code a grid worker covers")] = None,
) -> None:
    """Create an API key; the key is printed alone on the last line (only its hash is kept)."""
    from geo_service.auth import create_key
    from geo_service.db.engine import make_engine

    engine = make_engine(_url(), pool_size=1)
    try:
        with engine.begin() as conn:
            key = create_key(conn, role, label=label, scope=scope)
    except GeoServiceError as exc:
        _fail(exc)
        return
    finally:
        engine.dispose()
    console.print(f"{role} key created" + (f" for {scope}" if scope else "") + ":")
    print(key)


@keys_app.command("revoke")
def keys_revoke(
    key: Annotated[str, typer.Argument(help="the key's id, its gs_… prefix or its label")],
) -> None:
    """Revoke an API key: refused on every worker within a second; audited, never deleted."""
    from geo_service.auth import revoke_key
    from geo_service.db.engine import make_engine

    engine = make_engine(_url(), pool_size=1)
    try:
        with engine.begin() as conn:
            row = revoke_key(conn, key)
    except GeoServiceError as exc:
        _fail(exc)
        return
    finally:
        engine.dispose()
    label = f" ({row.label})" if row.label else ""
    console.print(f"{row.role} key {row.id} {row.prefix}…{label} revoked")


@keys_app.command("list")
def keys_list() -> None:
    """Every API key: id, prefix, role, label, scope, created, revoked (never the key)."""
    from geo_service.db.engine import make_engine
    from geo_service.store.keys import all_keys

    engine = make_engine(_url(), pool_size=1)
    try:
        with engine.connect() as conn:
            rows = all_keys(conn)
    finally:
        engine.dispose()
    table = Table("id", "prefix", "role", "label", "scope", "created", "revoked")
    for r in rows:
        table.add_row(
            str(r.id),
            r.prefix,
            r.role,
            r.label or "",
            r.scope_area_code or "",
            r.created_at.isoformat(timespec="seconds"),
            r.revoked_at.isoformat(timespec="seconds") if r.revoked_at else "",
        )
    console.print(table)


@users_app.command("create")
def users_create(
    name: Annotated[str, typer.Argument(help="the user name to sign in with")],
    role: Annotated[str, typer.Option(help="reporter|grid_worker|operator|planner|admin")],
    scope: Annotated[str | None, typer.Option(help="area code a grid worker covers")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from standard input")
    ] = False,
) -> None:
    """Add a user who signs in to the pages (only an argon2 hash of the password is kept)."""
    import sys

    from geo_service.accounts import create_user
    from geo_service.db.engine import make_engine

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    engine = make_engine(_url(), pool_size=1)
    try:
        with engine.begin() as conn:
            user_id = create_user(conn, name, role, password, scope)
    except GeoServiceError as exc:
        _fail(exc)
        return
    finally:
        engine.dispose()
    where = f", {scope}" if scope else ""
    console.print(f"user {name} ({role}{where}) created: id {user_id}")


@users_app.command("disable")
def users_disable(name: Annotated[str, typer.Argument(help="the user name")]) -> None:
    """Disable a user: it cannot sign in, and its open sessions end at once; audited."""
    from geo_service.accounts import disable_user
    from geo_service.db.engine import make_engine

    engine = make_engine(_url(), pool_size=1)
    try:
        with engine.begin() as conn:
            disable_user(conn, name)
    except GeoServiceError as exc:
        _fail(exc)
        return
    finally:
        engine.dispose()
    console.print(f"user {name} disabled; its sessions ended")


@users_app.command("list")
def users_list() -> None:
    """Every user: id, name, role, scope, created, disabled (never a password hash)."""
    from geo_service.accounts import list_users
    from geo_service.db.engine import make_engine

    engine = make_engine(_url(), pool_size=1)
    try:
        with engine.connect() as conn:
            rows = list_users(conn)
    finally:
        engine.dispose()
    table = Table("id", "name", "role", "scope", "created", "disabled")
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["username"],
            r["role"],
            r["scope"] or "",
            r["created_at"].isoformat(timespec="seconds"),
            r["disabled_at"].isoformat(timespec="seconds") if r["disabled_at"] else "",
        )
    console.print(table)


@reports_app.command("escalate-overdue")
def reports_escalate_overdue() -> None:
    """Escalate every open overdue case one level (once per SLA period); run it from cron."""
    from geo_service.db.engine import make_engine
    from geo_service.reports.workflow import escalate_overdue
    from geo_service.routing import RoutingTable

    engine = make_engine(_url(), pool_size=1)
    try:
        with engine.begin() as conn:
            n = escalate_overdue(conn, dt.datetime.now(dt.UTC), RoutingTable.load(conn))
    finally:
        engine.dispose()
    console.print(f"{n} overdue case(s) escalated")


@stats_app.command("report")
def stats_report(
    period: Annotated[str, typer.Option(help="day|week|month|quarter")],
    date: Annotated[str, typer.Option("--date", help="a day in the period, YYYY-MM-DD")],
    output: Annotated[Path, typer.Option("-o", "--output", help="the file to write")],
    fmt: Annotated[str, typer.Option("--format", help="html|pdf|xlsx")] = "pdf",
    as_of: Annotated[
        str | None, typer.Option(help="figures as of this moment (ISO; no zone: Beijing)")
    ] = None,
    area: Annotated[str | None, typer.Option(help="only the cases in this area code")] = None,
) -> None:
    """Print the period's report in Chinese: figures per town, community, grid and unit,
    ranking, trend charts, hot-spot map, overdue and supervised cases."""
    from geo_service.db.engine import make_engine
    from geo_service.errors import InvalidInput
    from geo_service.stats.report import build_report, check_format, render

    try:
        check_format(fmt)
        day = dt.date.fromisoformat(date)
        moment = dt.datetime.fromisoformat(as_of) if as_of else None
    except ValueError as exc:
        _fail(InvalidInput(f"--date / --as-of: {exc}"))
        return
    except GeoServiceError as exc:
        _fail(exc)
        return
    engine = make_engine(_url(), pool_size=2)
    try:
        with console.status(f"building the {period} report..."):
            report = build_report(engine, period, day, as_of=moment, area=area)
            data = render(report, fmt)
    except GeoServiceError as exc:
        _fail(exc)
        return
    finally:
        engine.dispose()
    output.write_bytes(data)
    console.print(f"{report.title} · {report.period_zh}: {output} ({len(data):,} bytes)")


def _progress() -> Progress:
    """A rich progress bar for storing reports: count, rate, elapsed and remaining time."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )


def _reporting(
    bar: Progress, description: str, expected: int | None = None
) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback that drives one task of ``bar``: shown at once
    when the ``expected`` total is known, else from the first call (so a refused import,
    which stores nothing, shows no bar)."""
    tasks: list[TaskID] = []
    if expected is not None:
        tasks.append(bar.add_task(description, total=expected, rate=""))
    started = time.perf_counter()

    def update(done: int, total: int) -> None:
        if not tasks:
            tasks.append(bar.add_task(description, total=total, rate=""))
        elapsed = time.perf_counter() - started
        rate = f"{done / elapsed:,.0f} reports/s" if done and elapsed > 0 else ""
        bar.update(tasks[0], completed=done, total=total, rate=rate)

    return update


@reports_app.command("import")
def reports_import(
    path: Annotated[Path, typer.Argument(help="CSV, GeoJSON or GeoParquet of past reports")],
    fmt: Annotated[
        str | None, typer.Option("--format", help="csv|geojson|parquet (default: by suffix)")
    ] = None,
    crs: Annotated[
        str, typer.Option(help="CRS of rows without a crs value: wgs84|cgcs2000|gcj02|bd09|EPSG:n")
    ] = "wgs84",
    skip_bad: Annotated[
        bool,
        typer.Option("--skip-bad", help="store the good rows (default: any bad row refuses all)"),
    ] = False,
) -> None:
    """Import past reports, each located in the boundary version in force on its day and
    routed as at intake, in one transaction; a bad row refuses the file (exit 1, nothing
    written) unless --skip-bad. Re-importing adds only rows not stored before."""
    from geo_service.db.engine import make_engine
    from geo_service.reports.import_versions import BoundaryTimeline
    from geo_service.reports.importer import import_history, open_history
    from geo_service.routing import RoutingTable

    engine = make_engine(_url(), pool_size=1)
    try:
        with console.status(f"reading {path.name}..."):
            history = open_history(path, fmt)
            timeline = BoundaryTimeline.from_database(engine)
            with engine.connect() as conn:
                routing = RoutingTable.load(conn)
        console.print(f"{path.name}: {len(history.frame):,} {history.kind} rows")
        with _progress() as bar:
            stats = import_history(
                engine,
                history.frame,
                timeline,
                routing,
                progress=_reporting(bar, "storing"),
                default_crs=crs,
                atomic=True,
                refuse_any=not skip_bad,
            )
    except GeoServiceError as exc:
        _fail(exc)
        return
    finally:
        engine.dispose()
    if stats.ignored_columns:
        console.print(f"[yellow]ignored columns:[/yellow] {', '.join(stats.ignored_columns)}")
    if stats.refused:
        console.print(
            f"[red]{len(stats.refused):,} row(s) refused[/red]"
            + ("" if stats.written else ": nothing written")
        )
        for row, reason in stats.refused[:50]:
            console.print(f"  - {history.where(row)}: {reason}", highlight=False, soft_wrap=True)
        if len(stats.refused) > 50:
            console.print(f"  ... and {len(stats.refused) - 50:,} more")
    if stats.written or not stats.refused:
        versions = ", ".join(f"{label}: {n:,}" for label, n in stats.by_version.items())
        console.print(
            f"stored {stats.stored:,} report(s) ({stats.outside_coverage:,} outside coverage, "
            f"{stats.events:,} loop events), {stats.skipped:,} already there, "
            f"in {stats.seconds:.1f} s"
            + (f"; by boundary version: {versions}" if versions else ""),
            soft_wrap=True,
        )
    if stats.refused:
        raise typer.Exit(1)


@db_app.command("url")
def db_url() -> None:
    """Print the database URL in use (starting the private cluster if needed)."""
    print(_url())


@db_app.command("stop")
def db_stop() -> None:
    """Stop the private cluster."""
    from geo_service.db.cluster import PrivateCluster

    PrivateCluster(Settings().database.data_dir).stop()


@db_app.command("repair-heat")
def db_repair_heat(
    rebuild: Annotated[
        bool, typer.Option(help="also recount the heat roll-up from the reports")
    ] = False,
) -> None:
    """Give reports stored without an H3 cell (a point moved by hand, a foreign writer) theirs
    and, with --rebuild, recount the heat roll-up: repairs, never needed in normal running."""
    from geo_service.db.engine import make_engine
    from geo_service.store import rollups

    engine = make_engine(_url(), pool_size=1)
    try:
        with engine.begin() as conn:
            filled = rollups.fill_h3_cells(conn)
            recounted = rollups.rebuild_heat_rollup(conn) if rebuild else None
    finally:
        engine.dispose()
    console.print(f"{filled} report cells filled")
    if recounted is not None:
        console.print(f"heat roll-up rebuilt: {recounted} rows")


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
        os.environ["DATABASE_URL"] = _url()  # one cluster for every worker
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


@app.command()
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
    with _progress() as bar:
        report = _reporting(bar, "demo year", expected=n)
        stats = load_demo_history(engine, locator, routing, n=n, progress=report)
    assert stats is not None  # fewer than n were stored
    console.print(
        f"demo year: {stats.stored:,} reports stored ({stats.events:,} loop events, "
        f"{stats.skipped:,} already there) in {time.perf_counter() - started:.1f} s"
    )


@app.command()
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

    url = _url()
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
