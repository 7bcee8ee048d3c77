"""``geo-service reports`` and ``stats``: the closed loop's cron job, the history import
and the printed period report; the commands that work on stored reports."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from geo_service.cli.common import (
    command_engine,
    console,
    fail,
    progress_bar,
    reporting,
)
from geo_service.errors import GeoServiceError

reports_app = typer.Typer(no_args_is_help=True, help="Reports and their closed loop.")
stats_app = typer.Typer(no_args_is_help=True, help="The command centre's figures and reports.")


@reports_app.command("escalate-overdue")
def reports_escalate_overdue() -> None:
    """Escalate every open overdue case one level (once per SLA period); run it from cron."""
    from geo_service.reports.workflow import escalate_overdue
    from geo_service.routing import RoutingTable

    with command_engine() as engine, engine.begin() as conn:
        n = escalate_overdue(conn, dt.datetime.now(dt.UTC), RoutingTable.load(conn))
    console.print(f"{n} overdue case(s) escalated")


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
    from geo_service.reports.import_versions import BoundaryTimeline
    from geo_service.reports.importer import import_history, open_history
    from geo_service.routing import RoutingTable

    with command_engine() as engine:
        with console.status(f"reading {path.name}..."):
            history = open_history(path, fmt)
            timeline = BoundaryTimeline.from_database(engine)
            with engine.connect() as conn:
                routing = RoutingTable.load(conn)
        console.print(f"{path.name}: {len(history.frame):,} {history.kind} rows")
        with progress_bar() as bar:
            stats = import_history(
                engine,
                history.frame,
                timeline,
                routing,
                progress=reporting(bar, "storing"),
                default_crs=crs,
                atomic=True,
                refuse_any=not skip_bad,
            )
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
    from geo_service.errors import InvalidInput
    from geo_service.stats.report import build_report, check_format, render

    try:
        check_format(fmt)
        day = dt.date.fromisoformat(date)
        moment = dt.datetime.fromisoformat(as_of) if as_of else None
    except ValueError as exc:
        fail(InvalidInput(f"--date / --as-of: {exc}"))
        return
    except GeoServiceError as exc:
        fail(exc)
    status = console.status(f"building the {period} report...")
    with command_engine(pool_size=2) as engine, status:
        report = build_report(engine, period, day, as_of=moment, area=area)
        data = render(report, fmt)
    output.write_bytes(data)
    console.print(f"{report.title} · {report.period_zh}: {output} ({len(data):,} bytes)")
