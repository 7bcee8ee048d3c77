"""``GET /v1/locate``'s fast path answers exactly as the route does, from per-version parts.

The fast path (``geo_service.api.locate_fastpath.LocateFastPath``) serves plain one-point
queries before routing; the route stays the reference. Here: the same bytes and headers for
points inside, on shared edges (runner-up), just outside (nearest grid), far away, in every
CRS and on a past day; refusals worded by the route; the per-version parts equal to what the
grid frame says; and the one-point metric details equal to the bulk calls bit for bit.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import shapely
from fastapi import FastAPI
from fastapi.testclient import TestClient

from geo_service.api import locate_fastpath
from geo_service.api.locate_fastpath import (
    OUTSIDE_NEAREST_M,
    LocateFastPath,
    VersionParts,
    plain_query,
)
from geo_service.api.routes import locate as locate_route
from geo_service.app import create_app
from geo_service.coords import wgs84_to_bd09, wgs84_to_gcj02
from geo_service.locator import Locator
from geo_service.settings import DatabaseSettings, RateLimitSettings, Settings


def _settings(url: str) -> Settings:
    return Settings(
        database=DatabaseSettings(url=url), rate_limits=RateLimitSettings(enabled=False)
    )


@pytest.fixture(scope="module")
def apps(database_url: str) -> Iterator[tuple[TestClient, TestClient]]:
    """(the service as built, the same service without the fast path)."""
    fast = create_app(_settings(database_url))
    slow: FastAPI = create_app(_settings(database_url))
    slow.user_middleware = [m for m in slow.user_middleware if m.cls is not LocateFastPath]
    assert len(slow.user_middleware) == len(fast.user_middleware) - 1
    with TestClient(fast) as f, TestClient(slow) as s:
        yield f, s


@pytest.fixture
def route_calls(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The longitudes the route (not the fast path) answered."""
    calls: list[float] = []
    real = locate_route.one_answer

    def counting(loc, lon, lat, crs, within_m):  # type: ignore[no-untyped-def]
        calls.append(lon)
        return real(loc, lon, lat, crs, within_m)

    monkeypatch.setattr(locate_route, "one_answer", counting)
    return calls


def _edge_points(locator: Locator, n: int) -> list[tuple[float, float]]:
    """Midpoints of boundary segments shared by two grids: a runner-up within 5 m."""
    geoms = locator.grids.geometry.to_numpy()
    out = []
    for i in range(0, len(geoms), max(len(geoms) // n, 1)):
        ring = shapely.get_coordinates(shapely.boundary(geoms[i]))
        mid = (ring[0] + ring[1]) / 2
        out.append((float(mid[0]), float(mid[1])))
    return out[:n]


def _queries(locator: Locator) -> list[str]:
    rng = np.random.default_rng(7)
    minx, miny, maxx, maxy = locator.grids.total_bounds
    inside = [g.representative_point() for g in locator.grids.geometry.iloc[::150]]
    pts = [(p.x, p.y) for p in inside] + _edge_points(locator, 15)
    pts += [(minx - 0.002, (miny + maxy) / 2), (minx - 0.5, miny), (116.39, 39.91)]
    pts += list(zip(rng.uniform(minx, maxx, 20), rng.uniform(miny, maxy, 20), strict=True))
    pts = [(float(x), float(y)) for x, y in pts]
    out = [f"lon={x!r}&lat={y!r}" for x, y in pts]
    out += [f"lat={y:.6f}&lon={x:.6f}&crs=cgcs2000" for x, y in pts[:5]]
    gx, gy = wgs84_to_gcj02([p[0] for p in pts[:5]], [p[1] for p in pts[:5]])
    out += [f"lon={x}&lat={y}&crs=gcj02" for x, y in zip(gx.tolist(), gy.tolist(), strict=True)]
    bx, by = wgs84_to_bd09([p[0] for p in pts[:5]], [p[1] for p in pts[:5]])
    out += [f"lon={x}&lat={y}&crs=BD09" for x, y in zip(bx.tolist(), by.tolist(), strict=True)]
    out += [f"lon={x!r}&lat={y!r}&as_of=2025-06-01" for x, y in pts[:3]]
    return out


def test_fast_path_answers_byte_for_byte_as_the_route(
    apps: tuple[TestClient, TestClient], demo_locator: Locator, route_calls: list[float]
) -> None:
    fast, slow = apps
    kinds = set()
    for query in _queries(demo_locator):
        a = fast.get(f"/v1/locate?{query}")
        assert not route_calls, f"the route answered {query}, not the fast path"
        b = slow.get(f"/v1/locate?{query}")
        assert len(route_calls) == 1  # the reference really is the route
        route_calls.clear()
        assert a.status_code == b.status_code == 200, query
        assert a.content == b.content, query
        assert a.headers == b.headers, query
        body = a.json()
        kinds.add("inside" if body["grid"] else "outside")
        kinds.add("runner-up" if body.get("runner_up") else "alone")
        kinds.add("nearest" if body.get("nearest") else "far")
    assert kinds == {"inside", "outside", "runner-up", "alone", "nearest", "far"}


@pytest.mark.parametrize(
    "query",
    [
        "lon=120.7&lat=91",  # out of range
        "lon=120.7&lat=30.7&crs=mars",
        "lon=120.7&lat=30.7&as_of=2025-13-01",
        "lon=120.7&lat=30.7&as_of=2020-01-01",  # no version in force then: 404
        "lon=1.207e2&lat=30.7",  # not plain: the route parses it
        "lon=120.7&lat=30.7&lat=30.8",
        "lon=%31%32%30.7&lat=30.7",
        "lon=120.7",
        "lon=nan&lat=30.7",
    ],
)
def test_what_the_fast_path_does_not_take_the_route_answers(
    apps: tuple[TestClient, TestClient], query: str, route_calls: list[float]
) -> None:
    fast, slow = apps
    a = fast.get(f"/v1/locate?{query}")
    assert a.status_code != 200 or route_calls  # a 200 here came from the route
    b = slow.get(f"/v1/locate?{query}")
    assert (a.status_code, a.content) == (b.status_code, b.content)


@pytest.mark.parametrize(
    "raw, expected",
    [
        (b"lon=120.7&lat=30.75", {"lon": "120.7", "lat": "30.75"}),
        (b"lat=-30&lon=120&crs=EPSG:4490", {"lat": "-30", "lon": "120", "crs": "EPSG:4490"}),
        (b"lon=1&lat=2&as_of=2025-01-01", {"lon": "1", "lat": "2", "as_of": "2025-01-01"}),
        (b"lon=120.7&lat=30.7&x=1", None),
        (b"lon=120.7&lat=30.7&lon=1", None),
        (b"lon=1e3&lat=30.7", None),
        (b"lon=+120&lat=30.7", None),
        (b"lon=120.&lat=30.7", None),
        (b"lon=1200&lat=30.7", None),
        (b"lon=120.7&lat=", None),
        (b"lon=120.7&lat=30.7&crs=gcj%3002", None),
        (b"lon=120.7", None),
        (b"", None),
    ],
)
def test_plain_query_takes_only_plain_lon_lat_crs_and_day(
    raw: bytes, expected: dict[str, str] | None
) -> None:
    assert plain_query(raw) == expected


def test_version_parts_say_what_the_grid_frame_says_for_every_grid(demo_locator: Locator) -> None:
    parts = VersionParts.of(demo_locator)
    assert VersionParts.of(demo_locator) is parts  # once per Locator
    assert parts.version == demo_locator.version.as_dict()
    for g in range(len(demo_locator)):
        assert parts.chain(g) == demo_locator.chain(g)
        row = demo_locator.grids.iloc[g]
        expected = {"code": row["code"], "name": row["name"]}
        for key in ("households", "population", "grid_worker", "grid_leader"):
            value = row.get(key)
            if value is not None and value == value:
                expected[key] = value.item() if hasattr(value, "item") else value
        assert parts.full(g) == expected
    assert {"households", "grid_worker"} <= set(parts.full(0))


def test_one_point_details_equal_the_bulk_metric_calls_bit_for_bit(demo_locator: Locator) -> None:
    rng = np.random.default_rng(8)
    minx, miny, maxx, maxy = demo_locator.grids.total_bounds
    edges = np.array(_edge_points(demo_locator, 300))
    xs = np.concatenate([rng.uniform(minx - 0.02, maxx + 0.02, 700), edges[:, 0]])
    ys = np.concatenate([rng.uniform(miny - 0.02, maxy + 0.02, 700), edges[:, 1]])
    res = demo_locator.locate(xs, ys)
    gi = res.grid_index
    own = res.boundary_distance_m()
    runner, runner_d = demo_locator.neighbours_within(gi, xs, ys, 5.0)
    near, near_d = demo_locator.neighbours_within(gi, xs, ys, OUTSIDE_NEAREST_M)
    assert (runner >= 0).sum() > 250 and (gi < 0).sum() > 100 and (near[gi < 0] >= 0).any()
    for i in range(len(xs)):
        g = int(gi[i])
        one = demo_locator.point_details(g, float(xs[i]), float(ys[i]), 5.0)
        np.testing.assert_array_equal(one, (own[i], runner[i], runner_d[i]))
        if g < 0:
            far = demo_locator.point_details(g, float(xs[i]), float(ys[i]), OUTSIDE_NEAREST_M)
            np.testing.assert_array_equal(far, (np.nan, near[i], near_d[i]))


def test_a_new_locator_gets_new_parts(demo_locator: Locator) -> None:
    """Parts are per Locator, so per boundary version: a publish brings a new Locator."""
    other = Locator(demo_locator.grids, demo_locator.version)
    assert VersionParts.of(other) is not VersionParts.of(demo_locator)
    assert locate_fastpath._PARTS.get(other) is not None


def test_the_compiled_kernel_measures_most_points_itself(demo_locator: Locator) -> None:
    """GEOS measures only points within a micrometre of another grid's boundary; elsewhere
    the compiled kernel does, and its figures are GEOS's (previous test)."""
    from geo_service.locator import kernels

    rng = np.random.default_rng(9)
    minx, miny, maxx, maxy = demo_locator.grids.total_bounds
    xs, ys = rng.uniform(minx, maxx, 500), rng.uniform(miny, maxy, 500)
    gi = demo_locator.locate(xs, ys).grid_index
    mx, my = demo_locator._to_metric.transform(xs, ys)
    frame_x, frame_y, bounds = demo_locator._metric_frame
    index = demo_locator.index
    hard = [
        kernels.point_details(
            int(g), x, y, frame_x, frame_y, index.ring_off, index.poly_off, index.geom_off,
            bounds, 5.0 if g >= 0 else OUTSIDE_NEAREST_M, 1e-6,
        )[3]
        for g, x, y in zip(gi, mx, my, strict=True)
    ]  # fmt: skip
    assert sum(hard) == 0


def test_one_point_answers_agree_with_the_batch_endpoint(
    apps: tuple[TestClient, TestClient], demo_locator: Locator
) -> None:
    """A one-point answer (fast path, one-point metric kernel) says what the batch endpoint
    (bulk kernel, GEOS over arrays) says of the same point: grid, distances, runner-up,
    nearest grid outside."""
    fast, _ = apps
    rng = np.random.default_rng(12)
    minx, miny, maxx, maxy = demo_locator.grids.total_bounds
    points = list(
        zip(
            rng.uniform(minx - 0.01, maxx + 0.01, 150).tolist(),
            rng.uniform(miny - 0.01, maxy + 0.01, 150).tolist(),
            strict=True,
        )
    )
    points += _edge_points(demo_locator, 50)
    batch = fast.post("/v1/locate", json={"points": [list(p) for p in points]}).json()["results"]
    for (x, y), many in zip(points, batch, strict=True):
        one = fast.get("/v1/locate", params={"lon": repr(x), "lat": repr(y)}).json()
        for key in ("point", "boundary_distance_m", "runner_up", "nearest", "reason"):
            assert one.get(key) == many.get(key), (key, x, y)
        assert (one["grid"] or {}).get("code") == (many["grid"] or {}).get("code")
