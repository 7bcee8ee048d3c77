"""Bulk intake benchmark: reports/s through HTTP against a raw COPY of the same rows.

A throw-away database with the Xiuzhou demo boundaries, served by a real uvicorn process
(``geo-service serve``, as in production) of 1, then 2 workers. ``POST /v1/reports:bulk``
takes 80,000 realistic reports in batches of 10,000 (the maximum), as a JSON array and as
NDJSON, from several concurrent clients; each report is validated, located, routed, stored
with its discovery event, heat cell and near-duplicate check, and committed with
``synchronous_commit`` as the server has it (checked and printed: on). The ceiling is a
``COPY ... FROM STDIN (FORMAT binary)`` of the very rows an HTTP run stored (their located and
routed values, under new keys) into the same ``reports`` table, in the same run, committed
the same way. Every run starts from an emptied table; best of two. Target: HTTP at least a
quarter of the COPY rate.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pandas as pd
import psycopg
from rich.console import Console

from benchmarks._common import CpuSnapshot, ResultTable, throwaway_database
from geo_service.auth import create_key
from geo_service.boundaries.importer import import_layout
from geo_service.db.engine import make_engine
from geo_service.db.migrate import upgrade
from geo_service.demo.year import synthesize_year
from geo_service.locator import Locator
from geo_service.settings import PROJECT_ROOT

N_REPORTS = 80_000  # per format
BATCH = 10_000  # the endpoint's maximum
CLIENTS = 4
SERVER_WORKERS = (1, 2)  # the first is measured before the COPY
SEED = 20261130
TARGET_RATIO = 0.25
REPS = 2  # best of, each into an emptied table
COPY = "raw COPY (binary)"
DEMO_LAYOUT = PROJECT_ROOT / "boundaries" / "xiuzhou_demo.geojson"
STARTUP_S = 60.0
REQUEST_TIMEOUT_S = 600.0
_COUNTS = re.compile(rb'"stored":(\d+),"duplicate":(\d+),"refused":(\d+)')

# every column intake writes, so the COPY stores the same rows (ids come from the sequence)
COPY_COLUMNS = (
    "idempotency_key", "request_hash", "channel", "category", "description", "photos",
    "reported_at", "lon_original", "lat_original", "crs_original", "geom", "in_coverage",
    "grid_code", "community_code", "town_code", "district_code", "boundary_version_id",
    "handling_level", "unit_id", "routed_by", "status", "status_at", "due_at", "hard",
    "filed_by_key_id", "response", "h3_11", "duplicate_of",
)  # fmt: skip


@dataclass(frozen=True)
class Run:
    """One timed way of storing ``rows`` reports."""

    name: str
    rows: int
    seconds: float
    detail: str
    workers: int  # server processes (0: no server)

    @property
    def rate(self) -> float:
        return self.rows / self.seconds


def reports_payload(n: int, prefix: str, locator: Locator) -> list[dict[str, Any]]:
    """``n`` realistic reports (the demo year's places, categories, channels and times)."""
    year = synthesize_year(locator, n=n, seed=SEED + sum(prefix.encode()), prefix=prefix)
    stamps = year["reported_at"].map(pd.Timestamp.isoformat)
    return [
        {
            "external_id": ext,
            "channel": channel,
            "category": category,
            "description": description,
            "reported_at": at,
            "location": {"lon": lon, "lat": lat, "crs": "wgs84"},
        }
        for ext, channel, category, description, at, lon, lat in zip(
            year["external_id"],
            year["channel"],
            year["category"],
            year["description"],
            stamps,
            year["lon"],
            year["lat"],
            strict=True,
        )
    ]


def json_batches(items: list[dict[str, Any]]) -> list[bytes]:
    return [orjson.dumps(items[i : i + BATCH]) for i in range(0, len(items), BATCH)]


def ndjson_batches(items: list[dict[str, Any]]) -> list[bytes]:
    return [
        b"\n".join(orjson.dumps(item) for item in items[i : i + BATCH]) + b"\n"
        for i in range(0, len(items), BATCH)
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def served(url: str, workers: int, startup_s: float = STARTUP_S) -> Iterator[str]:
    """``geo-service serve`` on a free loopback port over ``url``; its base URL (the server
    must answer ``/health`` within ``startup_s``)."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url}
    cmd = [str(Path(sys.executable).with_name("geo-service")), "serve", "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--workers", str(workers)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_s
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(f"the server exited: {err[-2000:]}")
            try:
                if httpx.get(f"{base}/health", timeout=2.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not answer within {startup_s:.0f} s")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def post_all(base: str, key: str, bodies: list[bytes], content_type: str) -> tuple[float, int]:
    """Send every body from :data:`CLIENTS` threads; wall seconds and reports stored."""
    queue = list(reversed(bodies))
    lock = threading.Lock()
    stored = [0]
    failures: list[str] = []
    headers = {"Authorization": f"Bearer {key}", "Content-Type": content_type}

    def client() -> None:
        with httpx.Client(base_url=base, headers=headers, timeout=REQUEST_TIMEOUT_S) as http:
            while True:
                with lock:
                    if not queue or failures:
                        return
                    body = queue.pop()
                response = http.post("/v1/reports:bulk", content=body)
                counts = _COUNTS.search(response.content[:200])
                with lock:
                    if response.status_code != 200 or counts is None:
                        failures.append(f"{response.status_code}: {response.text[:300]}")
                    else:
                        stored[0] += int(counts.group(1))

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    if failures:
        raise RuntimeError(f"bulk intake failed: {failures[0]}")
    return seconds, stored[0]


def copy_ceiling(url: str, prefix: str) -> tuple[float, int]:
    """COPY the rows stored under ``prefix`` again (new keys) into ``reports``; seconds, rows."""
    cols = ", ".join(COPY_COLUMNS)
    select = cols.replace("idempotency_key", "'copy:' || idempotency_key", 1)
    data = bytearray()
    with psycopg.connect(url) as conn:
        with conn.cursor() as cur:
            query = (
                f"COPY (SELECT {select} FROM reports WHERE idempotency_key LIKE "  # noqa: S608
                f"'%:ext:{prefix}-%' ORDER BY id) TO STDOUT (FORMAT binary)"
            )
            with cur.copy(query) as copy:
                for chunk in copy:
                    data += chunk
        conn.commit()
        t0 = time.perf_counter()
        with conn.cursor() as cur:
            with cur.copy(f"COPY reports ({cols}) FROM STDIN (FORMAT binary)") as copy:
                for start in range(0, len(data), 1 << 20):
                    copy.write(data[start : start + (1 << 20)])
            rows = cur.rowcount
        conn.commit()
        seconds = time.perf_counter() - t0
    return seconds, rows


def server_settings(url: str) -> dict[str, str]:
    """The durability settings sessions on the benchmark database get."""
    with psycopg.connect(url) as conn:
        out = {}
        for name in ("synchronous_commit", "fsync", "wal_level", "server_version"):
            row = conn.execute(f"SHOW {name}").fetchone()
            out[name] = str(row[0]) if row else "?"
    return out


def prepare(url: str) -> tuple[Locator, str]:
    """Schema, the demo boundaries (published), and a grid worker's key."""
    upgrade(url)
    engine = make_engine(url, pool_size=1)
    try:
        import_layout(
            engine, DEMO_LAYOUT, "bench", crs="wgs84", effective_from=dt.date(2025, 1, 1),
            publish=True,
        )  # fmt: skip
        with engine.begin() as conn:
            key = create_key(conn, "operator", label="intake benchmark")
    finally:
        engine.dispose()
    return Locator.from_database(url), key


FORMATS = (("JSON array", "application/json"), ("NDJSON", "application/x-ndjson"))


@dataclass
class Noise:
    """CPU seconds other processes used (and steal) during the timed parts only."""

    others_s: float = 0.0
    steal_s: float = 0.0
    timed_s: float = 0.0

    @contextmanager
    def measure(self) -> Iterator[None]:
        start, t0 = CpuSnapshot.take(), time.perf_counter()
        yield
        others, steal = CpuSnapshot.take().others_since(start)
        self.others_s += others
        self.steal_s += steal
        self.timed_s += time.perf_counter() - t0


def empty_reports(url: str) -> None:
    """Empty ``reports`` (and what hangs on it) so that every run meets the same table."""
    with psycopg.connect(url) as conn:
        conn.execute("TRUNCATE reports CASCADE")


def http_run(base: str, workers: int, fmt: tuple[str, str], payload: Payload, noise: Noise) -> Run:
    """The payload in one format, from :data:`CLIENTS` clients, into an empty table."""
    name, kind = fmt
    bodies = payload.ndjson if name == "NDJSON" else payload.json
    with noise.measure():
        seconds, stored = post_all(base, payload.key, bodies, kind)
    if stored != N_REPORTS:
        raise RuntimeError(f"{name}: {stored} of {N_REPORTS} stored")
    size = sum(len(b) for b in bodies) / len(bodies) / 1e6
    detail = f"{len(bodies)} × {BATCH:,} ({size:.1f} MB each), {CLIENTS} clients"
    return Run(f"HTTP {name}, {workers} worker(s)", stored, seconds, detail, workers)


@dataclass(frozen=True)
class Payload:
    """The reports every run sends (after emptying the table), as batches of each format."""

    key: str
    json: list[bytes]
    ndjson: list[bytes]


def best(runs: list[Run]) -> list[Run]:
    """The fastest repetition of each path, in the order first seen."""
    out: dict[str, Run] = {}
    for r in runs:
        if r.name not in out or r.rate > out[r.name].rate:
            out[r.name] = r
    return list(out.values())


def run() -> None:
    """Time HTTP bulk intake (JSON array, NDJSON) against servers of 1 and 2 workers and
    the COPY ceiling of the same rows, each run into an emptied table, best of :data:`REPS`;
    print the table."""
    console = Console()
    say = console.print
    runs: list[Run] = []
    noise = Noise()
    with throwaway_database("bench_intake") as url:
        say("preparing the database and the payload ...")
        locator, key = prepare(url)
        settings = server_settings(url)
        sync, fsync = settings["synchronous_commit"], settings["fsync"]
        say(f"synchronous_commit = {sync}, fsync = {fsync}")
        if sync != "on":
            say("[bold red]synchronous_commit is not on: not the comparison asked for")
        items = reports_payload(N_REPORTS, "bench", locator)
        payload = Payload(key, json_batches(items), ndjson_batches(items))
        for workers in SERVER_WORKERS:
            with served(url, workers) as base:
                warm = [orjson.dumps(reports_payload(50, f"warm{i}", locator)) for i in range(8)]
                post_all(base, key, warm, "application/json")  # each worker builds its Locator
                for rep in range(REPS):
                    for fmt in FORMATS:
                        say(f"HTTP {fmt[0]}, {workers} worker(s), run {rep + 1} of {REPS} ...")
                        empty_reports(url)
                        runs.append(http_run(base, workers, fmt, payload, noise))
                        if workers == SERVER_WORKERS[0] and fmt == FORMATS[0]:
                            say("COPY of the same rows ...")
                            with noise.measure():
                                seconds, rows = copy_ceiling(url, "bench")
                            runs.append(Run(COPY, rows, seconds, "one COPY, one commit", 0))
    table = best(runs)
    ordered = [r for r in table if r.name != COPY] + [r for r in table if r.name == COPY]
    show(console, ordered, settings, noise)


def show(console: Console, runs: list[Run], settings: dict[str, str], noise: Noise) -> None:
    """The results table with each HTTP rate's ratio to the COPY rate (the last run)."""
    ceiling = runs[-1].rate
    table = ResultTable(
        title=f"Bulk intake of {N_REPORTS:,} reports per run: HTTP vs raw COPY (same rows)",
        columns=["path", "reports", "seconds", "reports/s", "ratio to COPY", "how"],
        right_aligned=["reports", "seconds", "reports/s", "ratio to COPY"],
    )
    for r in runs:
        table.add(
            r.name, f"{r.rows:,}", f"{r.seconds:.2f}", f"{r.rate:,.0f}",
            f"{r.rate / ceiling:.2f}", r.detail,
        )  # fmt: skip
    for workers in SERVER_WORKERS:
        worst = min(r.rate for r in runs if r.workers == workers) / ceiling
        table.verdicts.append(
            ("target met: " if worst >= TARGET_RATIO else "target missed: ")
            + f"{workers} worker(s): slowest format at {worst:.2f} of the COPY rate "
            f"(target ≥ {TARGET_RATIO:g})"
        )
    table.notes = [
        "server: `geo-service serve --workers N` (uvicorn, uvloop, httptools) in its own "
        f"process; PostgreSQL {settings['server_version']}, synchronous_commit = "
        f"{settings['synchronous_commit']}, fsync = {settings['fsync']}, wal_level = "
        f"{settings['wal_level']} (as sessions on the benchmark database see them; the app "
        "changes none of them)",
        "HTTP: every report validated, converted to WGS84, located (Locator), routed, stored "
        "with its discovery event and H3 cell (heat roll-up trigger), near-duplicate check, "
        f"one transaction per request of {BATCH:,}; {CLIENTS} client threads; reports/s = "
        "reports / wall time from the first request to the last answer, best of "
        f"{REPS} runs, each into an emptied `reports` table (the same {N_REPORTS:,} reports "
        "every time); each server warmed up first (8 requests of 50)",
        "COPY: the rows the first HTTP run stored, read back with their located and routed "
        "values (new idempotency keys), written by one `COPY reports (...) FROM STDIN (FORMAT "
        "binary)` and committed, right after that run (so into a table holding them once), "
        f"best of {REPS}; the same indexes and triggers fire; no contacts or events",
        f"machine: {os.cpu_count()} CPUs shared by clients, server and PostgreSQL; other "
        f"processes used {noise.others_s:.1f} CPU s (steal {noise.steal_s:.1f} s) during the "
        f"{noise.timed_s:.0f} s timed, a sign of noise",
    ]
    console.print()
    table.show(console)
    path = table.write_markdown("intake")
    console.print(f"[dim]written to {path.relative_to(PROJECT_ROOT)}[/dim]", highlight=False)


if __name__ == "__main__":
    run()
