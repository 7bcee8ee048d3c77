"""What every ``geo-service`` command group shares, defined once: the console, the database
URL, the error printer, the progress bar for storing reports and the demo's layout."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, NoReturn

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

from geo_service.errors import GeoServiceError
from geo_service.settings import PROJECT_ROOT, Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

console = Console()

DEMO_LAYOUT = PROJECT_ROOT / "boundaries" / "xiuzhou_demo.geojson"
DEMO_LABEL = "xiuzhou-demo-2025"
DEMO_EFFECTIVE = dt.date(2025, 1, 1)


def database_url() -> str:
    from geo_service.db.engine import resolve_database_url

    return resolve_database_url(Settings().database)


def fail(exc: GeoServiceError) -> NoReturn:
    """Print the error (and its first 50 details) and end the command with exit code 2."""
    console.print(f"[red]error ({exc.code}):[/red] {exc.message}", soft_wrap=True)
    if isinstance(exc.details, list):
        for item in exc.details[:50]:
            console.print(f"  - {item.get('message', item) if isinstance(item, dict) else item}")
        if len(exc.details) > 50:
            console.print(f"  ... and {len(exc.details) - 50} more")
    raise typer.Exit(2)


@contextmanager
def command_engine(pool_size: int = 1) -> Iterator[Engine]:
    """An engine on the database for one command, disposed at the end; a
    :class:`GeoServiceError` from the work is printed and ends the command (exit 2)."""
    from geo_service.db.engine import make_engine

    engine = make_engine(database_url(), pool_size=pool_size)
    try:
        yield engine
    except GeoServiceError as exc:
        fail(exc)
    finally:
        engine.dispose()


def progress_bar() -> Progress:
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


def reporting(
    bar: Progress, description: str, expected: int | None = None, *, unit: str = "reports"
) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback that drives one task of ``bar`` (its rate in
    ``unit``/s): shown at once when the ``expected`` total is known, else from the first call
    (so a refused import, which stores nothing, shows no bar)."""
    tasks: list[TaskID] = []
    if expected is not None:
        tasks.append(bar.add_task(description, total=expected, rate=""))
    started = time.perf_counter()

    def update(done: int, total: int) -> None:
        if not tasks:
            tasks.append(bar.add_task(description, total=total, rate=""))
        elapsed = time.perf_counter() - started
        rate = f"{done / elapsed:,.0f} {unit}/s" if done and elapsed > 0 else ""
        bar.update(tasks[0], completed=done, total=total, rate=rate)

    return update
