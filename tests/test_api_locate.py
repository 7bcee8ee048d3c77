"""``/v1/locate`` answers routing code: owner grid, chain, version, distances; 4xx on bad input."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from geo_service.coords import wgs84_to_bd09, wgs84_to_gcj02
from geo_service.locator import Locator


def _inside_point(locator: Locator, i: int = 0) -> tuple[float, float, str]:
    g = locator.grids.iloc[i]
    p = g.geometry.representative_point()
    return p.x, p.y, g["code"]


def test_get_answers_grid_chain_version_and_distance(client: TestClient, demo_locator) -> None:
    x, y, code = _inside_point(demo_locator, 10)
    r = client.get("/v1/locate", params={"lon": x, "lat": y})
    assert r.status_code == 200
    body = r.json()
    assert body["grid"]["code"] == code
    assert body["grid"]["households"] > 0
    assert body["grid"]["grid_worker"]
    assert [c["level"] for c in body["chain"]] == ["district", "town", "community", "grid"]
    assert body["chain"][0]["code"] == "330411"
    assert body["version"]["label"] == "demo-2025"
    assert body["version"]["effective_from"] == "2025-01-01"
    assert body["boundary_distance_m"] > 0


@pytest.mark.parametrize("crs, forward", [("gcj02", wgs84_to_gcj02), ("bd09", wgs84_to_bd09)])
def test_phone_map_coordinates_resolve_to_the_same_grid(
    client: TestClient, demo_locator, crs, forward
) -> None:
    x, y, code = _inside_point(demo_locator, 20)
    fx, fy = forward([x], [y])
    r = client.get("/v1/locate", params={"lon": fx[0], "lat": fy[0], "crs": crs})
    assert r.status_code == 200
    assert r.json()["grid"]["code"] == code
    assert abs(r.json()["point"]["lon"] - x) < 1e-8


def test_outside_coverage_is_200_with_null_grid_and_a_reason(client: TestClient) -> None:
    r = client.get("/v1/locate", params={"lon": 116.39, "lat": 39.91})  # Beijing
    assert r.status_code == 200
    assert r.json()["grid"] is None
    assert "outside coverage" in r.json()["reason"]


def test_just_outside_names_the_nearest_grid(client: TestClient, demo_locator) -> None:
    district = demo_locator.grids.total_bounds
    r = client.get(
        "/v1/locate", params={"lon": district[0] - 0.001, "lat": (district[1] + district[3]) / 2}
    )
    body = r.json()
    assert body["grid"] is None
    if body["nearest"] is not None:
        assert body["nearest"]["distance_m"] < 2000


def test_runner_up_is_named_near_a_shared_edge(client: TestClient, demo_locator) -> None:
    import shapely

    a = demo_locator.grids.geometry.iloc[0]
    touching = demo_locator.grids[demo_locator.grids.geometry.touches(a)]
    shared = shapely.intersection(a, touching.geometry.iloc[0])
    p = (
        shapely.line_interpolate_point(shapely.get_parts(shared)[0], 0.5, normalized=True)
        if shared.geom_type != "Point"
        else shared
    )
    r = client.get("/v1/locate", params={"lon": p.x, "lat": p.y}).json()
    assert r["boundary_distance_m"] < 0.01
    assert r["runner_up"] is not None
    assert r["runner_up"]["code"] != r["grid"]["code"]
    assert r["runner_up"]["distance_m"] < 0.01


def test_batch_answers_in_input_order(client: TestClient, demo_locator) -> None:
    rng = np.random.default_rng(11)
    minx, miny, maxx, maxy = demo_locator.grids.total_bounds
    pts = np.column_stack([rng.uniform(minx, maxx, 2_000), rng.uniform(miny, maxy, 2_000)])
    r = client.post("/v1/locate", json={"crs": "wgs84", "points": pts.tolist()})
    assert r.status_code == 200
    got = [a["grid"]["code"] if a["grid"] else None for a in r.json()["results"]]
    assert got == list(demo_locator.locate(pts[:, 0], pts[:, 1]).grid_code)


def test_batch_of_100k_points_is_accepted(client: TestClient, demo_locator) -> None:
    x, y, code = _inside_point(demo_locator, 5)
    r = client.post("/v1/locate", json={"points": [[x, y]] * 100_000})
    assert r.status_code == 200
    results = r.json()["results"]
    assert len(results) == 100_000 and results[-1]["grid"]["code"] == code


def test_batch_over_100k_points_is_413(client: TestClient) -> None:
    r = client.post("/v1/locate", json={"points": [[120.7, 30.7]] * 100_001})
    assert r.status_code == 413
    assert "100001 points" in r.json()["message"]


@pytest.mark.parametrize(
    "params, fragment",
    [
        ({"lon": "nan", "lat": 30.7}, "invalid coordinates"),
        ({"lon": 120.7, "lat": 91}, "invalid coordinates"),
        ({"lon": "inf", "lat": 30.7}, "invalid coordinates"),
        ({"lon": 120.7, "lat": 30.7, "crs": "mars"}, "unknown crs"),
        ({"lon": 120.7}, "lat"),
        ({"lon": "east", "lat": 30.7}, "lon"),
        ({"lon": 120.7, "lat": 30.7, "as_of": "2025-13-01"}, "as_of: Input should be a valid date"),
    ],
)
def test_bad_single_requests_are_4xx_naming_the_problem(
    client: TestClient, params: dict, fragment: str
) -> None:
    r = client.get("/v1/locate", params=params)
    assert 400 <= r.status_code < 500
    assert fragment in r.json()["message"]


@pytest.mark.parametrize(
    "body, status, fragment",
    [
        (b"{not json", 422, "malformed JSON"),
        (b'{"points": "here"}', 422, "array"),
        (b'{"points": [[120.7]]}', 422, "pairs"),
        (b'{"points": [["a", "b"]]}', 422, "pairs"),
        (b'{"pts": []}', 422, "points"),
        (b'{"points": [[120.7, 30.7]], "crs": "xyz"}', 422, "unknown crs"),
        (b'{"points": [[1e400, 30.7]]}', 422, "infinity"),
    ],
)
def test_bad_batches_are_4xx_naming_the_problem(
    client: TestClient, body: bytes, status: int, fragment: str
) -> None:
    r = client.post("/v1/locate", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status
    assert fragment in r.json()["message"]


def test_errors_print_plain_numbers(client: TestClient) -> None:
    r = client.post("/v1/locate", json={"points": [[120.7, 30.7], [200, 30.5]]})
    assert r.status_code == 422
    assert "point 1 has invalid coordinates (lon=200.0, lat=30.5)" in r.json()["message"]
    assert "np." not in r.text


def test_as_of_before_any_version_is_404(client: TestClient) -> None:
    r = client.get("/v1/locate", params={"lon": 120.7, "lat": 30.7, "as_of": "2020-01-01"})
    assert r.status_code == 404
    assert "no boundary version is in force on 2020-01-01" in r.json()["message"]


def test_health_really_queries_postgis(client: TestClient) -> None:
    r = client.get("/health")
    assert r.status_code == 200
    assert r.json()["postgis"].startswith("3.")
    assert r.json()["boundary_version"] == "demo-2025"


def test_versions_are_listed(client: TestClient) -> None:
    versions = client.get("/v1/boundaries/versions").json()["versions"]
    assert any(v["label"] == "demo-2025" and v["status"] == "published" for v in versions)
