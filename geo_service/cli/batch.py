"""``geo-service batch``: export, relocate and rollup on Dask over GeoParquet (heavy imports
inside the commands, so the rest of the CLI starts fast)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from geo_service.cli.common import (
    command_engine,
    console,
    database_url,
    fail,
    progress_bar,
    reporting,
)
from geo_service.errors import GeoServiceError

if TYPE_CHECKING:
    from distributed import Client

batch_app = typer.Typer(
    no_args_is_help=True,
    help="Batch work on Dask over GeoParquet: export, relocate, rollup.",
)

Scheduler = Annotated[
    str | None,
    typer.Option(help="join an existing Dask cluster: tcp://HOST:8786 (`dask scheduler`)"),
]
Workers = Annotated[
    int | None,
    typer.Option(help="start a local cluster of N worker processes (default: one per core)"),
]


@contextmanager
def _cluster(scheduler: str | None, workers: int | None) -> Iterator[Client]:
    """The client for a command, printing the cluster and its dashboard address."""
    from geo_service.batch.cluster import batch_client, describe

    with ExitStack() as stack:
        with console.status("connecting to Dask..." if scheduler else "starting Dask workers..."):
            client = stack.enter_context(batch_client(scheduler, workers))
        console.print(describe(client), soft_wrap=True)
        yield client


@batch_app.command("export")
def export(
    out_dir: Annotated[Path, typer.Argument(metavar="DIR", help="a new or empty folder")],
    since: Annotated[
        str | None, typer.Option("--from", help="first Beijing day, YYYY-MM-DD (included)")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--to", help="last Beijing day, YYYY-MM-DD (excluded)")
    ] = None,
) -> None:
    """Write stored reports as GeoParquet, hive-partitioned by month and district."""
    from geo_service.batch.export import export_reports
    from geo_service.boundaries.versions import parse_date

    with command_engine() as engine, progress_bar() as bar:
        stats = export_reports(
            engine,
            out_dir,
            parse_date(since),
            parse_date(until),
            progress=reporting(bar, "exporting", unit="reports"),
        )
    console.print(
        f"exported {stats.rows:,} report(s) to {out_dir}: {len(stats.files)} file(s) in "
        f"{len(stats.partitions)} (month, district) partition(s), {stats.seconds:.1f} s",
        soft_wrap=True,
    )


@batch_app.command("relocate")
def relocate(
    src: Annotated[Path, typer.Argument(help="GeoParquet file or folder (point geometry, id)")],
    out: Annotated[Path, typer.Option("--out", help="a new or empty folder")],
    version: Annotated[
        str | None, typer.Option("--version", help="boundary version label or id")
    ] = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="the version in force on YYYY-MM-DD")
    ] = None,
    layout: Annotated[
        Path | None, typer.Option("--layout", help="a layout file (GeoJSON, GeoPackage, zip)")
    ] = None,
    scheduler: Scheduler = None,
    workers: Workers = None,
) -> None:
    """Locate every point of SRC on a Dask cluster and write it with its new codes."""
    from geo_service.batch.dataset import open_source
    from geo_service.batch.relocate import open_layout
    from geo_service.batch.relocate import relocate as run

    try:
        with console.status("checking the source and loading the layout..."):
            source = open_source(src)
            sharded = open_layout(database_url, version=version, as_of=as_of, layout=layout)
        console.print(
            f"{src}: {source.rows:,} rows in {len(source.files)} file(s), "
            f"{len(source.pieces)} task(s); layout {sharded.version.label}: "
            f"{sharded.n_grids:,} grids in {len(sharded.keys)} shard(s)",
            soft_wrap=True,
        )
        with _cluster(scheduler, workers) as client, progress_bar() as bar:
            progress = reporting(bar, "relocating", unit="tasks")
            stats = run(client, source, sharded, out, progress=progress)
    except GeoServiceError as exc:
        fail(exc)
    held = ", ".join(f"{len(s)}" for s in stats.shards_used.values())
    moved = "" if stats.moved is None else f", {stats.moved:,} moved to another grid"
    console.print(
        f"relocated {stats.rows:,} row(s) into {out}: {stats.located:,} located{moved}, "
        f"{stats.no_point:,} without a point; {stats.files} file(s) in {stats.seconds:.1f} s "
        f"({stats.rows / max(stats.seconds, 1e-9):,.0f} rows/s); shards per worker: {held}",
        soft_wrap=True,
    )


@batch_app.command("rollup")
def rollup(
    src: Annotated[Path, typer.Argument(help="GeoParquet of reports (exported or relocated)")],
    by: Annotated[str, typer.Option("--by", help="grid|community|town|h3:RES")],
    period: Annotated[str, typer.Option("--period", help="day|week|month")],
    out: Annotated[Path, typer.Option("--out", help="a new or empty folder")],
    load: Annotated[
        bool, typer.Option("--load", help="also load the counts into PostGIS (batch_rollups)")
    ] = False,
    scheduler: Scheduler = None,
    workers: Workers = None,
) -> None:
    """Count reports per area or H3 cell and period, by category and channel."""
    from geo_service.batch.dataset import open_source
    from geo_service.batch.rollup import RollupSpec, check_columns, load_rollup
    from geo_service.batch.rollup import rollup as run

    try:
        spec = RollupSpec.parse(by, period)
        source = open_source(src, require=())
        check_columns(source, spec)
        console.print(
            f"{src}: {source.rows:,} rows in {len(source.files)} file(s), "
            f"{len(source.pieces)} task(s)",
            soft_wrap=True,
        )
        with _cluster(scheduler, workers) as client, progress_bar() as bar:
            progress = reporting(bar, "counting", unit="tasks")
            stats = run(client, source, spec, out, progress=progress)
        console.print(
            f"{stats.counted:,} of {stats.rows:,} report(s) counted in {stats.groups:,} "
            f"row(s), {stats.files} file(s) in {out}, {stats.seconds:.1f} s",
            soft_wrap=True,
        )
        if load:
            with command_engine() as engine, console.status("loading into PostGIS..."):
                rows = load_rollup(engine, out, spec, str(src))
            console.print(f"loaded {rows:,} row(s) into batch_rollups ({spec.by}, {period})")
    except GeoServiceError as exc:
        fail(exc)
