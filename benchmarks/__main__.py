"""Run benchmark sections: ``python -m benchmarks`` runs all, ``python -m benchmarks locate`` one.

A section is a module in this package with a ``run() -> None`` function; add new ones (intake,
tiles, ...) to :data:`SECTIONS`.
"""

from __future__ import annotations

import argparse
import importlib
import time
from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console


@dataclass(frozen=True)
class Section:
    """One benchmark section: a name on the command line and the module that runs it."""

    name: str
    module: str
    summary: str


SECTIONS: tuple[Section, ...] = (
    Section("locate", "benchmarks.locate", "point → grid: Locator vs sjoin, STRtree, PostGIS"),
    Section(
        "locate_http", "benchmarks.locate_http", "GET /v1/locate vs one PostGIS query per point"
    ),
    Section("intake", "benchmarks.intake", "bulk intake over HTTP vs raw COPY of the same rows"),
    Section("impact", "benchmarks.impact", "a draft changing 10 % of grids vs 1 M reports"),
    Section("hotspots", "benchmarks.hotspots", "Gi* on 50,000 H3 cells: ours vs esda.G_Local"),
    Section("tiles", "benchmarks.tiles", "vector tiles z10-z15: ours cold/warm vs tipg"),
    Section("stats", "benchmarks.stats", "a year's figures per grid/unit: facts vs plain SQL"),
    Section("console", "benchmarks.console", "the wall screen's calls from 4 screens: p50/p95"),
    Section(
        "batch",
        "benchmarks.batch",
        "10 M points relocated on Dask, 1 vs 2 workers vs in-process; province-sized layouts "
        "(GEO_BENCH_BATCH_POINTS, GEO_BENCH_BATCH_PROVINCE_GRIDS)",
    ),
)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the section names and run them in order, timing each one."""
    names = [s.name for s in SECTIONS]
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="geo_service benchmarks; no argument runs every section.",
        epilog="sections: " + "; ".join(f"{s.name} ({s.summary})" for s in SECTIONS),
    )
    parser.add_argument("sections", nargs="*", metavar="section", help=", ".join(names))
    args = parser.parse_args(argv)
    unknown = sorted(set(args.sections) - set(names))
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(names)}")
    chosen = [s for s in SECTIONS if not args.sections or s.name in args.sections]
    console = Console()
    started = time.perf_counter()
    for section in chosen:
        console.rule(f"[bold]{section.name}[/bold]: {section.summary}")
        t0 = time.perf_counter()
        importlib.import_module(section.module).run()
        console.print(f"[dim]section {section.name} took {time.perf_counter() - t0:.1f} s[/dim]")
    console.print(f"[bold]benchmarks done in {time.perf_counter() - started:.1f} s[/bold]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
