"""Batch re-location and roll-ups on a real two-worker Dask cluster (``dask scheduler`` and two
``dask worker`` processes on 127.0.0.1, started here): they give exactly the in-process answers
(the Locator's codes; counts made with pandas and the H3 library) and the service's own heat
roll-up numbers; each worker builds the Locator's shards once and only those its pieces touch;
a worker killed mid-run changes nothing; bad input gets a clear error."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely
from distributed import Client
from sqlalchemy import func, select
from typer.testing import CliRunner

from geo_service.batch.cluster import start_warm_up
from geo_service.batch.dataset import open_source
from geo_service.batch.export import export_reports
from geo_service.batch.relocate import RelocateStats, relocate
from geo_service.batch.rollup import RollupSpec, read_rollup, rollup, rollup_counts
from geo_service.batch.sharding import ShardedLayout
from geo_service.boundaries.reader import read_layout
from geo_service.cli import app
from geo_service.db.engine import make_engine
from geo_service.db.schema import heat_rollup
from geo_service.demo.year import synthesize_year
from geo_service.errors import InvalidInput
from geo_service.locator import Locator
from geo_service.reports.importer import load_demo_history
from geo_service.routing import RoutingTable
from tests.support import DEMO_LAYOUT, load_demo

END = dt.date(2025, 11, 24)
N = 4_000
DASK = str(Path(sys.executable).parent / "dask")
CODES = ("grid_code", "community_code", "town_code", "district_code")
KEYS = ["period", "code", "category", "channel"]
runner = CliRunner()


# --------------------------------------------------------------------------- the cluster


def _wait_for(path: Path, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the Dask scheduler did not start (exit {proc.poll()})")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A scheduler and two single-threaded workers (each under its nanny), separate
    processes listening on 127.0.0.1 only."""
    folder = tmp_path_factory.mktemp("dask")
    info = folder / "scheduler.json"
    log = (folder / "cluster.log").open("wb")
    procs = [
        subprocess.Popen(
            [DASK, "scheduler", "--host", "127.0.0.1", "--port", "0",
             "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(info)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    ]  # fmt: skip
    try:
        _wait_for(info, procs[0])
        scheduler = json.loads(info.read_text())["address"]
        for name in ("w0", "w1"):
            procs.append(
                subprocess.Popen(
                    [DASK, "worker", scheduler, "--name", name, "--nthreads", "1",
                     "--host", "127.0.0.1", "--no-dashboard",
                     "--local-directory", str(folder / name)],
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                )
            )  # fmt: skip
        with Client(scheduler) as c:
            c.wait_for_workers(2, timeout=120)
        yield scheduler
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
        for p in reversed(procs):
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)  # its own session: the nanny's worker too
                p.wait()
        log.close()


@pytest.fixture(scope="module")
def client(address: str) -> Iterator[Client]:
    with Client(address) as c:
        warming = start_warm_up(c)  # imports and kernels load while the data is made here
        yield c
        del warming


# --------------------------------------------------------------------------- the data


@pytest.fixture(scope="module")
def layout() -> gpd.GeoDataFrame:
    return read_layout(DEMO_LAYOUT, crs="wgs84").frame


@pytest.fixture(scope="module")
def whole(layout: gpd.GeoDataFrame) -> Locator:
    return Locator.from_frame(layout)


@pytest.fixture(scope="module")
def year(whole: Locator) -> pd.DataFrame:
    """A demo-sized year with its in-process answers (``new_*``) and old codes of which a few
    are wrong (so ``moved`` has something to find)."""
    frame = synthesize_year(whole, n=N, seed=11, end=END)
    frame.insert(0, "id", np.arange(1, N + 1) * 7)
    found = whole.locate(frame["lon"].to_numpy(), frame["lat"].to_numpy())
    chains = whole.grids.set_index("code")
    frame["new_grid_code"] = found.grid_code
    for level in ("community", "town", "district"):
        col = chains[f"{level}_code"].reindex(found.grid_code).to_numpy(dtype=object)
        frame[f"new_{level}_code"] = np.where(found.found, col, None)
    for c in CODES:
        frame[c] = frame[f"new_{c}"]
    rng = np.random.default_rng(3)
    wrong = rng.choice(N, 60, replace=False)
    frame.loc[wrong[:40], "grid_code"] = "330411999999999"  # no such grid
    frame.loc[wrong[40:], "grid_code"] = None
    return frame


def _geo(frame: pd.DataFrame) -> gpd.GeoDataFrame:
    cols = ["id", "reported_at", "category", "channel", "status", *CODES]
    return gpd.GeoDataFrame(
        frame[cols], geometry=gpd.points_from_xy(frame["lon"], frame["lat"]), crs="EPSG:4326"
    )


@pytest.fixture(scope="module")
def by_month(year: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The year as GeoParquet, one file per Beijing month."""
    out = tmp_path_factory.mktemp("src") / "by_month"
    month = year["reported_at"].dt.strftime("%Y-%m")
    for m, part in _geo(year).groupby(month.to_numpy()):
        (out / f"month={m}").mkdir(parents=True)
        part.to_parquet(out / f"month={m}" / "part-0.parquet")
    return out


def _relocated(dst: Path) -> pd.DataFrame:
    frame = pd.read_parquet(dst, dtype_backend="pyarrow").sort_values("id")
    return frame.astype({c: object for c in frame.columns if c.endswith("_code")}).reset_index(
        drop=True
    )


def _same(got: pd.Series, want: pd.Series) -> bool:
    """Equal values, whichever way each side spells "missing" (None, NA, NaN)."""
    a = [None if pd.isna(v) else v for v in got.astype(object).tolist()]
    b = [None if pd.isna(v) else v for v in want.astype(object).tolist()]
    return a == b


def _check_relocation(got: pd.DataFrame, year: pd.DataFrame) -> None:
    assert got["id"].tolist() == year["id"].tolist()
    for c in CODES:
        assert _same(got[c], year[f"new_{c}"]), c
        assert _same(got[f"old_{c}"], year[c]), c
    moved = [a != b for a, b in zip(year["grid_code"], year["new_grid_code"], strict=True)]
    assert got["moved"].tolist() == moved and 40 <= sum(moved) <= 60


# --------------------------------------------------------------------------- relocate


@pytest.fixture(scope="module")
def relocated(
    client: Client,
    by_month: Path,
    layout: gpd.GeoDataFrame,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, RelocateStats]:
    dst = tmp_path_factory.mktemp("out") / "relocated"
    stats = relocate(client, open_source(by_month), ShardedLayout.from_frame(layout), dst)
    return dst, stats


def test_relocate_on_the_cluster_answers_as_the_locator_in_process(
    relocated: tuple[Path, RelocateStats], year: pd.DataFrame
) -> None:
    dst, stats = relocated
    _check_relocation(_relocated(dst), year)
    assert stats.rows == N and stats.located == int(year["new_grid_code"].notna().sum())
    months = {p.name for p in dst.iterdir()}
    assert months == {f"month={m}" for m in year["reported_at"].dt.strftime("%Y-%m")}
    assert {p.name for p in dst.glob("month=*/*")} <= {"district=330411", "district=outside"}
    assert not (dst / "_layout").exists() and not list(dst.rglob(".*.tmp"))
    back = gpd.read_parquet(next(dst.glob("month=*/district=330411/*.parquet")))
    assert back.crs.to_epsg() == 4326


def test_the_locator_reaches_each_worker_once_not_once_per_task(
    relocated: tuple[Path, RelocateStats],
) -> None:
    _, stats = relocated
    assert len(stats.shards_used) == 2  # both workers ran tasks (12 of them)
    assert all(loads == {0: 1} for loads in stats.shard_loads.values())
    assert set(stats.shard_loads) == set(stats.shards_used)


def test_town_shards_each_worker_builds_only_what_its_pieces_touch(
    client: Client,
    year: pd.DataFrame,
    layout: gpd.GeoDataFrame,
    tmp_path: Path,
) -> None:
    src = tmp_path / "by_town"
    town = year["new_town_code"].fillna("none").to_numpy()
    for t, part in _geo(year).groupby(town):
        (src / f"town={t}").mkdir(parents=True)
        part.to_parquet(src / f"town={t}" / "part-0.parquet")
    sharded = ShardedLayout.from_frame(layout, level="town")
    stats = relocate(client, open_source(src), sharded, tmp_path / "out")
    _check_relocation(_relocated(tmp_path / "out"), year)
    # a town's piece touches its own shard and, near its edges, its neighbours': not all
    assert max(len(t) for t in stats.touched.values()) < len(sharded.keys)
    for worker, loads in stats.shard_loads.items():
        assert set(loads) == stats.shards_used[worker]  # built where a piece needed it
        assert set(loads.values()) == {1}  # and once


def test_a_worker_killed_mid_run_does_not_change_the_result(
    client: Client, year: pd.DataFrame, layout: gpd.GeoDataFrame, tmp_path: Path
) -> None:
    src = tmp_path / "many"
    src.mkdir()
    for i, part in enumerate(np.array_split(np.arange(N), 60)):
        _geo(year.iloc[part]).to_parquet(src / f"part-{i:03d}.parquet")
    before = client.scheduler_info(n_workers=-1)["workers"]
    victim = next(a for a, w in before.items() if w["name"] == "w1")
    pid = client.run(os.getpid, workers=[victim])[victim]
    done: dict[str, Any] = {}

    def run() -> None:
        try:
            done["stats"] = relocate(
                client, open_source(src), ShardedLayout.from_frame(layout), tmp_path / "out"
            )
        except BaseException as exc:  # reported below
            done["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    written = 0
    while thread.is_alive() and written == 0:
        written = len(list((tmp_path / "out").glob("month=*/*/part-*.parquet")))
        time.sleep(0.01)
    assert thread.is_alive(), "the run ended before a worker could be killed"
    os.kill(pid, signal.SIGKILL)
    killed_at = len(list((tmp_path / "out").glob("month=*/*/part-*.parquet")))
    thread.join(timeout=300)
    assert "error" not in done, done.get("error")
    assert killed_at < done["stats"].files  # the kill came mid-run
    _check_relocation(_relocated(tmp_path / "out"), year)
    client.wait_for_workers(2, timeout=120)  # the nanny restarted it
    after = client.scheduler_info(n_workers=-1)["workers"]
    assert victim not in after and "w1" in {w["name"] for w in after.values()}


# --------------------------------------------------------------------------- rollup


def _beijing_days(stamps: pd.Series) -> pd.Series:
    return stamps.dt.tz_convert("Asia/Shanghai").dt.tz_localize(None).dt.normalize()


def _expected(year: pd.DataFrame, by: str, period: str) -> pd.DataFrame:
    """Counts made here with pandas and the H3 library, independently of the batch code."""
    day = _beijing_days(year["reported_at"])
    start = {
        "day": day,
        "week": day - pd.to_timedelta(day.dt.day_of_week, unit="D"),
        "month": day.dt.to_period("M").dt.start_time,
    }[period]
    frame = pd.DataFrame(
        {"period": start.dt.date, "category": year["category"], "channel": year["channel"]}
    )
    if by.startswith("h3:"):
        res = int(by[3:])
        frame["code"] = [
            h3.cell_to_parent(h3.latlng_to_cell(lat, lon, 11), res)
            for lon, lat in zip(year["lon"], year["lat"], strict=True)
        ]
    else:
        width = {"grid": 15, "community": 12, "town": 9}[by]
        frame["code"] = year["new_grid_code"].str.slice(0, width)
        frame = frame[year["new_grid_code"].notna().to_numpy()]
    out = frame.groupby(KEYS).size().rename("n").reset_index()
    return out.sort_values(KEYS).reset_index(drop=True)


def _rows(frame: pd.DataFrame) -> list[tuple[Any, ...]]:
    return sorted(
        (r.period, str(r.code), str(r.category), str(r.channel), int(r.n))
        for r in frame.itertuples()
    )


@pytest.mark.parametrize(("by", "period"), [("grid", "week"), ("h3:9", "day"), ("town", "month")])
def test_rollup_on_the_cluster_counts_as_pandas_in_process(
    client: Client,
    relocated: tuple[Path, RelocateStats],
    year: pd.DataFrame,
    by: str,
    period: str,
    tmp_path: Path,
) -> None:
    spec = RollupSpec.parse(by, period)
    source = open_source(relocated[0], require=spec.required())
    stats = rollup(client, source, spec, tmp_path / "counts")
    got = read_rollup(tmp_path / "counts")
    assert _rows(got) == _rows(_expected(year, by, period))
    assert stats.counted == int(got["n"].sum()) and stats.rows == N


# --------------------------------------------------------------------------- the service's numbers


@pytest.fixture(scope="module")
def stored_url(new_database) -> str:  # type: ignore[no-untyped-def]
    """The demo boundaries and a stored year: the heat roll-up filled by the service."""
    url = load_demo(str(new_database("geo_batch")))
    engine = make_engine(url, pool_size=1)
    with engine.connect() as conn:
        routing = RoutingTable.load(conn)
    load_demo_history(engine, Locator.from_database(url), routing, n=2_000, end=END, prefix="b")
    engine.dispose()
    return url


def _service(url: str, by: str, period: str) -> pd.DataFrame:
    """What the service's heat roll-up says, summed to (period, code, category, channel)."""
    t = heat_rollup
    start = {
        "day": t.c.day,
        "week": func.date_trunc("week", t.c.day),
        "month": func.date_trunc("month", t.c.day),
    }[period]
    if by.startswith("h3:"):
        code = func.h3_parent(t.c.h3_9, int(by[3:]))
        where = []
    else:
        code = func.left(t.c.grid_code, {"grid": 15, "community": 12, "town": 9}[by])
        where = [t.c.grid_code != ""]
    day = func.date(start)
    query = (
        select(day, code, t.c.category, t.c.channel, func.sum(t.c.n))
        .where(*where)
        .group_by(day, code, t.c.category, t.c.channel)
    )
    engine = make_engine(url, pool_size=1)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    engine.dispose()
    frame = pd.DataFrame(rows, columns=[*KEYS, "n"])
    if by.startswith("h3:"):
        frame["code"] = [h3.int_to_str(int(c)) for c in frame["code"]]
    return frame


def test_rollup_of_an_export_gives_the_service_numbers_and_loads_them(
    address: str, stored_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    engine = make_engine(stored_url, pool_size=1)
    export_reports(engine, tmp_path / "export", chunk_rows=1_000)
    monkeypatch.setenv("DATABASE_URL", stored_url)
    for by, period in (("grid", "day"), ("h3:9", "week"), ("town", "month")):
        out = tmp_path / f"{by.replace(':', '')}-{period}"
        args = ["batch", "rollup", str(tmp_path / "export"), "--by", by, "--period", period]
        result = runner.invoke(app, [*args, "--out", str(out), "--scheduler", address, "--load"])
        assert result.exit_code == 0, result.output
        assert "dashboard http://127.0.0.1:" in result.output
        want = _rows(_service(stored_url, by, period))
        assert _rows(read_rollup(out)) == want
        with engine.connect() as conn:
            assert _rows(rollup_counts(conn, by, period)) == want
    engine.dispose()


# --------------------------------------------------------------------------- bad input


def test_a_polygon_among_the_points_is_named_by_the_worker(
    client: Client, year: pd.DataFrame, layout: gpd.GeoDataFrame, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _geo(year.iloc[:100]).to_parquet(src / "good.parquet")
    table = pq.read_table(src / "good.parquet")
    wkb = table.column("geometry").to_pylist()
    wkb[17] = shapely.to_wkb(shapely.box(120.7, 30.7, 120.71, 30.71))
    index = table.schema.get_field_index("geometry")
    pq.write_table(table.set_column(index, "geometry", pa.array(wkb)), src / "bad.parquet")
    with pytest.raises(InvalidInput, match=r"bad\.parquet: row 17 holds a Polygon"):
        relocate(client, open_source(src), ShardedLayout.from_frame(layout), tmp_path / "out")


def test_the_cli_refuses_bad_sources_with_a_clear_message(
    address: str, by_month: Path, tmp_path: Path
) -> None:
    plain = tmp_path / "plain.parquet"
    pd.DataFrame({"id": [1], "lon": [120.7], "lat": [30.7]}).to_parquet(plain)
    layout_args = ["--layout", str(DEMO_LAYOUT), "--scheduler", address]
    result = runner.invoke(
        app, ["batch", "relocate", str(plain), "--out", str(tmp_path / "o"), *layout_args]
    )
    assert result.exit_code == 2 and "has no geometry column" in result.output
    result = runner.invoke(app, ["batch", "relocate", str(by_month), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "give exactly one of --version" in result.output
    (tmp_path / "nocodes").mkdir()
    gpd.read_parquet(next(by_month.glob("*/*.parquet"))).drop(columns=list(CODES)).to_parquet(
        tmp_path / "nocodes" / "a.parquet"
    )
    result = runner.invoke(
        app,
        ["batch", "rollup", str(tmp_path / "nocodes"), "--by", "grid", "--period", "day",
         "--out", str(tmp_path / "r"), "--scheduler", address],
    )  # fmt: skip
    assert result.exit_code == 2 and "needs column(s) grid_code" in result.output
    assert "re-locate the source first" in result.output
