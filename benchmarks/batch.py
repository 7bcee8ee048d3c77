"""Batch benchmark: re-locating and rolling up 10 M points on Dask, and province-sized layouts.

Part 1, throughput. ``GEO_BENCH_BATCH_POINTS`` points (default 10,000,000) uniform inside the
Xiuzhou district outline, written as GeoParquet like an export (id, time, category, channel,
the old grid code, point, bbox) in files of 500,000 rows, re-located in the demo layout
(2,988 grids) by ``geo_service.batch.relocate`` on a LocalCluster of 1 and of 2
single-threaded workers, and rolled up per grid and day. In the same run, on the same data:
the in-process Locator (arrays in memory, all numba threads and one), and the same per-piece
work done in this one process (read, locate, write: what one worker does without Dask).

Part 2, province-sized layouts. Synthetic provinces of ``GEO_BENCH_BATCH_PROVINCE_GRIDS``
grids (default 100,000 and 1,000,000): blocks of 100 x 100 jittered quadrilateral grids of
about 300 m (8 vertices each, neighbours sharing them), one block per district of 10 towns x
10 communities x 100 grids. Measured: the router, every district shard's Locator build time
and index memory, and a sharded locate of 1 M points inside one district (the shards a
worker holding that district's pieces builds). The sizing for 10^6 grids and 10^9 reports
follows from the measured per-worker rate.
"""

from __future__ import annotations

import math
import os
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numba
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import shapely
from distributed import Client, LocalCluster
from rich.console import Console

from benchmarks._common import CpuSnapshot, ResultTable, best_of, timed
from geo_service.batch.cluster import start_warm_up
from geo_service.batch.dataset import Source, open_source
from geo_service.batch.geoparquet import with_points, write_atomic
from geo_service.batch.relocate import locate_and_write, relocate
from geo_service.batch.rollup import RollupSpec, rollup
from geo_service.batch.sharding import ShardedLayout, locate_sharded
from geo_service.boundaries.reader import read_layout
from geo_service.locator import Locator
from geo_service.reports.taxonomy import CATEGORIES, CHANNELS
from geo_service.settings import PROJECT_ROOT

POINTS = int(os.environ.get("GEO_BENCH_BATCH_POINTS", "10000000"))
PROVINCES = tuple(
    int(v) for v in os.environ.get("GEO_BENCH_BATCH_PROVINCE_GRIDS", "100000,1000000").split(",")
)
ROWS_PER_FILE = 500_000
SEED = 20261204
DEMO_LAYOUT = PROJECT_ROOT / "boundaries" / "xiuzhou_demo.geojson"
PROVINCE_REPORTS = 1_000_000_000
PROVINCE_GRIDS = 1_000_000
TARGET_HOURS = 1.0
SHARD_GRIDS = 10_000  # a synthetic district: 100 x 100 grids
GRID_M = 300.0

FloatArray = npt.NDArray[np.float64]


# --------------------------------------------------------------------------- part 1: data


def draw_points(outline: shapely.Geometry, n: int, rng: np.random.Generator) -> FloatArray:
    """``n`` points uniform inside ``outline`` (rejection sampling from its bounding box)."""
    x0, y0, x1, y1 = outline.bounds
    shapely.prepare(outline)
    xs: list[FloatArray] = []
    have = 0
    while have < n:
        cx, cy = rng.uniform(x0, x1, 2_000_000), rng.uniform(y0, y1, 2_000_000)
        keep = shapely.contains_xy(outline, cx, cy)
        xs.append(np.stack([cx[keep], cy[keep]], axis=1))
        have += int(keep.sum())
    return np.concatenate(xs)[:n]


def write_source(folder: Path, xy: FloatArray, old: npt.NDArray[np.object_]) -> int:
    """The points as export-like GeoParquet files; returns the bytes written."""
    rng = np.random.default_rng(SEED + 1)
    start = pd.Timestamp("2025-01-01", tz="Asia/Shanghai").value // 1000
    categories = np.array([c.code for c in CATEGORIES], dtype=object)
    channels = np.array(CHANNELS, dtype=object)
    for i, s in enumerate(range(0, len(xy), ROWS_PER_FILE)):
        e = min(s + ROWS_PER_FILE, len(xy))
        k = e - s
        micros = start + rng.integers(0, 365 * 86_400_000_000, k)
        table = pa.table(
            {
                "id": pa.array(np.arange(s + 1, e + 1), pa.int64()),
                "reported_at": pa.array(micros, pa.timestamp("us", tz="Asia/Shanghai")),
                "category": pa.array(categories[rng.integers(0, len(categories), k)], pa.string()),
                "channel": pa.array(channels[rng.integers(0, len(channels), k)], pa.string()),
                "grid_code": pa.array(old[s:e], pa.string()),
            }
        )
        write_atomic(folder / f"part-{i:05d}.parquet", with_points(table, xy[s:e, 0], xy[s:e, 1]))
    return sum(f.stat().st_size for f in folder.glob("*.parquet"))


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far (all its threads)."""
    t = os.times()
    return t.user + t.system


def in_process_pipeline(source: Source, layout: ShardedLayout, out: Path) -> tuple[float, float]:
    """What the workers do for every piece (``locate_and_write``), done here in one process:
    wall and CPU seconds."""
    shards = {i: layout.build(i) for i in range(len(layout.keys))}
    started, cpu = time.perf_counter(), cpu_seconds()
    for piece in source.pieces:
        locate_and_write(piece, source.geometry, str(out), layout.router, lambda ids: shards)
    return time.perf_counter() - started, cpu_seconds() - cpu


@dataclass
class DaskRun:
    """One cluster size: wall seconds and the workers' CPU seconds of relocate and rollup."""

    workers: int
    relocate_s: float
    relocate_cpu: float
    rollup_s: float
    rollup_cpu: float
    relocated: Path


def _workers_cpu(client: Client) -> float:
    return sum(t[0] + t[1] for t in client.run(os.times).values())


def on_cluster(workers: int, source: Source, layout: ShardedLayout, root: Path) -> DaskRun:
    """Relocate then roll up per grid and day on a fresh LocalCluster of ``workers``."""
    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        silence_logs=50,
    )
    client = Client(cluster)
    try:
        for f in start_warm_up(client):
            f.result()
        dst = root / f"relocated-{workers}"
        cpu = _workers_cpu(client)
        relocate_s, _ = timed(lambda: relocate(client, source, layout, dst))
        relocate_cpu = _workers_cpu(client) - cpu
        relocated = open_source(dst, require=())
        spec = RollupSpec.parse("grid", "day")
        cpu = _workers_cpu(client)
        rollup_s, _ = timed(lambda: rollup(client, relocated, spec, root / f"rollup-{workers}"))
        rollup_cpu = _workers_cpu(client) - cpu
        return DaskRun(workers, relocate_s, relocate_cpu, rollup_s, rollup_cpu, dst)
    finally:
        client.close()
        cluster.close()


# --------------------------------------------------------------------------- part 2: provinces


def synthetic_province(n_grids: int, rng: np.random.Generator) -> gpd.GeoDataFrame:
    """Districts of 100 x 100 jittered 8-vertex grids with their towns and communities."""
    n_districts = max(1, n_grids // SHARD_GRIDS)
    cols = math.ceil(math.sqrt(n_districts))
    rows = math.ceil(n_districts / cols)
    nx, ny = cols * 100, rows * 100
    lat0, lon0 = 28.0, 118.0
    dy = GRID_M / 110_574.0
    dx = GRID_M / (111_320.0 * math.cos(math.radians(lat0 + ny * dy / 2)))
    jx = rng.uniform(-0.2, 0.2, (ny + 1, nx + 1))
    jy = rng.uniform(-0.2, 0.2, (ny + 1, nx + 1))
    cx = lon0 + (np.arange(nx + 1)[None, :] + jx) * dx  # corners
    cy = lat0 + (np.arange(ny + 1)[:, None] + jy) * dy
    hx = (cx[:, :-1] + cx[:, 1:]) / 2 + rng.uniform(-0.05, 0.05, (ny + 1, nx)) * dx  # mid edges
    hy = (cy[:, :-1] + cy[:, 1:]) / 2 + rng.uniform(-0.05, 0.05, (ny + 1, nx)) * dy
    vx = (cx[:-1, :] + cx[1:, :]) / 2 + rng.uniform(-0.05, 0.05, (ny, nx + 1)) * dx
    vy = (cy[:-1, :] + cy[1:, :]) / 2 + rng.uniform(-0.05, 0.05, (ny, nx + 1)) * dy
    r, c = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    r, c = r.ravel(), c.ravel()
    ring_x = [cx[r, c], hx[r, c], cx[r, c + 1], vx[r, c + 1], cx[r + 1, c + 1],
              hx[r + 1, c], cx[r + 1, c], vx[r, c], cx[r, c]]  # fmt: skip
    ring_y = [cy[r, c], hy[r, c], cy[r, c + 1], vy[r, c + 1], cy[r + 1, c + 1],
              hy[r + 1, c], cy[r + 1, c], vy[r, c], cy[r, c]]  # fmt: skip
    coords = np.stack([np.stack(ring_x, axis=1), np.stack(ring_y, axis=1)], axis=2)
    polys = shapely.polygons(coords)
    district = (r // 100) * cols + (c // 100)
    keep = district < n_districts
    town, community, grid = (c % 100) // 10, (r % 100) // 10, (r % 10) * 10 + c % 10
    d_code = np.char.add("33", np.char.zfill((1000 + district[keep]).astype(str), 4))
    t_code = np.char.add(d_code, np.char.zfill((town[keep] + 1).astype(str), 3))
    c_code = np.char.add(t_code, np.char.zfill((community[keep] + 1).astype(str), 3))
    g_code = np.char.add(c_code, np.char.zfill((grid[keep] + 1).astype(str), 3))
    grids = pd.DataFrame({"code": g_code, "level": "grid", "parent_code": c_code})
    uppers = []
    for level, codes, parents in (
        ("community", c_code, t_code),
        ("town", t_code, d_code),
        ("district", d_code, np.full(len(d_code), "")),
    ):
        u, first = np.unique(codes, return_index=True)
        uppers.append(pd.DataFrame({"code": u, "level": level, "parent_code": parents[first]}))
    frame = pd.concat([grids, *uppers], ignore_index=True)
    frame["name"] = frame["code"]
    # areas above grids: the Locator and the router read only grids, so a placeholder box
    boxes = np.full(len(frame) - len(grids), shapely.box(lon0, lat0, lon0 + dx, lat0 + dy))
    return gpd.GeoDataFrame(frame, geometry=np.concatenate([polys[keep], boxes]), crs="EPSG:4326")


@dataclass
class Province:
    """Build figures of one synthetic province."""

    grids: int
    shards: int
    make_s: float
    router_s: float
    router_mb: float
    build_s: list[float]
    index_mb: list[float]
    whole_s: float | None
    whole_mb: float | None
    locate_rate: float
    touched: int


def measure_province(n_grids: int, say: Any) -> Province:
    """Shard a synthetic province and build every shard here, one after the other."""
    rng = np.random.default_rng(SEED + n_grids)
    make_s, areas = timed(lambda: synthetic_province(n_grids, rng))
    say(f"province of {n_grids:,} grids made in {make_s:.1f} s; sharding ...")
    router_s, layout = timed(lambda: ShardedLayout.from_frame(areas))
    build_s: list[float] = []
    index_mb: list[float] = []
    first = None
    for i in range(len(layout.keys)):
        seconds, shard = timed(lambda i=i: layout.build(i))
        build_s.append(seconds)
        index_mb.append(shard.nbytes / 1e6)
        if i == 0:
            first = shard
        del shard
    assert first is not None
    part = layout.parts[0]
    bounds = part.loc[part["level"] == "grid"].total_bounds
    px = rng.uniform(bounds[0], bounds[2], 1_000_000)
    py = rng.uniform(bounds[1], bounds[3], 1_000_000)
    touched = layout.router.touched(px, py)
    shards = {int(i): first if i == 0 else layout.build(int(i)) for i in touched}
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        seconds, _ = best_of(lambda: locate_sharded(layout.router, shards, px, py), reps=3)
    finally:
        numba.set_num_threads(before)
    whole_s = whole_mb = None
    if n_grids <= 200_000:
        whole_s, whole = timed(lambda: Locator.from_frame(areas))
        whole_mb = whole.index.stats()["memory_mb"]
    return Province(
        n_grids,
        len(layout.keys),
        make_s,
        router_s,
        layout.router.nbytes / 1e6,
        build_s,
        index_mb,
        whole_s,
        whole_mb,
        1_000_000 / seconds,
        len(touched),
    )


# --------------------------------------------------------------------------- the run


def run() -> None:
    """Run both parts, print the tables and write ``bench-results/batch.md``."""
    console = Console(width=None if sys.stdout.isatty() else 140)

    def say(msg: str) -> None:
        console.print(f"[dim]{msg}[/dim]", highlight=False)

    demo = read_layout(DEMO_LAYOUT, crs="wgs84").frame
    outline = demo.loc[demo["level"] == "district"].geometry.iloc[0]
    whole = Locator.from_frame(demo)
    layout = ShardedLayout.from_frame(demo)
    rng = np.random.default_rng(SEED)
    root = Path(tempfile.mkdtemp(prefix="bench-batch-", dir=PROJECT_ROOT / ".data"))
    cpu_start, wall_start = CpuSnapshot.take(), time.perf_counter()
    try:
        say(f"drawing {POINTS:,} points and writing them as GeoParquet ...")
        xy = draw_points(outline, POINTS, rng)
        whole.locate(xy[:1000, 0], xy[:1000, 1])  # kernels loaded
        threads = numba.get_num_threads()
        locate_all_s, found = best_of(lambda: whole.locate(xy[:, 0], xy[:, 1]), reps=3)
        numba.set_num_threads(1)
        try:
            locate_one_s, _ = best_of(lambda: whole.locate(xy[:, 0], xy[:, 1]), reps=2)
        finally:
            numba.set_num_threads(threads)
        nbytes = write_source(root / "src", xy, found.grid_code)
        source = open_source(root / "src")
        say("the same work in this one process ...")
        pipeline_s, pipeline_cpu = in_process_pipeline(source, layout, root / "inproc")
        runs = []
        for workers in (1, 2):
            say(f"LocalCluster of {workers} worker(s): relocate, then rollup grid/day ...")
            runs.append(on_cluster(workers, source, layout, root))
        check = pd.read_parquet(runs[-1].relocated, columns=["id", "grid_code"]).sort_values("id")
        agree = bool(
            (check["grid_code"].fillna("").to_numpy(dtype=object)
             == pd.Series(found.grid_code).fillna("").to_numpy(dtype=object)).all()
        )  # fmt: skip
        others_s, steal_s = CpuSnapshot.take().others_since(cpu_start)
        elapsed = time.perf_counter() - wall_start
        provinces = []
        for n in PROVINCES:
            provinces.append(measure_province(n, say))
    finally:
        shutil.rmtree(root, ignore_errors=True)

    n = POINTS
    one, two = runs
    headers = ["method", "workers", "wall s", "rows/s", "vs 1 worker", "worker CPU s",
               "rows per worker CPU s"]  # fmt: skip
    table = ResultTable(
        title=f"Batch re-location of {n:,} points in the demo layout ({len(whole):,} grids)",
        columns=headers,
        right_aligned=headers[1:],
    )
    table.add("Locator.locate, in memory", f"1 process, {threads} threads",
              f"{locate_all_s:.2f}", f"{n / locate_all_s:,.0f}", "—", "—", "—")  # fmt: skip
    table.add("Locator.locate, in memory", "1 process, 1 thread",
              f"{locate_one_s:.2f}", f"{n / locate_one_s:,.0f}", "—", "—", "—")  # fmt: skip
    table.add("read + locate + write, no Dask", "1 process", f"{pipeline_s:.2f}",
              f"{n / pipeline_s:,.0f}", "—", f"{pipeline_cpu:.1f}",
              f"{n / pipeline_cpu:,.0f}")  # fmt: skip
    for r in runs:
        table.add("batch relocate (Dask)", str(r.workers), f"{r.relocate_s:.2f}",
                  f"{n / r.relocate_s:,.0f}", f"{one.relocate_s / r.relocate_s:.2f}×",
                  f"{r.relocate_cpu:.1f}", f"{n / r.relocate_cpu:,.0f}")  # fmt: skip
    for r in runs:
        table.add("batch rollup grid/day (Dask)", str(r.workers), f"{r.rollup_s:.2f}",
                  f"{n / r.rollup_s:,.0f}", f"{one.rollup_s / r.rollup_s:.2f}×",
                  f"{r.rollup_cpu:.1f}", f"{n / r.rollup_cpu:,.0f}")  # fmt: skip
    # a worker is a core: its rate is rows per CPU second of worker processes (the wall-clock
    # rate on this shared machine depends on what else runs); the slower run is the estimate
    per_worker = min(n / r.relocate_cpu for r in runs)
    efficiency = (one.relocate_s / two.relocate_s) / 2
    bytes_per_row = nbytes / n
    table.verdicts = [
        ("target met: " if agree else "target missed: ")
        + f"the cluster's grid codes equal the in-process Locator's for all {n:,} points",
    ]
    table.notes = [
        f"points uniform inside the Xiuzhou outline, {len(source.pieces)} files of "
        f"{ROWS_PER_FILE:,} rows ({bytes_per_row:.1f} bytes/row as GeoParquet, zstd); one task "
        "per file; wall s of relocate() / rollup() after the workers imported and loaded the "
        "kernels (shard build on the workers included)",
        "workers: LocalCluster processes of one thread each; each task runs the Locator on one "
        "numba thread (a worker thread is a core); worker CPU s = user + system seconds of the "
        "worker processes during the call (os.times on each worker), the in-process row this "
        "process's own",
        f"machine: {os.cpu_count()} CPUs shared with other work: other processes used "
        f"{others_s:.0f} CPU s during these {elapsed:.0f} s (steal {steal_s:.1f} s); with 2 "
        "cores and 2 workers the client, scheduler and file system compete with the workers",
    ]
    console.print()
    table.show(console)

    columns = ["grids", "shards", "make s", "shard+router s", "router MB", "build s total",
               "build s max", "index MB total", "index MB max", "1 Locator s / MB",
               "sharded locate rows/s", "shards touched"]  # fmt: skip
    sizing = ResultTable(
        title="Province-sized layouts, sharded by district (built one shard after another here)",
        columns=columns,
        right_aligned=columns,
    )
    for p in provinces:
        whole_txt = "—" if p.whole_s is None else f"{p.whole_s:.1f} / {p.whole_mb:.0f}"
        sizing.add(f"{p.grids:,}", str(p.shards), f"{p.make_s:.1f}", f"{p.router_s:.1f}",
                   f"{p.router_mb:.1f}", f"{sum(p.build_s):.1f}", f"{max(p.build_s):.2f}",
                   f"{sum(p.index_mb):,.0f}", f"{max(p.index_mb):.0f}", whole_txt,
                   f"{p.locate_rate:,.0f}", str(p.touched))  # fmt: skip
    big = max(provinces, key=lambda p: p.grids)
    worker_s = PROVINCE_REPORTS / per_worker
    overhead = 1.25  # scheduling, shuffles and stragglers on a real cluster
    workers = math.ceil(worker_s * overhead / (TARGET_HOURS * 3600))
    wall_h = worker_s * overhead / workers / 3600
    held_mb = big.touched * max(big.index_mb)
    sizing.notes = [
        "make = generating the synthetic layout; shard+router = ShardedLayout.from_frame (cut "
        "by district code, router over grid bounding boxes); build = each district's Locator "
        "(index memory = the cell index arrays); '1 Locator' = one unsharded index of it all "
        "(only up to 200,000 grids); sharded locate: 1 M points inside district 1, one thread, "
        "through the router, with the shards it touches",
        f"sizing for {PROVINCE_GRIDS:,} grids and {PROVINCE_REPORTS:,} reports: measured "
        f"per-worker relocate rate {per_worker:,.0f} rows per worker CPU second (the slower "
        f"of the two cluster runs) → {worker_s / 3600:,.1f} worker-hours; with "
        f"{overhead - 1:.0%} for scheduling and stragglers, {workers} single-core workers "
        f"finish in ≈ {wall_h:.2f} h (target {TARGET_HOURS:g} h); each holds the shards its "
        f"district's pieces touch (here {big.touched} × ≤ {max(big.index_mb):.0f} MB ≈ "
        f"{held_mb:.0f} MB), not the {sum(big.index_mb):,.0f} MB of all shards; input ≈ "
        f"{PROVINCE_REPORTS * bytes_per_row / 1e9:,.0f} GB of GeoParquet at "
        f"{bytes_per_row:.1f} bytes/row; at this run's wall-clock 1-worker rate "
        f"({n / one.relocate_s:,.0f} rows/s, cores shared with the processes noted above) it "
        f"would be {PROVINCE_REPORTS / (n / one.relocate_s) / 3600:,.1f} worker-hours; "
        f"wall-clock 2-worker/1-worker here {2 * efficiency:.2f}×",
        f"peak RSS of this process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.1f}"
        " GB (the province layouts themselves dominate)",
    ]
    console.print()
    sizing.show(console)
    results = table.markdown() + "\n" + sizing.markdown()
    path = PROJECT_ROOT / "bench-results" / "batch.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(results, encoding="utf-8")
    console.print(f"[dim]written to {path.relative_to(PROJECT_ROOT)}[/dim]", highlight=False)
