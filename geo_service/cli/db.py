"""``geo-service db``: the database in use: its URL, stopping the private cluster, and
repairs of derived data."""

from __future__ import annotations

from typing import Annotated

import typer

from geo_service.cli.common import command_engine, console, database_url
from geo_service.settings import Settings

db_app = typer.Typer(no_args_is_help=True, help="The private PostGIS cluster.")


@db_app.command("url")
def db_url() -> None:
    """Print the database URL in use (starting the private cluster if needed)."""
    print(database_url())


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
    from geo_service.store import rollups

    with command_engine() as engine, engine.begin() as conn:
        filled = rollups.fill_h3_cells(conn)
        recounted = rollups.rebuild_heat_rollup(conn) if rebuild else None
    console.print(f"{filled} report cells filled")
    if recounted is not None:
        console.print(f"heat roll-up rebuilt: {recounted} rows")
