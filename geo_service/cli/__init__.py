"""``geo-service``: migrate, boundaries, locate, db, serve, demo.

One module per command group (``boundaries``, ``access``, ``reports``, ``db``, ``serve``), the
helpers they share in ``common``; this module builds ``app`` and registers them in order."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from geo_service.cli.access import keys_app, users_app
from geo_service.cli.batch import batch_app
from geo_service.cli.boundaries import boundaries_app
from geo_service.cli.common import console, database_url, fail
from geo_service.cli.db import db_app
from geo_service.cli.reports import reports_app, stats_app
from geo_service.cli.serve import demo, numba_threads_per_worker
from geo_service.cli.serve import serve as serve_command  # the module keeps the name ``serve``
from geo_service.errors import GeoServiceError

__all__ = ["app", "numba_threads_per_worker"]

app = typer.Typer(no_args_is_help=True, help="Grid-governance spatial core.")
app.add_typer(boundaries_app, name="boundaries")
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
app.add_typer(reports_app, name="reports")
app.add_typer(users_app, name="users")
app.add_typer(batch_app, name="batch")
app.add_typer(stats_app, name="stats")


@app.command()
def migrate() -> None:
    """Bring the database (DATABASE_URL, or the private cluster) to the current schema."""
    from geo_service.db.migrate import current_revision, upgrade

    url = database_url()
    upgrade(url)
    console.print(f"schema at revision {current_revision(url)}")


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
        loc = Locator.from_database(database_url(), as_of=as_of)
        res = loc.locate([lon], [lat], crs=crs)
    except GeoServiceError as exc:
        fail(exc)
    g = int(res.grid_index[0])
    out = {"grid": None if g < 0 else loc.chain(g), "version": loc.version.as_dict()}
    console.print_json(json.dumps(out, ensure_ascii=False))


app.command()(serve_command)
app.command()(demo)
