"""Locate benchmark: the Locator against geopandas.sjoin, shapely STRtree and PostGIS (GiST).

Two grid layers over the Xiuzhou district outline — the demo grids and a synthetic tiling of
about 20,000 grids — and two sets of 1,000,000 random points: uniform in the outline's bounding
box (many fall outside the district) and uniform inside the outline. Every method answers, for
every point, the grid that owns it (lowest code among the grids covering it, none if none);
PostGIS ``ST_Covers`` is the reference the others are compared with.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from types import ModuleType
from typing import Any

import geopandas as gpd
import numba
import numpy as np
import numpy.typing as npt
import pandas as pd
import psycopg
import shapely
from psycopg import sql
from rich.console import Console
from shapely.geometry.base import BaseGeometry

from benchmarks._common import CpuSnapshot, ResultTable, best_of, throwaway_database, timed
from geo_service.locator import Locator
from geo_service.settings import PROJECT_ROOT

N_POINTS = 1_000_000
POINT_SEED = 20260415
SYNTH_GRIDS = 20_000
SYNTH_SEED = 20190402
REPS = 3  # best of REPS for the in-memory methods
SLOW_BUDGET_S = 8.0  # stop repeating a method once its repetitions took this long
TARGET_RATIO = 25.0
TARGET_BUILD_S = 5.0
DEMO_LAYOUT = PROJECT_ROOT / "boundaries" / "xiuzhou_demo.geojson"
BUILD_DEMO = PROJECT_ROOT / "boundaries" / "build_demo.py"

OURS = "Locator"
OURS_1T = "Locator, 1 thread"
STRTREE = "shapely STRtree"
SJOIN_INTERSECTS = "gpd.sjoin intersects"
SJOIN_WITHIN = "gpd.sjoin within"
POSTGIS = "PostGIS GiST ST_Covers"
METHODS = (OURS, OURS_1T, STRTREE, SJOIN_INTERSECTS, SJOIN_WITHIN, POSTGIS)
SJOINS = (SJOIN_INTERSECTS, SJOIN_WITHIN)

IntArray = npt.NDArray[np.int32]
FloatArray = npt.NDArray[np.float64]
GeomArray = npt.NDArray[np.object_]

POSTGIS_OWNER = sql.SQL(
    "SELECT p.i, min(g.code) FROM {pts} p JOIN {grids} g ON ST_Covers(g.geom, p.geom) GROUP BY p.i"
)


@dataclass
class Dataset:
    """A grid layer, sorted by code (row i is grid id i in every method's answer)."""

    name: str
    grids: gpd.GeoDataFrame

    @property
    def codes(self) -> npt.NDArray[np.str_]:
        """Grid codes in id order."""
        return self.grids["code"].to_numpy(dtype=str)

    @property
    def label(self) -> str:
        """Short name with the grid count."""
        return f"{self.name} {len(self.grids):,}"


@dataclass
class PointSet:
    """Random query points as coordinate arrays and as shapely points."""

    name: str
    xs: FloatArray
    ys: FloatArray
    pts: GeomArray
    outside_share: float
    points_s: float  # seconds shapely.points took to make ``pts``

    def __len__(self) -> int:
        return len(self.xs)


@dataclass
class Measure:
    """One method on one dataset: build seconds and, per point set, query seconds and answers."""

    build_s: float | None
    query_s: dict[str, float] = field(default_factory=dict)
    ids: dict[str, IntArray] = field(default_factory=dict)


def load_build_demo() -> ModuleType:
    """Import ``boundaries/build_demo.py`` by path (it is a script, not a package module)."""
    spec = importlib.util.spec_from_file_location("build_demo", BUILD_DEMO)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {BUILD_DEMO}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def sorted_grids(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Grid rows sorted by code (as the Locator does), with a fresh RangeIndex."""
    grids = frame[frame["level"] == "grid"] if "level" in frame.columns else frame
    return grids.sort_values("code", kind="stable").reset_index(drop=True)


def load_datasets(console: Console) -> tuple[BaseGeometry, list[Dataset]]:
    """The district outline, the demo grids and the synthetic tiling of the same outline."""
    demo = gpd.read_file(DEMO_LAYOUT)
    outline = demo.loc[demo["level"] == "district"].geometry.iloc[0]
    build_demo = load_build_demo()
    seconds, synthetic = timed(
        lambda: build_demo.synthetic_tiling(outline, SYNTH_GRIDS, SYNTH_SEED)
    )
    console.print(
        f"[dim]synthetic tiling: {len(synthetic):,} grids in {seconds:.1f} s[/dim]", highlight=False
    )
    return outline, [
        Dataset("demo", sorted_grids(demo)),
        Dataset("synthetic", sorted_grids(synthetic)),
    ]


def draw_points(outline: BaseGeometry) -> list[PointSet]:
    """``N_POINTS`` uniform in the outline's bounding box, and as many inside the outline."""
    x0, y0, x1, y1 = outline.bounds
    shapely.prepare(outline)
    rng = np.random.default_rng(POINT_SEED)
    bx, by = rng.uniform(x0, x1, N_POINTS), rng.uniform(y0, y1, N_POINTS)
    outside = 1.0 - float(shapely.contains_xy(outline, bx, by).mean())
    ix: list[FloatArray] = []
    iy: list[FloatArray] = []
    have = 0
    while have < N_POINTS:  # rejection sampling from the same box
        cx, cy = rng.uniform(x0, x1, N_POINTS), rng.uniform(y0, y1, N_POINTS)
        keep = shapely.contains_xy(outline, cx, cy)
        ix.append(cx[keep])
        iy.append(cy[keep])
        have += int(keep.sum())
    sx, sy = np.concatenate(ix)[:N_POINTS], np.concatenate(iy)[:N_POINTS]
    out = []
    for name, xs, ys, share in (("bbox pts", bx, by, outside), ("in-outline pts", sx, sy, 0.0)):
        seconds, pts = timed(partial(shapely.points, xs, ys))
        out.append(PointSet(name, xs, ys, np.asarray(pts, dtype=object), share, seconds))
    return out


def lowest_per_point(point_idx: npt.ArrayLike, grid_idx: npt.ArrayLike, n: int) -> IntArray:
    """Per point, the lowest grid id among its matches (-1 without a match)."""
    pi = np.asarray(point_idx, dtype=np.int64)
    gi = np.asarray(grid_idx, dtype=np.int64)
    order = np.lexsort((gi, pi))
    pi, gi = pi[order], gi[order]
    first = np.unique(pi, return_index=True)[1]
    out = np.full(n, -1, dtype=np.int32)
    out[pi[first]] = gi[first]
    return out


def warm_up(ds: Dataset) -> float:
    """Compile (or load from the on-disk cache) the numba kernels on a small subset."""
    grids = ds.grids.iloc[:50]
    c = shapely.get_coordinates(shapely.centroid(grids.geometry.to_numpy()))[:10]
    seconds, _ = timed(lambda: Locator.from_frame(grids).locate(c[:, 0], c[:, 1]))
    return seconds


def bench_ours(ds: Dataset, point_sets: list[PointSet]) -> tuple[Measure, Measure]:
    """Locator.from_frame build, then best-of locate with all numba threads and with one."""
    build_s, loc = timed(lambda: Locator.from_frame(ds.grids))
    if not np.array_equal(loc.grids["code"].to_numpy(dtype=str), ds.codes):
        raise RuntimeError("the Locator orders grids differently from the benchmark")
    threads = numba.get_num_threads()
    every, single = Measure(build_s), Measure(build_s)
    for ps in point_sets:
        for measure, n_threads in ((every, threads), (single, 1)):
            numba.set_num_threads(n_threads)
            try:
                seconds, res = best_of(partial(loc.locate, ps.xs, ps.ys), REPS, warmup=1)
            finally:
                numba.set_num_threads(threads)
            measure.query_s[ps.name] = seconds
            measure.ids[ps.name] = res.grid_index.astype(np.int32)
    return every, single


def bench_strtree(ds: Dataset, point_sets: list[PointSet]) -> Measure:
    """shapely STRtree over the grids, queried with the prebuilt points (intersects)."""
    geoms = ds.grids.geometry.to_numpy()
    build_s, tree = timed(lambda: shapely.STRtree(geoms))
    measure = Measure(build_s)
    for ps in point_sets:
        query = partial(tree.query, ps.pts, predicate="intersects")
        seconds, (pi, gi) = best_of(query, REPS, warmup=1)
        measure.query_s[ps.name] = seconds
        measure.ids[ps.name] = lowest_per_point(pi, gi, len(ps))
    return measure


def fresh_points_frame(ps: PointSet) -> gpd.GeoDataFrame:
    """A new GeoDataFrame over the prebuilt points: no spatial index cached on it yet."""
    return gpd.GeoDataFrame(geometry=gpd.GeoSeries(ps.pts, crs="EPSG:4326"))


def bench_sjoin(ds: Dataset, point_sets: list[PointSet], predicate: str) -> Measure:
    """geopandas.sjoin of fresh point frames with the grids, best of up to ``REPS``.

    ``intersects`` queries the grids' index (built once, timed as build); ``within`` runs as
    grids-contain-points over an index of the points that sjoin builds inside every call.
    """
    grids = gpd.GeoDataFrame({"code": ds.grids["code"]}, geometry=ds.grids.geometry.array.copy())
    build_s: float | None = None
    if predicate == "intersects":
        build_s, _ = timed(lambda: grids.sindex)
    measure = Measure(build_s)
    for ps in point_sets:

        def join(ps: PointSet = ps) -> pd.DataFrame:
            return gpd.sjoin(fresh_points_frame(ps), grids, how="inner", predicate=predicate)

        seconds, joined = best_of(join, REPS, SLOW_BUDGET_S)
        measure.query_s[ps.name] = seconds
        measure.ids[ps.name] = lowest_per_point(joined.index, joined["index_right"], len(ps))
    return measure


def copy_rows(
    conn: psycopg.Connection, copy: sql.Composed, types: list[str], rows: Iterable[tuple[Any, ...]]
) -> None:
    """Binary COPY of ``rows`` with the given column types."""
    with conn.cursor() as cur, cur.copy(copy) as cp:
        cp.set_types(types)
        for row in rows:
            cp.write_row(row)


def fetch_all(conn: psycopg.Connection, query: sql.Composed) -> list[tuple[Any, ...]]:
    """Run a query and fetch every row."""
    return conn.execute(query).fetchall()


def load_points(conn: psycopg.Connection, ps: PointSet, table: str) -> float:
    """Load a point set into ``table`` (i, geom): COPY the doubles, then make the points."""
    raw = sql.Identifier(f"{table}_raw")

    def load() -> None:
        conn.execute(sql.SQL("CREATE UNLOGGED TABLE {} (i int4, x float8, y float8)").format(raw))
        copy_rows(
            conn,
            sql.SQL("COPY {} (i, x, y) FROM STDIN (FORMAT BINARY)").format(raw),
            ["int4", "float8", "float8"],
            zip(range(len(ps)), ps.xs.tolist(), ps.ys.tolist(), strict=True),
        )
        conn.execute(
            sql.SQL(
                "CREATE UNLOGGED TABLE {} AS "
                "SELECT i, ST_SetSRID(ST_MakePoint(x, y), 4326)::geometry(Point, 4326) AS geom "
                "FROM {}"
            ).format(sql.Identifier(table), raw)
        )
        conn.execute(sql.SQL("DROP TABLE {}").format(raw))
        conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(table)))

    seconds, _ = timed(load)
    return seconds


def bench_postgis(
    conn: psycopg.Connection, ds: Dataset, point_sets: list[PointSet], tables: dict[str, str]
) -> Measure:
    """Grids COPYed into a table with a GiST index (build), then one owner query per point set."""
    grids = sql.Identifier(f"grids_{ds.name}")
    ewkb = shapely.to_wkb(shapely.set_srid(ds.grids.geometry.to_numpy(), 4326), include_srid=True)

    def build() -> None:
        conn.execute(
            sql.SQL(
                "CREATE UNLOGGED TABLE {} (code text, geom geometry(MultiPolygon, 4326))"
            ).format(grids)
        )
        copy_rows(
            conn,
            sql.SQL("COPY {} (code, geom) FROM STDIN (FORMAT BINARY)").format(grids),
            ["text", "bytea"],
            zip(ds.codes.tolist(), ewkb, strict=True),
        )
        conn.execute(sql.SQL("CREATE INDEX ON {} USING gist (geom)").format(grids))
        conn.execute(sql.SQL("VACUUM ANALYZE {}").format(grids))

    build_s, _ = timed(build)
    measure = Measure(build_s)
    code_index = pd.Index(ds.codes)
    for ps in point_sets:
        query = POSTGIS_OWNER.format(pts=sql.Identifier(tables[ps.name]), grids=grids)
        seconds, rows = timed(partial(fetch_all, conn, query))
        ids = np.full(len(ps), -1, dtype=np.int32)
        if rows:
            i, codes = zip(*rows, strict=True)
            ids[np.asarray(i, dtype=np.int64)] = code_index.get_indexer(pd.Index(codes))
        measure.query_s[ps.name] = seconds
        measure.ids[ps.name] = ids
    return measure


def fmt_share(x: float) -> str:
    """A share as ``100.000 %``."""
    return f"{100 * x:.3f} %"


def add_rows(
    table: ResultTable,
    verdicts: list[tuple[bool, str]],
    ds: Dataset,
    ps: PointSet,
    results: dict[str, Measure],
) -> None:
    """The table rows of one (dataset, point set) and the target verdicts for it."""
    n = len(ps)
    reference = results[POSTGIS].ids[ps.name]
    baseline = min(SJOINS, key=lambda m: results[m].query_s[ps.name])
    base_rate = n / results[baseline].query_s[ps.name]
    where = f"{ds.label} / {ps.name}"
    for method in METHODS:
        m = results[method]
        rate = n / m.query_s[ps.name]
        agreement = float((m.ids[ps.name] == reference).mean())
        table.add(
            where,
            method + (" *" if method == baseline else ""),
            "—" if m.build_s is None else f"{m.build_s:.3f}",
            f"{rate / 1e6:.3f}",
            f"{rate / base_rate:.2f}×",
            "reference" if method == POSTGIS else fmt_share(agreement),
        )
    ours = results[OURS]
    ratio = (n / ours.query_s[ps.name]) / base_rate
    agree = float((ours.ids[ps.name] == reference).mean())
    verdicts.append(
        (ratio >= TARGET_RATIO, f"{where}: Locator {ratio:.1f}× sjoin (target ≥ {TARGET_RATIO:g}×)")
    )
    verdicts.append(
        (agree == 1.0, f"{where}: Locator agrees with PostGIS on {fmt_share(agree)} (target 100 %)")
    )


def run() -> None:
    """Run the locate benchmark, print the table and write ``bench-results/locate.md``."""
    console = Console(width=None if sys.stdout.isatty() else 140)

    def say(msg: str) -> None:
        console.print(f"[dim]{msg}[/dim]", highlight=False)

    outline, datasets = load_datasets(console)
    point_sets = draw_points(outline)
    bbox = point_sets[0]
    say(f"{N_POINTS:,} points per set; {fmt_share(bbox.outside_share)} of bbox pts outside")
    jit_s = warm_up(datasets[0])
    say(f"numba warm-up {jit_s:.2f} s")

    cpu_start, wall_start = CpuSnapshot.take(), time.perf_counter()
    results: dict[str, dict[str, Measure]] = {}
    for ds in datasets:  # in-memory methods first, so no database work runs beside them
        say(f"{ds.label}: Locator, STRtree, sjoin ...")
        ours, ours_1t = bench_ours(ds, point_sets)
        results[ds.name] = {
            OURS: ours,
            OURS_1T: ours_1t,
            STRTREE: bench_strtree(ds, point_sets),
            SJOIN_INTERSECTS: bench_sjoin(ds, point_sets, "intersects"),
            SJOIN_WITHIN: bench_sjoin(ds, point_sets, "within"),
        }
    others_s, steal_s = CpuSnapshot.take().others_since(cpu_start)
    in_memory_s = time.perf_counter() - wall_start
    load_s: dict[str, float] = {}
    with throwaway_database("bench") as url, psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        version = conn.execute("SELECT postgis_lib_version(), current_setting('server_version')")
        postgis_v, pg_v = version.fetchone() or ("?", "?")
        row = conn.execute("SELECT current_setting('max_parallel_workers_per_gather')").fetchone()
        workers = row[0] if row else "?"
        names = {"pts": sql.Identifier("pts"), "grids": sql.Identifier("grids")}
        query_text = POSTGIS_OWNER.format(**names).as_string(conn)
        tables = {ps.name: f"pts_{k}" for k, ps in enumerate(point_sets)}
        say("PostGIS: loading the points ...")
        for ps in point_sets:
            load_s[ps.name] = load_points(conn, ps, tables[ps.name])
        for ds in datasets:
            say(f"{ds.label}: PostGIS ...")
            results[ds.name][POSTGIS] = bench_postgis(conn, ds, point_sets, tables)

    table = ResultTable(
        title=(
            f"Locate {N_POINTS:,} points in one run — bbox pts: uniform in the district's "
            f"bounding box ({fmt_share(bbox.outside_share)} outside the district); "
            "in-outline pts: uniform inside the district outline"
        ),
        columns=["dataset", "method", "build s", "points/s (M/s)", "ratio to sjoin", "agreement"],
        right_aligned=["build s", "points/s (M/s)", "ratio to sjoin", "agreement"],
    )
    verdicts: list[tuple[bool, str]] = []
    for ds in datasets:
        for ps in point_sets:
            add_rows(table, verdicts, ds, ps, results[ds.name])
    for ds in datasets:
        build_s = results[ds.name][OURS].build_s or 0.0
        if len(ds.grids) >= 10_000:
            verdicts.append(
                (
                    build_s < TARGET_BUILD_S,
                    f"{ds.label}: Locator build {build_s:.2f} s (target < {TARGET_BUILD_S:g} s)",
                )
            )
    table.verdicts = [("target met: " if ok else "target missed: ") + text for ok, text in verdicts]
    table.notes = [
        "ratio = points/s over the faster geopandas.sjoin variant of the same row group (*); "
        "agreement = share of points whose grid equals PostGIS's (lowest code among grids that "
        "ST_Covers the point, none if none); sjoin/STRtree multiple matches resolved the same way",
        f"Locator: Locator.from_frame build, locate best of {REPS} after 1 untimed call (numba, "
        f"{numba.get_num_threads()} threads; '1 thread' = numba.set_num_threads(1)); JIT warmed "
        f"up before timing ({jit_s:.2f} s); kernels use cache=True, so the first-ever compile "
        "is cached on disk (__pycache__) and later runs only load it",
        f"STRtree: build = STRtree(grids); query(points, predicate='intersects') best of {REPS} "
        "after 1 untimed call",
        "sjoin: a fresh points GeoDataFrame per repetition (no cached index); intersects: "
        "build = grids.sindex, queried per point; within: sjoin builds an index of the 1 M "
        f"points in every call (included); best of up to {REPS}. Making the shapely points "
        f"({', '.join(f'{ps.name} {ps.points_s:.2f} s' for ps in point_sets)}) is not counted "
        "for sjoin / STRtree",
        f"PostGIS {postgis_v} on PostgreSQL {pg_v} (max_parallel_workers_per_gather = "
        f"{workers}): build = COPY of the grids (EWKB) + GiST index + ANALYZE; one timed run of "
        f"`{query_text}`, fetch included; points loaded beforehand by COPY ("
        + ", ".join(f"{name} {s:.1f} s" for name, s in load_s.items())
        + ")",
        f"machine: {os.cpu_count()} CPUs; during the {in_memory_s:.0f} s of in-memory timings "
        f"other processes used {others_s:.1f} CPU s (steal {steal_s:.1f} s), a sign of noise; "
        "shapely STRtree and geopandas.sjoin run on one core, the Locator on all numba threads "
        "(its one-thread row is the like-for-like figure), PostGIS with its parallel workers; the "
        "Locator's calls take tens of ms and can vary up to 2x between runs on a small shared VM, "
        "so rerun before concluding on a borderline ratio",
    ]
    console.print()
    table.show(console)
    path = table.write_markdown("locate")
    console.print(f"[dim]written to {path.relative_to(PROJECT_ROOT)}[/dim]", highlight=False)
