"""Vector tiles: what each layer draws, who sees what, the HTTP caching contract, and that a
new report or a publish shows in the tiles within the generation poll interval.

A database of its own (the 16-grid hand-made layout of ``tests/layouts.py``) so the tests
know every report and every version in it.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Iterator

import mapbox_vector_tile
import pytest
import shapely
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from geo_service.analytics import h3sql
from geo_service.app import create_app
from geo_service.auth import create_key
from geo_service.boundaries.importer import import_layout
from geo_service.db.engine import make_engine
from geo_service.db.migrate import upgrade
from geo_service.settings import DatabaseSettings, PrivacySettings, Settings, TilesSettings
from geo_service.tiles.address import Tile
from geo_service.tiles.generations import GenerationWatcher, read_generation
from tests.conftest import auth
from tests.layouts import STEP, X0, Y0, small_layout
from tests.support import read_only

POLL_S = 0.2
FIRST = dt.date(2025, 1, 1)
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
# the middle of the first grid of each community (north row, west column)
WEST_GRID = (X0 + 0.5 * STEP, Y0 + 1.5 * STEP)
EAST_GRID = (X0 + 6.5 * STEP, Y0 + 1.5 * STEP)
ALLOWED_POINT_FIELDS = {
    "id", "category", "channel", "status", "reported_at", "grid_code", "overdue", "supervised",
}  # fmt: skip


def tile_for(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    """The XYZ tile holding a point."""
    n = 2**z
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    return z, x, y


def path(layer: str, lon: float, lat: float, z: int) -> str:
    zz, x, y = tile_for(lon, lat, z)
    return f"/tiles/{layer}/{zz}/{x}/{y}.mvt"


def layer_of(body: bytes, name: str) -> list[dict]:  # type: ignore[type-arg]
    """The features of one layer of an MVT (none for an empty tile)."""
    if not body:
        return []
    decoded = mapbox_vector_tile.decode(body)
    assert set(decoded) <= {name}, decoded.keys()
    return decoded[name]["features"] if name in decoded else []


@pytest.fixture(scope="module")
def tiles_db(new_database, tmp_path_factory) -> tuple[str, dict[str, str]]:  # type: ignore[no-untyped-def]
    """A database with the small layout published from 2025-01-01 and a key per role."""
    url = new_database("geo_tiles")
    upgrade(url)
    layout = tmp_path_factory.mktemp("layout") / "small.geojson"
    small_layout().to_file(layout)
    engine = make_engine(url, pool_size=1)
    import_layout(engine, layout, "small-2025", crs="wgs84", effective_from=FIRST, publish=True)
    with engine.begin() as conn:
        keys = {r: create_key(conn, r, label=f"tiles {r}") for r in ("reporter", "operator")}
    engine.dispose()
    return url, keys


@pytest.fixture(scope="module")
def tiles_engine(tiles_db) -> Iterator[Engine]:  # type: ignore[no-untyped-def]
    engine = make_engine(tiles_db[0], pool_size=2)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def tc(tiles_db) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    """The service on the small layout; the public may see res-9 cells here (the default,
    8, is ``tests/test_privacy_public.py``'s), so tiles and analytics compare at res 9."""
    settings = Settings(
        database=DatabaseSettings(url=tiles_db[0]),
        tiles=TilesSettings(generation_poll_s=POLL_S),
        privacy=PrivacySettings(public_h3_res=9),
    )
    with TestClient(create_app(settings)) as client:
        yield client


def file_reports(
    client: TestClient, key: str, lon: float, lat: float, n: int, category: str
) -> None:
    """``n`` reports of ``category`` at one point, each with the reporter's contact."""
    items = [
        {
            "channel": "wechat", "category": category, "description": "井盖缺失，陈康报",
            "reported_at": NOW.isoformat(), "location": {"lon": lon, "lat": lat, "crs": "wgs84"},
            "reporter": {"name": "陈康", "phone": "13800000000"},
        }
        for _ in range(n)
    ]  # fmt: skip
    r = client.post("/v1/reports:bulk", json=items, headers=auth(key))
    assert r.status_code == 200, r.text


def grid_codes_in(engine: Engine, tile: tuple[int, int, int]) -> set[str]:
    """Codes of the grids whose bounding box meets a tile, straight from the tables."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT a.code FROM version_areas va JOIN areas a ON a.id = va.area_id "
                "WHERE va.level = 'grid' AND ST_Transform(a.geom, 3857) && "
                "ST_TileEnvelope(:z, :x, :y)"
            ),
            dict(zip("zxy", tile, strict=True)),
        ).all()
    return {r.code for r in rows}


# --------------------------------------------------------------------------- what layers draw


def test_grid_tile_carries_code_name_chain_households_and_unit(tc, tiles_engine) -> None:  # type: ignore[no-untyped-def]
    address = tile_for(*WEST_GRID, 15)
    r = tc.get("/tiles/grids/{}/{}/{}.mvt".format(*address))
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    decoded = mapbox_vector_tile.decode(r.content)
    assert decoded["grids"]["extent"] == 4096
    features = decoded["grids"]["features"]
    assert {f["properties"]["code"] for f in features} == grid_codes_in(tiles_engine, address)
    first = next(f["properties"] for f in features if f["properties"]["code"].endswith("001001"))
    assert first["name"] == "第1网格" and first["level"] == "grid"
    assert first["district_code"] == "330411" and first["district_name"] == "测试区"
    assert first["town_code"] == "330411100" and first["town_name"] == "镇1"
    assert first["community_code"] == "330411100001" and first["community_name"] == "社区1-1"
    assert first["households"] == 301
    assert first["unit_name"].endswith("网格工作组")
    for f in features:  # clipped to the tile plus its 64-unit buffer
        minx, miny, maxx, maxy = shapely.geometry.shape(f["geometry"]).bounds
        assert -64 <= minx <= maxx <= 4096 + 64 and -64 <= miny <= maxy <= 4096 + 64


def test_areas_layer_draws_the_level_asked_for(tc) -> None:  # type: ignore[no-untyped-def]
    towns = layer_of(tc.get(path("areas", *WEST_GRID, 12)).content, "areas")
    assert {f["properties"]["level"] for f in towns} == {"town"}  # the default level
    url = path("areas", *WEST_GRID, 12) + "?level=community"
    communities = layer_of(tc.get(url).content, "areas")
    assert {f["properties"]["code"] for f in communities} >= {"330411100001"}
    assert {f["properties"]["level"] for f in communities} == {"community"}
    refused = tc.get(path("areas", *WEST_GRID, 12) + "?level=block")
    assert refused.status_code == 422 and "'block'" in refused.json()["message"]


def test_an_empty_tile_is_204_with_an_etag(tc) -> None:  # type: ignore[no-untyped-def]
    r = tc.get("/tiles/grids/10/0/0.mvt")
    assert r.status_code == 204 and r.content == b"" and r.headers["etag"]


@pytest.mark.parametrize(
    ("url", "status", "names"),
    [
        ("/tiles/grids/25/0/0.mvt", 422, "z=25"),
        ("/tiles/grids/3/8/0.mvt", 422, "x=8"),
        ("/tiles/grids/3/0/9.mvt", 422, "y=9"),
        ("/tiles/grids/3/0/0.pbf", 422, "0.pbf"),
        ("/tiles/grids/z/0/0.mvt", 422, "'z'"),
        ("/tiles/grids/3/-1/0.mvt", 422, "'-1'"),
        ("/tiles/roads/3/0/0.mvt", 404, "'roads'"),
        ("/tiles/roads.json", 404, "'roads'"),
        ("/tiles/grids/3/0/0.mvt?colour=red", 422, "'colour'"),
        ("/tiles/heat/3/0/0.mvt?k=-1", 422, "'-1'"),
        ("/tiles/heat/3/0/0.mvt?from=yesterday", 422, "'yesterday'"),
    ],
)
def test_bad_tile_requests_are_4xx_naming_the_problem(tc, url, status, names) -> None:  # type: ignore[no-untyped-def]
    r = tc.get(url)
    assert r.status_code == status, r.text
    assert names in r.json()["message"]


def test_tilejson_describes_the_layer_and_carries_the_query(tc) -> None:  # type: ignore[no-untyped-def]
    r = tc.get("/tiles/heat.json?category=theft&level=grid")
    assert r.status_code == 200
    doc = r.json()
    assert doc["tilejson"] == "3.0.0" and doc["scheme"] == "xyz"
    assert doc["tiles"] == ["http://testserver/tiles/heat/{z}/{x}/{y}.mvt?category=theft&level=grid"]
    assert doc["vector_layers"][0]["id"] == "heat" and "n" in doc["vector_layers"][0]["fields"]
    west, south, east, north = doc["bounds"]
    assert west == pytest.approx(X0) and east == pytest.approx(X0 + 8 * STEP)
    assert south == pytest.approx(Y0) and north == pytest.approx(Y0 + 2 * STEP)
    assert doc["geo_service"]["boundary_version"] == "small-2025"
    assert "204" in doc["geo_service"]["empty_tile"]
    assert tc.get("/tiles/heat.json?category=nonsense").status_code == 422


# --------------------------------------------------------------------------- HTTP caching


def test_a_repeated_tile_comes_from_the_cache_with_the_same_etag_and_304s(tc) -> None:  # type: ignore[no-untyped-def]
    url = path("grids", *EAST_GRID, 16)
    first, second = tc.get(url), tc.get(url)
    assert first.status_code == second.status_code == 200
    assert (first.headers["x-tile-cache"], second.headers["x-tile-cache"]) == ("miss", "hit")
    assert first.content == second.content and first.headers["etag"] == second.headers["etag"]
    assert first.headers["etag"].startswith('"')  # strong
    assert first.headers["cache-control"] == "public, max-age=5"
    again = tc.get(url, headers={"If-None-Match": second.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == first.headers["etag"]
    other = tc.get(url, headers={"If-None-Match": '"something-else"'})
    assert other.status_code == 200 and other.content == first.content


def test_a_keyed_tile_is_private(tc, tiles_db) -> None:  # type: ignore[no-untyped-def]
    r = tc.get(path("grids", *EAST_GRID, 16), headers=auth(tiles_db[1]["operator"]))
    assert r.headers["cache-control"].startswith("private")
    assert r.headers["vary"] == "Authorization"


# --------------------------------------------------------------------------- privacy


def test_public_layers_hide_cells_of_fewer_than_k_reports(tc, tiles_db) -> None:  # type: ignore[no-untyped-def]
    keys = tiles_db[1]
    file_reports(tc, keys["reporter"], *WEST_GRID, 4, "theft")
    file_reports(tc, keys["reporter"], *EAST_GRID, 6, "theft")
    time.sleep(POLL_S)
    url = path("heat", *WEST_GRID, 11) + "?category=theft"  # one tile holds both points
    assert tile_for(*WEST_GRID, 11) == tile_for(*EAST_GRID, 11)
    public = layer_of(tc.get(url).content, "heat")
    assert sorted(f["properties"]["n"] for f in public) == [6]
    staff = layer_of(tc.get(url + "&k=0", headers=auth(keys["operator"])).content, "heat")
    assert sorted(f["properties"]["n"] for f in staff) == [4, 6]
    clusters = layer_of(tc.get(url.replace("/heat/", "/reports/")).content, "reports")
    assert sorted(f["properties"]["n"] for f in clusters) == [6]
    assert tc.get(url + "&k=1").status_code == 401  # lowering k needs a staff key
    assert tc.get(url + "&k=1", headers=auth(keys["reporter"])).status_code == 403


def test_single_reports_only_for_staff_and_never_personal_data(tc, tiles_db) -> None:  # type: ignore[no-untyped-def]
    keys = tiles_db[1]
    file_reports(tc, keys["reporter"], *EAST_GRID, 5, "sanitation")
    time.sleep(POLL_S)
    url = path("reports", *EAST_GRID, 16) + "?category=sanitation"
    staff = tc.get(url, headers=auth(keys["operator"]))
    points = layer_of(staff.content, "reports")
    assert len(points) == 5 and all(p["geometry"]["type"] == "Point" for p in points)
    assert all(set(p["properties"]) <= ALLOWED_POINT_FIELDS for p in points)
    assert {p["properties"]["category"] for p in points} == {"sanitation"}
    public = tc.get(url)  # one cluster of 5 (k = 5), never single points
    assert [f["properties"] for f in layer_of(public.content, "reports")] == [
        {"cell": h3sql.to_hex(h3sql.cells_of_points([EAST_GRID[0]], [EAST_GRID[1]], 9))[0], "n": 5}
    ]
    for body in (staff.content, public.content):
        assert "陈康".encode() not in body and b"13800000000" not in body
        assert "井盖".encode() not in body  # no free text either
    reporter = tc.get(url, headers=auth(keys["reporter"]))  # a key, but not staff
    assert reporter.content == public.content


def test_heat_per_grid_keeps_every_grid_and_blanks_those_under_k(tc, tiles_db) -> None:  # type: ignore[no-untyped-def]
    keys = tiles_db[1]
    file_reports(tc, keys["reporter"], *WEST_GRID, 3, "housing_safety")
    file_reports(tc, keys["reporter"], *EAST_GRID, 5, "housing_safety")
    time.sleep(POLL_S)
    url = path("heat", *WEST_GRID, 11) + "?category=housing_safety&level=grid"
    features = layer_of(tc.get(url).content, "heat")
    grids = {f["properties"]["code"]: f["properties"] for f in features}
    assert len(grids) == 16  # areas keep their shape whatever their count
    west, east = "330411100001001", "330411101002001"  # first grids of communities 1-1, 2-2
    assert grids[west]["suppressed"] is True and "n" not in grids[west]
    assert grids[east]["n"] == 5 and grids[east]["suppressed"] is False
    assert grids[east]["per_household"] == pytest.approx(5 / 301)
    quiet = [p for c, p in grids.items() if c not in (west, east)]
    assert all(p["n"] == 0 and p["suppressed"] is False for p in quiet)


def test_hotspots_on_too_few_areas_is_an_empty_tile_saying_why(tc) -> None:  # type: ignore[no-untyped-def]
    r = tc.get(path("hotspots", *WEST_GRID, 11) + "?level=grid")
    assert r.status_code == 204
    assert "at least 30" in r.headers["x-tile-note"]


# --------------------------------------------------------------------------- same as analytics


def test_heat_tile_cells_are_the_analytics_heat_cells(tc, tiles_db) -> None:  # type: ignore[no-untyped-def]
    keys = tiles_db[1]
    file_reports(tc, keys["reporter"], *EAST_GRID, 7, "road_occupation")
    file_reports(tc, keys["reporter"], EAST_GRID[0] + 0.003, EAST_GRID[1], 3, "road_occupation")
    time.sleep(POLL_S)
    z = 13  # resolution 9
    address = tile_for(*EAST_GRID, z)
    url = path("heat", *EAST_GRID, z) + "?category=road_occupation"
    tile_cells = {f["properties"]["cell"]: f["properties"]["n"] for f in layer_of(
        tc.get(url).content, "heat"
    )}  # fmt: skip
    geojson = tc.get("/v1/analytics/heat?res=9&category=road_occupation").json()
    box = shapely.box(*Tile(*address).lonlat_bounds())
    expected = {
        f["properties"]["cell"]: f["properties"]["n"]
        for f in geojson["features"]
        if shapely.box(*shapely.geometry.shape(f["geometry"]).bounds).intersects(box)
    }
    assert tile_cells == expected and tile_cells


def test_hotspots_tile_classes_are_the_analytics_classes(tc, tiles_db) -> None:  # type: ignore[no-untyped-def]
    keys = tiles_db[1]
    centre = (X0 + 2.5 * STEP, Y0 + 0.5 * STEP)
    file_reports(tc, keys["reporter"], *centre, 15, "fire_risk")
    file_reports(tc, keys["reporter"], centre[0] + 0.002, centre[1], 6, "fire_risk")
    time.sleep(POLL_S)
    z = 13
    r = tc.get(path("hotspots", *centre, z) + "?category=fire_risk")
    features = layer_of(r.content, "hotspots")
    tile_classes = {f["properties"]["cell"]: f["properties"]["class"] for f in features}
    geojson = tc.get("/v1/analytics/hotspots?res=9&category=fire_risk").json()
    box = shapely.box(*Tile(*tile_for(*centre, z)).lonlat_bounds())
    expected = {
        f["properties"]["cell"]: f["properties"]["class"]
        for f in geojson["features"]
        if shapely.box(*shapely.geometry.shape(f["geometry"]).bounds).intersects(box)
    }
    assert tile_classes == expected
    hot_cell = h3sql.to_hex(h3sql.cells_of_points([centre[0]], [centre[1]], 9))[0]
    assert tile_classes[hot_cell].startswith("hot_")


def test_hotspots_tile_is_empty_with_a_note_when_gi_star_cannot_run(tc) -> None:  # type: ignore[no-untyped-def]
    r = tc.get(path("hotspots", *WEST_GRID, 13) + "?category=flood_risk")  # no report at all
    assert r.status_code == 204
    assert "nothing to cluster" in r.headers["x-tile-note"]


# --------------------------------------------------------------------------- bound parameters


@pytest.mark.parametrize(
    "query",
    [
        "category=theft' OR '1'='1",
        "channel=wechat;DROP TABLE reports",
        "area=330411' --",
        "status=open) OR (1=1",
    ],
)
def test_injection_looking_filters_are_refused_and_harm_nothing(tc, tiles_engine, query) -> None:  # type: ignore[no-untyped-def]
    r = tc.get(path("heat", *WEST_GRID, 11) + "?" + query)
    assert r.status_code == 422
    assert query.split("=", 1)[1] in r.json()["message"]
    with tiles_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM reports")).scalar_one() > 0


def test_a_well_formed_but_unknown_area_is_just_empty(tc) -> None:  # type: ignore[no-untyped-def]
    r = tc.get(path("heat", *WEST_GRID, 11) + "?area=330411199")
    assert r.status_code == 204


# --------------------------------------------------------------------------- reads never write


def test_a_tile_miss_writes_nothing_and_draws_what_the_service_draws(tc, tiles_db) -> None:  # type: ignore[no-untyped-def]
    """Rendering a tile is a read: a service whose every database session is read only (any
    write, or SELECT ... FOR UPDATE, fails there) renders each layer's missing tiles, byte for
    byte as the usual service does. The version's tile-ready copy is prepared beforehand by the
    usual service (a boundary change rebuilds it once)."""
    keys = tiles_db[1]
    file_reports(tc, keys["reporter"], *EAST_GRID, 6, "river_pollution")
    file_reports(tc, keys["reporter"], *WEST_GRID, 2, "river_pollution")
    time.sleep(POLL_S)
    assert tc.get(path("grids", *EAST_GRID, 15)).status_code == 200  # the copy is ready
    url = read_only(tiles_db[0])
    probe = make_engine(url, pool_size=1)
    try:
        with probe.connect() as conn, pytest.raises(DBAPIError, match="read-only transaction"):
            conn.execute(text("UPDATE reports SET status = status WHERE id < 0"))
    finally:
        probe.dispose()
    staff = auth(keys["operator"])
    only = "?category=river_pollution"
    reads = [
        (path("heat", *EAST_GRID, 11) + only, {}),  # resolution 8, from the roll-up
        (path("heat", *EAST_GRID, 13) + only, {}),  # resolution 9
        (path("heat", *EAST_GRID, 15) + only, staff),  # resolution 11, reports one by one
        (path("heat", *EAST_GRID, 11) + only + "&level=grid", {}),
        (path("hotspots", *EAST_GRID, 13) + only, {}),
        (path("reports", *EAST_GRID, 11) + only, {}),  # clusters
        (path("reports", *EAST_GRID, 16) + only, staff),  # single reports
        (path("grids", *WEST_GRID, 15), {}),
    ]
    settings = Settings(
        database=DatabaseSettings(url=url),
        tiles=TilesSettings(generation_poll_s=POLL_S),
        privacy=PrivacySettings(public_h3_res=9),  # as tc
    )
    with TestClient(create_app(settings)) as ro:
        for q, headers in reads:
            got, usual = ro.get(q, headers=headers), tc.get(q, headers=headers)
            assert got.status_code in (200, 204), (q, got.text[:300])
            assert got.headers["x-tile-cache"] == "miss", q
            assert (got.status_code, got.content) == (usual.status_code, usual.content), q


# --------------------------------------------------------------------------- invalidation


def test_generation_moves_with_each_committed_change_and_not_on_rollback(tiles_engine) -> None:  # type: ignore[no-untyped-def]
    before = read_generation(tiles_engine)
    with tiles_engine.connect() as conn:
        conn.execute(text("UPDATE units SET name = name WHERE id < 0"))
        conn.rollback()
    assert read_generation(tiles_engine) == before
    with tiles_engine.begin() as conn:
        conn.execute(text("UPDATE units SET name = name WHERE id < 0"))
    after = read_generation(tiles_engine)
    assert after.boundaries > before.boundaries and after.reports == before.reports


def test_a_worker_sees_a_change_from_another_connection_after_one_poll(tiles_engine) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    watcher = GenerationWatcher(tiles_engine, poll_s=1.5)

    async def scenario() -> tuple[int, int, int]:
        first = (await watcher.current()).reports
        with tiles_engine.begin() as conn:  # another writer: a report's status moves
            conn.execute(text("UPDATE reports SET status = status WHERE id < 0"))
        soon = (await watcher.current()).reports
        await asyncio.sleep(1.6)
        late = (await watcher.current()).reports
        return first, soon, late

    first, soon, late = asyncio.run(scenario())
    assert soon == first  # within the poll interval the old counters stand
    assert late > first  # after it, every worker keys tiles by the new ones


def test_a_new_report_shows_in_the_tiles_within_the_poll_interval(tc, tiles_db) -> None:  # type: ignore[no-untyped-def]
    keys = tiles_db[1]
    url = path("reports", *WEST_GRID, 16) + "?category=neighbour_dispute"
    staff = auth(keys["operator"])
    before = tc.get(url, headers=staff)
    assert before.status_code == 204
    assert tc.get(url, headers=staff).headers["x-tile-cache"] == "hit"
    file_reports(tc, keys["reporter"], *WEST_GRID, 1, "neighbour_dispute")
    time.sleep(POLL_S)
    after = tc.get(url, headers=staff)
    assert after.status_code == 200 and after.headers["x-tile-cache"] == "miss"
    assert len(layer_of(after.content, "reports")) == 1
    assert after.headers["etag"] != before.headers["etag"]
    revalidated = tc.get(url, headers={**staff, "If-None-Match": before.headers["etag"]})
    assert revalidated.status_code == 200  # the old ETag no longer matches


def test_publishing_a_version_changes_the_grid_tiles(tc, tiles_db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = path("grids", *WEST_GRID, 15)
    old = {f["properties"]["code"]: f["properties"] for f in layer_of(tc.get(url).content, "grids")}
    renamed = small_layout()
    renamed.loc[renamed["level"] == "grid", "name"] = "新" + renamed["name"]
    layout = tmp_path / "renamed.geojson"
    renamed.to_file(layout)
    engine = make_engine(tiles_db[0], pool_size=1)
    try:
        import_layout(
            engine, layout, "small-renamed", crs="wgs84", effective_from=dt.date.today(),
            publish=True,
        )  # fmt: skip
    finally:
        engine.dispose()
    time.sleep(POLL_S)
    new = {f["properties"]["code"]: f["properties"] for f in layer_of(tc.get(url).content, "grids")}
    assert set(new) == set(old)
    assert all(new[c]["name"] == "新" + old[c]["name"] for c in old)
    past = layer_of(tc.get(url + "?as_of=2025-06-01").content, "grids")
    assert {f["properties"]["name"] for f in past} == {p["name"] for p in old.values()}
    assert tc.get("/tiles/grids.json").json()["geo_service"]["boundary_version"] == "small-renamed"
