"""``geo-service boundaries``: import, validate, publish and roll back boundary versions,
through the same paths as the HTTP API."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from geo_service.cli.common import command_engine, console, fail
from geo_service.errors import GeoServiceError
from geo_service.settings import Settings

if TYPE_CHECKING:
    from geo_service.boundaries.publish import Switch

boundaries_app = typer.Typer(no_args_is_help=True, help="Boundary versions: import, publish.")


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

    with command_engine() as engine, console.status(f"importing {path.name}..."):
        summary = import_layout(
            engine,
            path,
            version,
            crs=crs,
            effective_from=parse_date(effective_from),
            publish=publish,
            tolerance_m2=tolerance_m2,
        )
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
        fail(exc)
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

    with command_engine() as engine:
        day = parse_date(effective_from) or dt.date.today()
        done = publish.publish(engine, version, day, limits=Settings().planning)
    _print_switch(done)


@boundaries_app.command("rollback")
def boundaries_rollback(
    version: Annotated[str, typer.Argument(help="label or id of the latest published version")],
) -> None:
    """Take back the latest published version; the one it replaced is in force again and
    still-open cases move back, as the HTTP rollback does."""
    from geo_service.boundaries import publish

    with command_engine() as engine:
        done = publish.rollback(engine, version)
    _print_switch(done)


@boundaries_app.command("reroute-open-cases")
def boundaries_reroute_open_cases() -> None:
    """Move open cases to the version in force today (after a publish dated later); from cron."""
    from geo_service.boundaries.publish import IN_FORCE, follow_in_force

    with command_engine() as engine, engine.begin() as conn:
        done = follow_in_force(conn, None, IN_FORCE)
    console.print(
        f"{done.open_cases} open case(s) checked, {done.moved} moved to another grid, "
        f"{done.unit_changed} given another unit"
    )


@boundaries_app.command("list")
def boundaries_list() -> None:
    """The boundary versions, newest first."""
    from geo_service.boundaries import versions

    with command_engine() as engine, engine.connect() as conn:
        rows = versions.list_versions(conn)
    table = Table("id", "label", "status", "from", "to")
    for v in rows:
        table.add_row(
            str(v.id), v.label, v.status, str(v.effective_from or ""), str(v.effective_to or "")
        )
    console.print(table)
