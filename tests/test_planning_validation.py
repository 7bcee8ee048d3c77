"""The validation report of a version: invalid polygons, overlaps and gaps with their geometry
and area, children outside their parent, grid size and household limits, malformed codes and
codes out of reading order; as JSON and as a GeoJSON layer. Errors block publishing
(``validation_errors``); warnings do not."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import geopandas as gpd
import pytest
from fastapi.testclient import TestClient
from pyproj import Geod
from shapely import affinity
from shapely.geometry import MultiPolygon, Polygon, box, shape
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Engine, text

from geo_service.app import create_app
from geo_service.errors import Conflict
from geo_service.planning.validation_report import (
    check_publishable,
    validation_errors,
    validation_report,
)
from geo_service.settings import DatabaseSettings, PlanningSettings, Settings
from tests.conftest import DEMO_LABEL, auth
from tests.layouts import STEP, X0, Y0, small_layout

GEOD = Geod(ellps="WGS84")
G001, G002, G004 = "330411100001001", "330411100001002", "330411100001004"


def _geodesic_m2(geom: BaseGeometry) -> float:
    return abs(GEOD.geometry_area_perimeter(geom)[0])


def _upload(client: TestClient, key: str, frame: gpd.GeoDataFrame) -> int:
    r = client.post(
        "/v1/boundaries/versions",
        files={"file": ("layout.geojson", frame.to_json().encode())},
        data={"label": f"validation-{uuid.uuid4().hex[:8]}"},
        headers=auth(key),
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _report(client: TestClient, keys, version_id: int, **params) -> dict:  # type: ignore[no-untyped-def, type-arg]
    r = client.get(f"/v1/boundaries/versions/{version_id}/validation", params=params,
                   headers=auth(keys["planner"]))
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def _moved(code: str, dx: float) -> gpd.GeoDataFrame:
    frame = small_layout()
    i = frame.index[frame["code"] == code][0]
    frame.loc[i, "geometry"] = affinity.translate(frame.geometry[i], xoff=dx)
    return frame


@pytest.fixture(scope="module")
def demo_id(client: TestClient) -> int:
    listed = client.get("/v1/boundaries/versions").json()["versions"]
    return int(next(v["id"] for v in listed if v["label"] == DEMO_LABEL))


@pytest.fixture(scope="module")
def strict_client(database_url: str) -> Iterator[TestClient]:
    """The app with grid limits the small layout breaks: 30 ha minimum, 302 households."""
    limits = PlanningSettings(grid_min_m2=300_000, grid_max_households=302)
    app = create_app(Settings(database=DatabaseSettings(url=database_url), planning=limits))
    with TestClient(app) as c:
        yield c


def test_the_demo_version_has_no_errors_and_no_warnings(client: TestClient, keys, demo_id) -> None:
    report = _report(client, keys, demo_id)
    assert report["valid"] is True
    assert (report["errors"], report["warnings"], report["problems"]) == (0, 0, [])
    assert report["version"]["label"] == DEMO_LABEL


def test_overlap_and_gap_are_reported_with_their_geometry_and_area(
    client: TestClient, keys
) -> None:
    vid = _upload(client, keys["planner"], _moved(G001, 0.001))
    report = _report(client, keys, vid)
    assert report["valid"] is False and report["kinds"] == {"overlap": 1, "gap": 1}
    overlap = next(p for p in report["problems"] if p["kind"] == "overlap")
    gap = next(p for p in report["problems"] if p["kind"] == "gap")
    assert overlap["codes"] == [G001, G002] and overlap["severity"] == "error"
    assert gap["codes"] == ["330411100001"]
    want_overlap = box(X0 + STEP, Y0 + STEP, X0 + STEP + 0.001, Y0 + 2 * STEP)
    want_gap = box(X0, Y0 + STEP, X0 + 0.001, Y0 + 2 * STEP)
    for problem, want in ((overlap, want_overlap), (gap, want_gap)):
        got = shape(problem["geometry"])
        assert got.symmetric_difference(want).area < 1e-14
        assert problem["area_m2"] == pytest.approx(_geodesic_m2(want), rel=2e-3)
        assert want.covers(shape({"type": "Point", "coordinates": problem["location"]}))


def test_problems_are_served_as_a_geojson_layer(client: TestClient, keys) -> None:
    vid = _upload(client, keys["planner"], _moved(G001, 0.001))
    r = client.get(f"/v1/boundaries/versions/{vid}/validation", params={"f": "geojson"},
                   headers=auth(keys["planner"]))
    assert r.status_code == 200 and r.headers["content-type"] == "application/geo+json"
    layer = r.json()
    assert layer["type"] == "FeatureCollection" and len(layer["features"]) == 2
    for feature in layer["features"]:
        assert feature["type"] == "Feature"
        assert shape(feature["geometry"]).area > 0
        assert feature["properties"]["severity"] == "error"
    assert {f["properties"]["kind"] for f in layer["features"]} == {"overlap", "gap"}


def test_a_grid_reaching_outside_its_community_is_reported(client: TestClient, keys) -> None:
    vid = _upload(client, keys["planner"], _moved(G002, STEP / 2))
    report = _report(client, keys, vid)
    outside = [p for p in report["problems"] if p["kind"] == "outside_parent"]
    assert [p["codes"] for p in outside] == [[G002, "330411100001"]]
    want = box(X0 + 2 * STEP, Y0 + STEP, X0 + 2.5 * STEP, Y0 + 2 * STEP)
    assert shape(outside[0]["geometry"]).symmetric_difference(want).area < 1e-14
    assert outside[0]["area_m2"] == pytest.approx(_geodesic_m2(want), rel=2e-3)


def test_grid_area_and_household_limits_come_from_the_settings(
    strict_client: TestClient, client: TestClient, keys
) -> None:
    frame = small_layout()
    vid = _upload(client, keys["planner"], frame)
    assert _report(client, keys, vid)["valid"] is True  # default limits
    report = _report(strict_client, keys, vid)
    grids = frame[frame["level"] == "grid"]
    small = {c for c, g in zip(grids["code"], grids.geometry, strict=True)
             if _geodesic_m2(g) < 300_000}
    crowded = set(grids.loc[grids["households"] > 302, "code"])
    assert small and crowded  # the limits do bite on this layout
    by_kind: dict[str, set[str]] = {}
    for p in report["problems"]:
        by_kind.setdefault(p["kind"], set()).add(p["codes"][0])
    assert by_kind == {"grid_too_small": small, "too_many_households": crowded}


def test_grids_over_the_maximum_area_are_reported(engine: Engine, client: TestClient, keys) -> None:
    vid = _upload(client, keys["planner"], small_layout())
    with engine.connect() as conn:
        problems = validation_report(conn, vid, PlanningSettings(grid_max_m2=200_000)).problems
    assert {p.kind for p in problems} == {"grid_too_large"}
    assert len(problems) == 16 and all(p.area_m2 and p.area_m2 > 200_000 for p in problems)


def test_codes_out_of_reading_order_are_a_warning_that_does_not_block(
    engine: Engine, client: TestClient, keys
) -> None:
    frame = small_layout()
    first, last = frame["code"] == G001, frame["code"] == G004
    frame.loc[first, "code"], frame.loc[last, "code"] = G004, G001
    vid = _upload(client, keys["planner"], frame)
    report = _report(client, keys, vid)
    assert (report["valid"], report["errors"], report["warnings"]) == (True, 0, 1)
    order = report["problems"][0]
    assert order["kind"] == "code_order" and order["severity"] == "warning"
    assert sorted(order["codes"]) == [G001, G004] and "renumber" in order["message"]
    with engine.connect() as conn:
        assert validation_errors(conn, vid) == []
        check_publishable(conn, vid)  # warnings only: no error


def test_malformed_grid_codes_are_reported(client: TestClient, keys) -> None:
    frame = small_layout()
    frame.loc[frame["code"] == G004, "code"] = "330411100001X04"
    report = _report(client, keys, _upload(client, keys["planner"], frame))
    assert report["kinds"] == {"malformed_code": 1}
    assert report["problems"][0]["codes"] == ["330411100001X04"]


def test_an_invalid_polygon_in_a_stored_version_is_reported(
    engine: Engine, client: TestClient, keys
) -> None:
    vid = _upload(client, keys["planner"], small_layout())
    x0, y0, x1, y1 = X0, Y0 + STEP, X0 + STEP, Y0 + 2 * STEP
    bowtie = MultiPolygon([Polygon([(x0, y0), (x1, y1), (x1, y0), (x0, y1), (x0, y0)])])
    with engine.begin() as conn:  # as a draft written by other code could hold it
        area_id = conn.execute(
            text("INSERT INTO areas (code, name, level, parent_code, fingerprint, geom) "
                 "VALUES (:c, 'bowtie', 'grid', :p, :f, ST_GeomFromText(:w, 4326)) RETURNING id"),
            {"c": G001, "p": G001[:12], "f": uuid.uuid4().hex, "w": bowtie.wkt},
        ).scalar_one()
        conn.execute(
            text("UPDATE version_areas SET area_id = :a WHERE version_id = :v AND code = :c"),
            {"a": area_id, "v": vid, "c": G001},
        )
    report = _report(client, keys, vid)
    invalid = [p for p in report["problems"] if p["kind"] == "invalid_geometry"]
    assert [p["codes"] for p in invalid] == [[G001]]
    assert "Self-intersection" in invalid[0]["message"]
    assert invalid[0]["location"] == pytest.approx([(x0 + x1) / 2, (y0 + y1) / 2])


def test_validation_errors_are_what_forbids_publishing(
    engine: Engine, client: TestClient, keys, demo_id
) -> None:
    bad = _upload(client, keys["planner"], _moved(G001, 0.001))
    with engine.connect() as conn:
        assert validation_errors(conn, demo_id) == []
        errors = validation_errors(conn, bad)
        assert sorted(p.kind for p in errors) == ["gap", "overlap"]
        with pytest.raises(Conflict, match="2 validation error") as info:
            check_publishable(conn, bad)
    assert sorted(d["kind"] for d in info.value.details) == ["gap", "overlap"]


def test_a_version_without_areas_is_an_error(engine: Engine, client: TestClient, keys) -> None:
    with engine.begin() as conn:
        vid = conn.execute(
            text("INSERT INTO boundary_versions (label) VALUES (:l) RETURNING id"),
            {"l": f"empty-{uuid.uuid4().hex[:8]}"},
        ).scalar_one()
    report = _report(client, keys, vid)
    assert report["valid"] is False and report["kinds"] == {"empty_version": 1}


def test_unknown_version_is_404(client: TestClient, keys) -> None:
    r = client.get("/v1/boundaries/versions/999999/validation", headers=auth(keys["planner"]))
    assert r.status_code == 404 and "999999" in r.json()["message"]


def test_unknown_format_is_422(client: TestClient, keys, demo_id) -> None:
    r = client.get(f"/v1/boundaries/versions/{demo_id}/validation", params={"f": "kml"},
                   headers=auth(keys["planner"]))
    assert r.status_code == 422 and "f" in r.json()["message"]


@pytest.mark.parametrize(
    "role, status",
    [("anonymous", 401), ("reporter", 403), ("grid_worker", 403), ("operator", 200),
     ("admin", 200), ("planner", 200)],
)
def test_planners_operators_and_admins_read_validation_reports(
    client: TestClient, keys, demo_id, role: str, status: int
) -> None:
    headers = {} if role == "anonymous" else auth(keys[role])
    r = client.get(f"/v1/boundaries/versions/{demo_id}/validation", headers=headers)
    assert r.status_code == status
