"""The size policy fits real layouts: limits per level and per area class (urban / rural, an
attribute of the area or its ancestors), size and household limits are warnings unless a
setting makes them errors, a draft is judged only on the grids it changes when the version in
force already breaks a limit, and renumbering keeps the codes of grids it did not reshape."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from geo_service.app import create_app
from geo_service.auth import create_key
from geo_service.boundaries import versions
from geo_service.boundaries.importer import import_layout
from geo_service.db.engine import make_engine
from geo_service.db.migrate import upgrade
from geo_service.planning.validation_report import validation_report
from geo_service.settings import DatabaseSettings, PlanningSettings, Settings, SizeLimit
from tests.conftest import auth
from tests.layouts import STEP, X0, Y0, small_layout

URBAN_TOWN, RURAL_TOWN = "330411100", "330411101"
C1 = f"{URBAN_TOWN}001"
RURAL_C = f"{RURAL_TOWN}001"
TODAY = dt.date.today()
# the small layout's grids cover about 0.27 km²: every grid passes 0.3 km², rural ones must
# stay under 0.2 km², so the version in force already breaks the limit in all 8 rural grids
POLICY = PlanningSettings(
    grid_max_m2=300_000, size_limits={"grid:rural": SizeLimit(max_m2=200_000)},
    size_limits_block=True,
)


def rural_layout() -> gpd.GeoDataFrame:
    """The small layout with its second town marked rural (its grids inherit the class)."""
    frame = small_layout()
    frame["area_class"] = None
    frame.loc[frame["code"] == RURAL_TOWN, "area_class"] = "rural"
    return frame


@dataclass(frozen=True)
class Place:
    url: str
    planner: str
    in_force: int


@pytest.fixture(scope="module")
def place(new_database, tmp_path_factory) -> Place:  # type: ignore[no-untyped-def]
    """A database whose version in force is the rural layout, published since 2025."""
    url = str(new_database("geo_size"))
    upgrade(url)
    path = tmp_path_factory.mktemp("size") / "rural.geojson"
    rural_layout().to_file(path)
    engine = make_engine(url, pool_size=2)
    try:
        done = import_layout(engine, path, "rural-2025", crs="wgs84",
                             effective_from=dt.date(2025, 1, 1), publish=True)
        with engine.begin() as conn:
            planner = create_key(conn, "planner", label="size planner")
    finally:
        engine.dispose()
    assert done.version.id is not None
    return Place(url, planner, int(done.version.id))


@pytest.fixture
def client(place: Place) -> Iterator[TestClient]:
    app = create_app(Settings(database=DatabaseSettings(url=place.url), planning=POLICY))
    with TestClient(app) as c:
        yield c


@pytest.fixture
def engine(place: Place) -> Iterator[Engine]:
    e = make_engine(place.url, pool_size=2)
    yield e
    e.dispose()


def _copy(client: TestClient, place: Place, label: str) -> int:
    r = client.post(f"/v1/boundaries/versions/{place.in_force}/copy", json={"label": label},
                    headers=auth(place.planner))
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _report(client: TestClient, place: Place, vid: int) -> dict[str, Any]:
    r = client.get(f"/v1/boundaries/versions/{vid}/validation", headers=auth(place.planner))
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def _vertical(x: float) -> dict[str, Any]:
    return {"type": "LineString", "coordinates": [[x, Y0 - 0.001], [x, Y0 + 2 * STEP + 0.001]]}


def test_a_layout_whose_untouched_rural_grids_exceed_the_size_limit_publishes_a_one_grid_change(
    client: TestClient, place: Place, engine: Engine
) -> None:
    with engine.connect() as conn:  # the version in force breaks the rural limit 8 times
        in_force = validation_report(conn, place.in_force, POLICY)
    assert sorted(p.kind for p in in_force.problems) == ["grid_too_large"] * 8
    vid = _copy(client, place, "one-grid-change")
    g = f"{C1}001"  # an urban grid: split it in two
    r = client.post(f"/v1/boundaries/versions/{vid}/grids/{g}/split",
                    json={"line": _vertical(X0 + STEP / 2)}, headers=auth(place.planner))
    assert r.status_code == 201, r.text
    pieces = [c["code"] for c in r.json()["created"]]
    report = _report(client, place, vid)
    assert (report["valid"], report["errors"]) == (True, 0)
    large = [p for p in report["problems"] if p["kind"] == "grid_too_large"]
    assert len(large) == 8 and all(p["inherited"] and p["severity"] == "warning" for p in large)
    assert {p["area_class"] for p in large} == {"rural"}
    assert all(p["codes"][0].startswith(RURAL_TOWN) for p in large)

    r = client.post(f"/v1/boundaries/versions/{vid}/publish",
                    json={"effective_from": TODAY.isoformat()}, headers=auth(place.planner))
    assert r.status_code == 200, r.text
    west = client.get("/v1/locate", params={"lon": X0 + STEP / 4, "lat": Y0 + 1.5 * STEP})
    assert west.json()["grid"]["code"] in pieces
    r = client.post(f"/v1/boundaries/versions/{vid}/rollback", headers=auth(place.planner))
    assert r.status_code == 200, r.text  # the rural layout is in force again for the others


def test_a_change_that_breaks_the_rural_limit_is_judged_and_blocks_when_the_policy_says_so(
    client: TestClient, place: Place, engine: Engine
) -> None:
    vid = _copy(client, place, "rural-merge")
    pair = [f"{RURAL_C}001", f"{RURAL_C}002"]
    r = client.post(f"/v1/boundaries/versions/{vid}/grids/merge", json={"codes": pair},
                    headers=auth(place.planner))
    assert r.status_code == 201, r.text
    merged = r.json()["created"][0]["code"]
    report = _report(client, place, vid)
    errors = [p for p in report["problems"] if p["severity"] == "error"]
    assert [(p["kind"], p["codes"]) for p in errors] == [("grid_too_large", [merged])]
    assert "rural" in errors[0]["message"] and not errors[0]["inherited"]
    inherited = [p for p in report["problems"] if p.get("inherited")]
    assert len(inherited) == 6  # the other rural grids: warnings only
    r = client.post(f"/v1/boundaries/versions/{vid}/publish",
                    json={"effective_from": TODAY.isoformat()}, headers=auth(place.planner))
    assert r.status_code == 422 and merged in r.text
    with engine.connect() as conn:  # the same draft under the default policy: warnings only
        relaxed = PlanningSettings(**{**POLICY.model_dump(), "size_limits_block": False})
        assert validation_report(conn, vid, relaxed).errors == []


def test_limits_are_set_per_level_and_per_area_class(engine: Engine, place: Place) -> None:
    policy = PlanningSettings(
        grid_max_m2=300_000,
        size_limits={
            "grid:rural": SizeLimit(max_m2=200_000, max_households=302),
            "community": SizeLimit(max_m2=500_000),
        },
    )
    with engine.connect() as conn:
        report = validation_report(conn, place.in_force, policy)
    by_kind: dict[str, set[str]] = {}
    for p in report.problems:
        by_kind.setdefault(p.kind, set()).add(p.codes[0])
    rural_grids = {f"{RURAL_TOWN}{c:03d}{g:03d}" for c in (1, 2) for g in range(1, 5)}
    assert by_kind["grid_too_large"] == rural_grids
    # households 301..304: only rural grids over 302 are crowded (urban grids allow 1,000)
    assert by_kind["too_many_households"] == {c for c in rural_grids if c[-3:] in ("003", "004")}
    assert by_kind["community_too_large"] == {f"{t}{c:03d}" for t in (URBAN_TOWN, RURAL_TOWN)
                                              for c in (1, 2)}
    assert report.errors == []  # warnings by default


def test_the_area_class_attribute_is_configurable(engine: Engine, place: Place) -> None:
    policy = PlanningSettings(area_class_attribute="kind",
                              size_limits={"grid:rural": SizeLimit(max_m2=200_000)})
    with engine.connect() as conn:
        assert validation_report(conn, place.in_force, policy).problems == []


def test_renumbering_keeps_the_codes_of_unchanged_and_reshaped_grids(
    client: TestClient, place: Place, engine: Engine
) -> None:
    vid = _copy(client, place, "renumber-keeps")
    planner = auth(place.planner)
    centre = [X0 + STEP, Y0 + STEP]  # the corner grids 001-004 of community 1 share
    r = client.post(f"/v1/boundaries/versions/{vid}/vertices/move",
                    json={"from": centre, "to": [centre[0] + STEP / 5, centre[1] + STEP / 7]},
                    headers=planner)
    assert r.status_code == 200, r.text
    assert sorted(g["code"] for g in r.json()["grids"]) == [f"{C1}{n:03d}" for n in range(1, 5)]
    g = f"{C1}004"
    r = client.post(f"/v1/boundaries/versions/{vid}/grids/{g}/split",
                    json={"line": _vertical(X0 + 1.6 * STEP)}, headers=planner)
    assert r.status_code == 201, r.text
    r = client.post(f"/v1/boundaries/versions/{vid}/renumber", headers=planner)
    assert r.status_code == 200, r.text
    assert all(not old.endswith(("001", "002", "003")) for old in r.json()["renamed"])
    with engine.connect() as conn:
        codes = set(versions.load_areas(conn, vid, ("grid",))["code"])
    assert {f"{C1}001", f"{C1}002", f"{C1}003"} <= codes and f"{C1}004" not in codes
    assert all(c in codes for c in (f"{RURAL_C}{n:03d}" for n in range(1, 5)))
    kinds = _report(client, place, vid)["kinds"]
    assert "code_order" not in kinds  # nothing left for a renumber to cure
    again = client.post(f"/v1/boundaries/versions/{vid}/renumber", headers=planner)
    assert again.json()["renamed"] == {}
