"""Vector-tile benchmark: our ``/tiles/grids`` against tipg serving the same grids, one run.

Both servers run as real uvicorn processes (one worker each, uvloop + httptools) on one fresh
database holding the demo boundaries. tipg is installed in a venv of its own
(``.data/bench-venv/tipg``, made here with uv, never in our lock) and serves a view that
selects exactly what our grids layer draws (the grids of the version in force with their
district/town/community names and grid team), with the same 64-unit tile buffer. A fixed set of
z10-z15 tiles over the district is fetched over HTTP/1.1 keep-alive by an asyncio client with
several connections: **cold** is the first pass of a just-started server (our cache empty; the
database's buffers warm for both; three fresh starts each, pooled), **warm** is repeated passes
(ours from the cache; tipg has no cache, so it renders again). Tiles/s and per-request p50/p99
latency; targets: cold ≥ 2×, warm ≥ 20× tipg.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import os
import random
import shutil
import socket
import subprocess
import sys
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import httpx
import mapbox_vector_tile
import numpy as np
import psycopg
from rich.console import Console
from sqlalchemy.engine import make_url

from benchmarks._common import ResultTable, throwaway_database
from geo_service.boundaries.importer import import_layout
from geo_service.db.engine import make_engine
from geo_service.db.migrate import upgrade
from geo_service.settings import PROJECT_ROOT

DEMO_LAYOUT: Final = PROJECT_ROOT / "boundaries" / "xiuzhou_demo.geojson"
TIPG_VENV: Final = PROJECT_ROOT / ".data" / "bench-venv" / "tipg"
ZOOMS: Final = range(10, 16)
PER_ZOOM: Final = 50  # tiles per zoom at most, drawn with a fixed seed among those with grids
SEED: Final = 20261124
CONCURRENCY: Final = 8
COLD_RUNS: Final = 3  # cold passes, each on freshly started servers, pooled
WARM_BUDGET_S: Final = 6.0  # repeat whole passes of the set until this much time is spent
WARM_MAX_PASSES: Final = 400
TARGET_COLD: Final = 2.0
TARGET_WARM: Final = 20.0
VIEW: Final = "grids_in_force"
OURS: Final = "geo_service"
TIPG: Final = "tipg"

# the grids of a version with what our grids layer carries (chain names, grid team), so both
# servers draw the same features with the same attributes
VIEW_SQL: Final = """
CREATE VIEW grids_in_force AS
SELECT a.id, a.code, a.name, a.level, a.parent_code, a.households, a.population,
       left(a.code, 6) AS district_code, ad.name AS district_name,
       left(a.code, 9) AS town_code, atn.name AS town_name,
       left(a.code, 12) AS community_code, ac.name AS community_name,
       un.name AS unit_name, a.geom
FROM version_areas va JOIN areas a ON a.id = va.area_id
LEFT JOIN version_areas vd ON vd.version_id = va.version_id AND vd.code = left(a.code, 6)
LEFT JOIN areas ad ON ad.id = vd.area_id
LEFT JOIN version_areas vt ON vt.version_id = va.version_id AND vt.code = left(a.code, 9)
LEFT JOIN areas atn ON atn.id = vt.area_id
LEFT JOIN version_areas vc ON vc.version_id = va.version_id AND vc.code = left(a.code, 12)
LEFT JOIN areas ac ON ac.id = vc.area_id
LEFT JOIN units un ON un.unit_type = 'grid_team' AND un.area_code = a.code
WHERE va.level = 'grid' AND va.version_id = (
    SELECT id FROM boundary_versions WHERE status = 'published' ORDER BY effective_from DESC
    LIMIT 1)
"""


@dataclass
class Pass:
    """One timed load: how many requests, the wall time, each request's latency."""

    requests: int
    wall_s: float
    latencies_s: np.ndarray
    statuses: Counter[int] = field(default_factory=Counter)
    body_bytes: int = 0

    @property
    def rate(self) -> float:
        return self.requests / self.wall_s

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(self.latencies_s, q) * 1000)


# --------------------------------------------------------------------------- HTTP load


async def _read_body(reader: asyncio.StreamReader, head: bytes) -> bytes:
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    if "content-length" in headers:
        return await reader.readexactly(int(headers["content-length"]))
    if headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                return b"".join(chunks)
            chunks.append(chunk[:-2])
    return b""


async def _client(
    port: int, todo: deque[str], latencies: list[float], statuses: Counter[int], sizes: list[int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while todo:
            path = todo.popleft()
            started = time.perf_counter()
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: */*\r\n\r\n".encode()
            )
            head = await reader.readuntil(b"\r\n\r\n")
            body = await _read_body(reader, head)
            latencies.append(time.perf_counter() - started)
            statuses[int(head[9:12])] += 1
            sizes.append(len(body))
    finally:
        writer.close()


async def _load(port: int, paths: Sequence[str], concurrency: int) -> Pass:
    todo = deque(paths)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    sizes: list[int] = []
    started = time.perf_counter()
    await asyncio.gather(
        *(_client(port, todo, latencies, statuses, sizes) for _ in range(concurrency))
    )
    wall = time.perf_counter() - started
    return Pass(len(latencies), wall, np.array(latencies), statuses, sum(sizes))


def load(port: int, paths: Sequence[str], concurrency: int = CONCURRENCY) -> Pass:
    """Fetch every path once over ``concurrency`` keep-alive connections."""
    import uvloop

    return uvloop.run(_load(port, paths, concurrency))


def pooled(passes: Sequence[Pass]) -> Pass:
    """Several loads as one: their requests, wall times and latencies added up."""
    statuses: Counter[int] = Counter()
    for p in passes:
        statuses.update(p.statuses)
    return Pass(
        sum(p.requests for p in passes),
        sum(p.wall_s for p in passes),
        np.concatenate([p.latencies_s for p in passes]),
        statuses,
        sum(p.body_bytes for p in passes),
    )


def warm_load(port: int, paths: Sequence[str]) -> Pass:
    """Whole passes of ``paths`` repeated until the time budget is spent, as one load."""
    passes: list[Pass] = []
    spent = 0.0
    while spent < WARM_BUDGET_S and len(passes) < WARM_MAX_PASSES:
        passes.append(load(port, paths))
        spent += passes[-1].wall_s
    return pooled(passes)


# --------------------------------------------------------------------------- servers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    """A uvicorn subprocess on a free port, stopped on exit."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], ready: str) -> None:
        self.name = name
        self.port = _free_port()
        self.argv = [*argv, "--port", str(self.port)]
        self.env = env
        self.ready = ready
        self.proc: subprocess.Popen[bytes] | None = None
        self.probe_s = 0.0  # the first request's time

    def __enter__(self) -> Server:
        self.proc = subprocess.Popen(
            self.argv, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"{self.name} exited: {err[-2000:]}")
            try:
                if httpx.get(self.url(self.ready), timeout=2).status_code < 500:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not start within 60 s")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def ensure_tipg(say: Console) -> Path:
    """The tipg venv's python, making the venv with uv when it is missing."""
    python = TIPG_VENV / "bin" / "python"
    if python.exists():
        return python
    uv = shutil.which("uv") or str(Path.home() / ".local" / "bin" / "uv")
    say.print(f"[dim]installing tipg into {TIPG_VENV} (its own venv, not our lock) ...[/dim]")
    subprocess.run([uv, "venv", "-q", "--python", "3.11", str(TIPG_VENV)], check=True)
    subprocess.run(
        [uv, "pip", "install", "-q", "--python", str(python), "tipg", "uvicorn[standard]"],
        check=True,
    )
    return python


def tipg_version(python: Path) -> str:
    out = subprocess.run(
        [str(python), "-c", "import tipg; print(tipg.__version__)"], capture_output=True, text=True
    )
    return out.stdout.strip() or "?"


def ours(url: str) -> Server:
    env = {**os.environ, "DATABASE_URL": url}
    geo = str(Path(sys.executable).parent / "geo-service")
    return Server(OURS, [geo, "serve", "--host", "127.0.0.1", "--workers", "1"], env, "/health")


def tipg(python: Path, url: str) -> Server:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "TIPG_DB_SCHEMAS": '["public"]',
        "TIPG_DB_TABLES": f'["public.{VIEW}"]',
        "TIPG_TILE_BUFFER": "64",
        "TIPG_MAX_FEATURES_PER_TILE": "100000",
    }
    argv = [
        str(python), "-m", "uvicorn", "tipg.main:app", "--host", "127.0.0.1", "--workers", "1",
        "--loop", "uvloop", "--http", "httptools", "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    return Server(TIPG, argv, env, "/collections")


def cold_pass(server: Server, probe: str, paths: Sequence[str], url: str) -> Pass:
    """The first pass over ``paths`` of a just-started server, after one untimed probe tile
    (first-request set-up) and a read of every grid (the same warm buffers for both)."""
    started = time.perf_counter()
    httpx.get(server.url(probe), timeout=60)
    server.probe_s = time.perf_counter() - started
    warm_database(url)
    return load(server.port, paths)


# --------------------------------------------------------------------------- data


def _tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2**z
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    return min(max(x, 0), n - 1), min(max(y, 0), n - 1)


def tile_set(conn: psycopg.Connection) -> list[tuple[int, int, int]]:
    """Up to PER_ZOOM tiles per zoom 10-15 that hold grids, drawn with a fixed seed."""
    w, s, e, n = conn.execute(
        f"SELECT ST_XMin(x), ST_YMin(x), ST_XMax(x), ST_YMax(x) FROM "  # noqa: S608
        f"(SELECT ST_Extent(geom) AS x FROM {VIEW}) b"
    ).fetchone() or (0, 0, 0, 0)
    rng = random.Random(SEED)
    chosen: list[tuple[int, int, int]] = []
    for z in ZOOMS:
        x0, y0 = _tile_of(w, n, z)
        x1, y1 = _tile_of(e, s, z)
        candidates = [(z, x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]
        with_grids = [
            t
            for t in candidates
            if conn.execute(
                f"SELECT EXISTS (SELECT 1 FROM {VIEW} WHERE geom && "  # noqa: S608
                "ST_Transform(ST_TileEnvelope(%s, %s, %s), 4326) AND ST_Intersects(geom, "
                "ST_Transform(ST_TileEnvelope(%s, %s, %s), 4326)))",
                (*t, *t),
            ).fetchone()[0]  # type: ignore[index]
        ]
        chosen += sorted(rng.sample(with_grids, min(PER_ZOOM, len(with_grids))))
    return chosen


def prepare(url: str) -> None:
    """Migrate, load the demo boundaries (published from 2025-01-01), create tipg's view."""
    upgrade(url)
    engine = make_engine(url, pool_size=1)
    try:
        import_layout(
            engine, DEMO_LAYOUT, "demo-2025", crs="wgs84",
            effective_from=dt.date(2025, 1, 1), publish=True,
        )  # fmt: skip
    finally:
        engine.dispose()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(VIEW_SQL)
        conn.execute("ANALYZE")


def warm_database(url: str) -> None:
    """Read every grid once so both servers start with the same warm buffers."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"SELECT sum(ST_NPoints(geom)), count(unit_name) FROM {VIEW}")  # noqa: S608


def feature_counts(body: bytes) -> int:
    if not body:
        return 0
    return sum(len(layer["features"]) for layer in mapbox_vector_tile.decode(body).values())


def agreement(a: Server, b: Server, paths_a: list[str], paths_b: list[str]) -> tuple[int, int]:
    """Features in the sampled tiles (two per zoom) on each server."""
    na = nb = 0
    for pa, pb in zip(paths_a, paths_b, strict=True):
        na += feature_counts(httpx.get(a.url(pa), timeout=60).content)
        nb += feature_counts(httpx.get(b.url(pb), timeout=60).content)
    return na, nb


# --------------------------------------------------------------------------- report


def _fmt_rate(p: Pass) -> str:
    return f"{p.rate:,.0f}"


def run() -> None:
    """Run the tiles benchmark, print the table and write ``bench-results/tiles.md``."""
    console = Console(width=None if sys.stdout.isatty() else 140)
    python = ensure_tipg(console)
    version = tipg_version(python)
    results: dict[tuple[str, str], Pass] = {}
    with throwaway_database("bench_tiles") as url:
        console.print("[dim]database: demo boundaries and tipg's view ...[/dim]")
        prepare(url)
        plain = make_url(url).render_as_string(hide_password=False)
        with psycopg.connect(plain, autocommit=True) as conn:
            tiles = tile_set(conn)
        per_zoom = Counter(z for z, _, _ in tiles)
        ours_paths = [f"/tiles/grids/{z}/{x}/{y}.mvt" for z, x, y in tiles]
        tipg_paths = [
            f"/collections/public.{VIEW}/tiles/WebMercatorQuad/{z}/{x}/{y}" for z, x, y in tiles
        ]
        probe_ours, probe_tipg = "/tiles/grids/9/426/212.mvt", (
            f"/collections/public.{VIEW}/tiles/WebMercatorQuad/9/426/212"
        )
        samples = [i for z in ZOOMS for i in [j for j, t in enumerate(tiles) if t[0] == z][:2]]
        colds: dict[str, list[Pass]] = {TIPG: [], OURS: []}
        first_probe_s = 0.0  # ours' very first tile: it builds the version's tile-ready copy
        for run_no in range(1, COLD_RUNS):  # fresh processes: the first pass of each is cold
            console.print(f"[dim]cold pass {run_no} of {COLD_RUNS} on fresh servers ...[/dim]")
            with tipg(python, plain) as server:
                colds[TIPG].append(cold_pass(server, probe_tipg, tipg_paths, url))
            with ours(plain) as mine:
                colds[OURS].append(cold_pass(mine, probe_ours, ours_paths, url))
                first_probe_s = first_probe_s or mine.probe_s
        with tipg(python, plain) as server:
            console.print(f"[dim]tipg {version} on :{server.port}: cold, then warm ...[/dim]")
            colds[TIPG].append(cold_pass(server, probe_tipg, tipg_paths, url))
            results[(TIPG, "warm")] = warm_load(server.port, tipg_paths)
            with ours(plain) as mine:
                console.print(f"[dim]{OURS} on :{mine.port}: cold, then warm ...[/dim]")
                colds[OURS].append(cold_pass(mine, probe_ours, ours_paths, url))
                first_probe_s = first_probe_s or mine.probe_s
                results[(OURS, "warm")] = warm_load(mine.port, ours_paths)
                n_ours, n_tipg = agreement(
                    mine, server, [ours_paths[i] for i in samples], [tipg_paths[i] for i in samples]
                )
        for name, passes in colds.items():
            results[(name, "cold")] = pooled(passes)
    table = ResultTable(
        title=(
            f"Vector tiles: {len(tiles)} demo-grid tiles z10-z15 over HTTP, {CONCURRENCY} "
            "keep-alive connections, one uvicorn worker each"
        ),
        columns=["pass", "server", "requests", "tiles/s", "p50 ms", "p99 ms", "ratio to tipg"],
        right_aligned=["requests", "tiles/s", "p50 ms", "p99 ms", "ratio to tipg"],
    )
    verdicts: list[tuple[bool, str]] = []
    for phase, target in (("cold", TARGET_COLD), ("warm", TARGET_WARM)):
        base = results[(TIPG, phase)]
        for name in (OURS, TIPG):
            p = results[(name, phase)]
            ratio = p.rate / base.rate
            table.add(
                phase, name, f"{p.requests:,}", _fmt_rate(p),
                f"{p.percentile_ms(50):.2f}", f"{p.percentile_ms(99):.2f}", f"{ratio:.1f}×",
            )  # fmt: skip
        ratio = results[(OURS, phase)].rate / base.rate
        verdicts.append((ratio >= target, f"{phase}: {ratio:.1f}× tipg (target ≥ {target:g}×)"))
    table.verdicts = [
        f"{'target met' if ok else 'TARGET MISSED'} — {text}" for ok, text in verdicts
    ]
    statuses = {k: dict(v.statuses) for k, v in results.items()}
    table.notes = [
        "tiles per zoom: " + ", ".join(f"z{z} {per_zoom[z]}" for z in ZOOMS)
        + f" (at most {PER_ZOOM} per zoom among those holding grids, seed {SEED})",
        f"tipg {version} serves view {VIEW} (same grids, attributes and 64-unit buffer as "
        f"ours); cold = the first pass of {COLD_RUNS} fresh starts of each server, pooled, each "
        "after an untimed probe tile and a read of every grid; warm "
        f"= whole passes repeated for ~{WARM_BUDGET_S:g} s (tipg renders every time, ours "
        "answers from its tile cache)",
        f"features in {len(samples)} sampled tiles (two per zoom): ours {n_ours:,}, tipg "
        f"{n_tipg:,} (ours keeps every grid whose bbox meets the tile, tipg those whose shape "
        "does)",
        f"ours: first tile after start (untimed, includes building the version's tile-ready "
        f"copy in tile_areas) {first_probe_s * 1000:.0f} ms",
        "HTTP statuses: " + "; ".join(f"{a} {b}: {s}" for (a, b), s in statuses.items()),
    ]
    table.show(console)
    path = table.write_markdown("tiles")
    console.print(f"[dim]written to {path}[/dim]")
