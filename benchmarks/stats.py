"""Figures benchmark: the indicators for a whole year, per grid and per unit, from the
per-case facts against the same figures computed by one plain SQL aggregate over ``reports``
and ``report_events``, in one run, on the demo year.

A throw-away database with the Xiuzhou demo boundaries and the demo's synthetic year of
200,000 reports (``load_demo_history``, as ``make demo`` loads it; the fact table is filled by
its triggers as the rows go in). The period is the calendar year holding most of it, as of its
last moment. Ours: :func:`geo_service.stats.indicators.indicators` in-process (the facts
cached after a first, cold read) and ``GET /v1/stats/indicators`` through a real uvicorn
server, warm, one request at a time; p50/p95/p99 of 60 calls each. Plain:
``geo_service.store.stats.reference_figures`` (window aggregates over the 1.5 M events),
best of two. Every count and median of every row must be equal; the run fails otherwise.
Target: the HTTP p95 at grid level under 100 ms.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import httpx
import numpy as np
from rich.console import Console

from benchmarks._common import ResultTable, best_of, throwaway_database
from benchmarks.intake import served
from geo_service.auth import create_key
from geo_service.boundaries.importer import import_layout
from geo_service.db.engine import make_engine
from geo_service.db.migrate import upgrade
from geo_service.locator import Locator
from geo_service.reports.importer import load_demo_history
from geo_service.reports.schemas import CHINA_TZ
from geo_service.routing import RoutingTable
from geo_service.settings import PROJECT_ROOT
from geo_service.stats.indicators import MEDIANS, IndicatorQuery, Period, indicators
from geo_service.store import stats as store

N_REPORTS: Final = int(os.environ.get("GEO_BENCH_STATS_REPORTS", "200000"))
CALLS: Final = 60
TARGET_P95_MS: Final = 100.0
DEMO_LAYOUT: Final = PROJECT_ROOT / "boundaries" / "xiuzhou_demo.geojson"
EFFECTIVE: Final = dt.date(2024, 1, 1)


def _children_cpu_s() -> float:
    """CPU seconds used so far by this process's child processes and theirs (the server)."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        used[pid] = (int(fields[11]) + int(fields[12])) / tick
    mine = {os.getpid()}
    grew = True
    while grew:
        more = {p for p, parent in parents.items() if parent in mine} - mine
        grew = bool(more)
        mine |= more
    return sum(used.get(p, 0.0) for p in mine - {os.getpid()})


def _percentiles(
    fn: Callable[[], Any], cpu: Callable[[], float] = time.process_time, n: int = CALLS
) -> tuple[float, float, float, float]:
    """p50, p95, p99 wall time of ``n`` calls and the mean CPU time per call (``cpu``: a
    CPU-seconds clock), in milliseconds, after one untimed call."""
    fn()
    times = []
    c0 = cpu()
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    cpu_ms = (cpu() - c0) / n * 1000
    p = np.percentile(times, [50, 95, 99])
    return float(p[0]), float(p[1]), float(p[2]), cpu_ms


def _compare(ours: dict[str, dict[str, Any]], plain: list[Any]) -> int:
    """Rows compared; raises on the first figure that differs."""
    for r in plain:
        row = ours[r.code]
        for name, value in r._mapping.items():
            if name == "code":
                continue
            got = row[name]
            if value is None or got is None:
                ok = value is None and got is None
            elif name in MEDIANS:
                ok = abs(got - float(value)) <= 1e-9 * max(1.0, abs(float(value)))
            else:
                ok = got == value
            if not ok:
                raise AssertionError(f"{r.code} {name}: ours {got!r}, plain SQL {value!r}")
    return len(plain)


def run() -> None:
    """Load the demo year, time both ways, check they agree, print and save the table."""
    console = Console()
    with throwaway_database("bench_stats") as url:
        upgrade(url)
        engine = make_engine(url, pool_size=4)
        import_layout(engine, DEMO_LAYOUT, "bench-stats", crs="wgs84", effective_from=EFFECTIVE,
                      publish=True)  # fmt: skip
        locator = Locator.from_database(url)
        with engine.connect() as conn:
            routing = RoutingTable.load(conn)
        t0 = time.perf_counter()
        loaded = load_demo_history(engine, locator, routing, n=N_REPORTS)
        load_s = time.perf_counter() - t0
        assert loaded is not None and loaded.stored == N_REPORTS
        with engine.begin() as conn:
            key = create_key(conn, "operator", label="bench stats")
        last = dt.datetime.now(CHINA_TZ).date() - dt.timedelta(days=1)
        year = last.year if last.timetuple().tm_yday > 182 else last.year - 1
        as_of = min(dt.datetime(year + 1, 1, 1, tzinfo=CHINA_TZ), dt.datetime.now(CHINA_TZ))
        period = Period.of("year", dt.date(year, 6, 1), as_of)
        grid_q = IndicatorQuery(period, "area", "grid")
        unit_q = IndicatorQuery(period, "unit")

        t0 = time.perf_counter()
        indicators(engine, grid_q)
        cold_s = time.perf_counter() - t0
        table = ResultTable(
            f"Figures for {year} (as of {as_of:%Y-%m-%d %H:%M}), {N_REPORTS:,} demo reports",
            ["query", "ours p50 ms", "ours p95 ms", "ours p99 ms", "ours CPU ms/call",
             "plain SQL ms", "× faster", "rows equal"],
            right_aligned=["ours p50 ms", "ours p95 ms", "ours p99 ms", "ours CPU ms/call",
                           "plain SQL ms", "× faster", "rows equal"],
        )  # fmt: skip
        p95_http = float("inf")
        # the server measured alone: its rate limits (GEO_RATE_*) would refuse a tight loop
        os.environ["GEO_RATE_ENABLED"] = "false"
        with (
            served(url, 1, startup_s=300) as base,
            httpx.Client(base_url=base, timeout=60) as client,
        ):
            params = {"period": "year", "date": f"{year}-06-01", "as_of": as_of.isoformat(),
                      "by": "area", "level": "grid"}  # fmt: skip
            headers = {"Authorization": f"Bearer {key}"}

            def http() -> None:
                r = client.get("/v1/stats/indicators", params=params, headers=headers)
                r.raise_for_status()

            http_p = _percentiles(http, _children_cpu_s)  # the server's CPU
            p95_http = http_p[1]
        del os.environ["GEO_RATE_ENABLED"]
        for label, q, length, by_unit in (
            ("year × grid (2,988 rows)", grid_q, 15, False),
            ("year × unit", unit_q, 15, True),
        ):
            ours_p = _percentiles(lambda q=q: indicators(engine, q))
            result = indicators(engine, q)
            rows = result.rows()
            if by_unit:
                ids = _unit_ids(engine)
                ours = {str(ids[r["code"]]): r for r in rows}
            else:
                ours = {r["code"]: r for r in rows}

            def plain(length: int = length, by_unit: bool = by_unit) -> list[Any]:
                with engine.connect() as conn:
                    return list(store.reference_figures(
                        conn, period.start, period.end, as_of, length=length, by_unit=by_unit
                    ))  # fmt: skip

            plain_s, plain_rows = best_of(plain, reps=2, budget_s=120)
            compared = _compare(ours, plain_rows)
            table.add(label, f"{ours_p[0]:.1f}", f"{ours_p[1]:.1f}", f"{ours_p[2]:.1f}",
                      f"{ours_p[3]:.1f}", f"{plain_s * 1000:,.0f}",
                      f"{plain_s * 1000 / ours_p[0]:,.0f}", f"{compared:,}")  # fmt: skip
            if not by_unit:
                table.add("  same over HTTP (JSON)", f"{http_p[0]:.1f}", f"{http_p[1]:.1f}",
                          f"{http_p[2]:.1f}", f"{http_p[3]:.1f}", "", "", "")  # fmt: skip
        engine.dispose()
        load = os.getloadavg()
    verdict = "target met" if p95_http < TARGET_P95_MS else "target MISSED"
    table.verdicts.append(
        f"{verdict}: HTTP p95 {p95_http:.1f} ms at grid level (target < {TARGET_P95_MS:.0f} ms)"
    )
    table.notes += [
        f"load: {N_REPORTS:,} reports with their events in {load_s:.0f} s (facts by trigger)",
        f"first read of the facts into the process (cold): {cold_s:.2f} s",
        "ours: numpy over the per-case facts kept by triggers, brought up to date per call "
        "(one snapshot read of what changed); plain: window aggregates over reports + events",
        "every count and median of every row compared with the plain SQL's: equal",
        "CPU ms/call: this process's CPU time per call in-process, the server's over HTTP; "
        "wall times include waiting for a core: load average during the run "
        + ", ".join(f"{x:.1f}" for x in load)
        + f" on {os.cpu_count()} cores",
    ]
    table.show(console)
    table.write_markdown("stats")


def _unit_ids(engine: Any) -> dict[str, int]:
    with engine.connect() as conn:
        return {r.code: r.id for r in store.unit_rows(conn)}
