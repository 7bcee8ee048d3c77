"""The serial kernel (a request's few points) and the parallel one (bulk) name the same owner.

Small inputs are located on the calling thread without numba's thread pool (see
``geo_service.locator.index.SERIAL_BELOW``); both kernels share their per-point functions, and
the parallel one is checked against PostGIS in ``test_locate_exact``, so equality here makes
the serial path PostGIS-exact too: interiors, shared vertices, edge midpoints, lattice corners,
points off the index and NaN.
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from geo_service.locator import Locator
from geo_service.locator.index import SERIAL_BELOW, GridIndex
from tests.layouts import small_layout
from tests.support import DEMO_LAYOUT


@pytest.fixture(scope="module")
def demo() -> Locator:
    return Locator.from_file(DEMO_LAYOUT, crs="wgs84")


def _hard_points(locator: Locator, n_random: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random points over and around the layout, every vertex, every edge midpoint, and a few
    points off the index (far away, NaN)."""
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = locator.grids.total_bounds
    pad = 0.01
    rx = rng.uniform(minx - pad, maxx + pad, n_random)
    ry = rng.uniform(miny - pad, maxy + pad, n_random)
    geoms = locator.grids.geometry.to_numpy()
    verts = np.unique(shapely.get_coordinates(geoms), axis=0)
    rings = shapely.get_coordinates(shapely.boundary(geoms))
    mids = (rings[:-1] + rings[1:]) / 2  # some straddle two rings: still valid points
    odd = np.array([[116.39, 39.91], [np.nan, 30.7], [120.7, np.nan], [minx - 1, miny]])
    pts = np.concatenate([np.column_stack([rx, ry]), verts, mids, odd])
    return pts[:, 0].copy(), pts[:, 1].copy()


def test_serial_and_parallel_kernels_agree_on_the_demo_everywhere(demo: Locator) -> None:
    xs, ys = _hard_points(demo, 50_000, seed=10)
    serial = demo.index.locate(xs, ys, parallel=False)
    parallel = demo.index.locate(xs, ys, parallel=True)
    assert (serial >= 0).sum() > 20_000 and (serial < 0).sum() > 1_000  # both kinds exercised
    mismatch = np.flatnonzero(serial != parallel)
    assert len(mismatch) == 0, f"{len(mismatch)} disagreements, e.g. {xs[mismatch[:3]]}"


def test_serial_kernel_breaks_lattice_ties_to_the_lowest_code_as_the_parallel_one() -> None:
    """Square lattice: edge midpoints and corners are covered by two or four grids."""
    locator = Locator.from_frame(small_layout())
    coords = np.unique(shapely.get_coordinates(locator.grids.geometry.to_numpy()), axis=0)
    ux, uy = np.unique(coords[:, 0]), np.unique(coords[:, 1])
    mx = np.concatenate([ux, (ux[:-1] + ux[1:]) / 2])
    my = np.concatenate([uy, (uy[:-1] + uy[1:]) / 2])
    xs, ys = (a.ravel() for a in np.meshgrid(mx, my))
    serial = locator.index.locate(xs, ys, parallel=False)
    assert (serial >= 0).all()
    assert (serial == locator.index.locate(xs, ys, parallel=True)).all()
    codes = locator.grids["code"].to_numpy()
    corner = int(locator.index.locate(np.array([ux[1]]), np.array([uy[1]]), parallel=False)[0])
    covering = locator.grids[locator.grids.geometry.covers(shapely.Point(ux[1], uy[1]))]["code"]
    assert len(covering) == 4 and codes[corner] == covering.min()


def test_one_point_at_a_time_gives_the_bulk_answer(demo: Locator) -> None:
    """What a ``GET /v1/locate`` does (one point, serial) equals the bulk answer."""
    xs, ys = _hard_points(demo, 300, seed=11)
    bulk = demo.index.locate(xs, ys, parallel=True)
    one_by_one = [int(demo.index.locate(xs[i : i + 1], ys[i : i + 1])[0]) for i in range(len(xs))]
    assert one_by_one == bulk.tolist()


def test_size_picks_the_kernel_and_both_sides_of_the_threshold_agree(
    demo: Locator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from geo_service.locator import kernels

    called: list[str] = []
    for name in ("locate_points", "locate_points_serial"):
        real = getattr(kernels, name)
        monkeypatch.setattr(
            kernels, name, lambda *a, _real=real, _name=name: called.append(_name) or _real(*a)
        )
    xs, ys = _hard_points(demo, SERIAL_BELOW, seed=12)
    below = demo.index.locate(xs[: SERIAL_BELOW - 1], ys[: SERIAL_BELOW - 1])
    at = demo.index.locate(xs[:SERIAL_BELOW], ys[:SERIAL_BELOW])
    assert called == ["locate_points_serial", "locate_points"]
    assert (at[: SERIAL_BELOW - 1] == below).all()


def test_an_empty_input_answers_nothing_on_either_kernel() -> None:
    index = GridIndex.build([shapely.box(0, 0, 1, 1)])
    empty = np.zeros(0)
    for parallel in (False, True):
        assert index.locate(empty, empty, parallel=parallel).shape == (0,)


def test_serve_gives_each_worker_cores_over_workers_numba_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two workers on two cores get one numba thread each: their pools never fight."""
    import os

    import uvicorn
    from typer.testing import CliRunner

    from geo_service import cli

    assert [cli.numba_threads_per_worker(w, cores=2) for w in (1, 2, 3)] == [2, 1, 1]
    assert cli.numba_threads_per_worker(2, cores=8) == 4
    started: list[tuple[int, str]] = []
    monkeypatch.setattr(
        uvicorn,
        "run",
        lambda *a, **k: started.append((k["workers"], os.environ["NUMBA_NUM_THREADS"])),
    )
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@127.0.0.1:9/none")
    monkeypatch.setenv("NUMBA_NUM_THREADS", "")  # unset: chosen from the cores
    for workers in (1, 2):
        result = CliRunner().invoke(cli.app, ["serve", "--workers", str(workers)])
        assert result.exit_code == 0, result.output
        os.environ["NUMBA_NUM_THREADS"] = ""
    monkeypatch.setenv("NUMBA_NUM_THREADS", "3")  # an operator's explicit choice wins
    assert CliRunner().invoke(cli.app, ["serve", "--workers", "2"]).exit_code == 0
    assert started == [(1, "2"), (2, "1"), (2, "3")]
