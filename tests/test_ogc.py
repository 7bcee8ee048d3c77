"""OGC API - Features at /ogc: the documents a client walks, paging, filters, errors, the
reports' public view, and GDAL's OAPIF driver reading it over real HTTP."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import h3
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from geo_service.locator import Locator
from tests.conftest import auth

GEOJSON = "application/geo+json"
CONFORMANCE_CORE = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core"
OPEN311_FIELDS = {
    "service_request_id", "status", "status_notes", "service_name", "service_code",
    "description", "agency_responsible", "service_notice", "requested_datetime",
    "updated_datetime", "expected_datetime", "address", "address_id", "zipcode", "media_url",
}  # fmt: skip
needs_gdal = pytest.mark.skipif(shutil.which("ogrinfo") is None, reason="gdal-bin missing")


def grid_count(engine: Engine, bbox: tuple[float, float, float, float] | None = None) -> int:
    """Grids of the version in force (optionally meeting a bbox), from the tables."""
    sql = (
        "SELECT count(*) FROM version_areas va JOIN areas a ON a.id = va.area_id "
        "JOIN boundary_versions v ON v.id = va.version_id WHERE va.level = 'grid' "
        "AND v.status = 'published'"
    )
    params: dict[str, float] = {}
    if bbox is not None:
        sql += " AND a.geom && ST_MakeEnvelope(:w, :s, :e, :n, 4326)"
        params = dict(zip(("w", "s", "e", "n"), bbox, strict=True))
    with engine.connect() as conn:
        return int(conn.execute(text(sql), params).scalar_one())


def report_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM reports")).scalar_one())


@pytest.fixture(scope="module")
def filed(client: TestClient, keys, demo_locator: Locator) -> int:  # type: ignore[no-untyped-def]
    """One report with the reporter's name and phone, filed now; its id."""
    point = demo_locator.grids.geometry.iloc[7].representative_point()
    body = {
        "channel": "wechat", "category": "facility_damage", "description": "路灯不亮",
        "reported_at": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "location": {"lon": point.x, "lat": point.y, "crs": "wgs84"},
        "reporter": {"name": "陈康", "phone": "13800000000"},
    }  # fmt: skip
    r = client.post("/v1/reports", json=body, headers=auth(keys["reporter"]))
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def rels(doc: dict) -> dict[str, dict]:  # type: ignore[type-arg]
    return {link["rel"]: link for link in doc["links"]}


# --------------------------------------------------------------------------- documents


def test_landing_page_links_api_conformance_and_data(client: TestClient) -> None:
    r = client.get("/ogc")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    links = rels(r.json())
    assert links["data"]["href"] == "http://testserver/ogc/collections"
    assert links["conformance"]["href"] == "http://testserver/ogc/conformance"
    assert links["service-desc"]["type"] == "application/vnd.oai.openapi+json;version=3.0"
    api = client.get(urlparse(links["service-desc"]["href"]).path)
    assert api.status_code == 200
    assert "/ogc/collections/{collection_id}/items" in api.json()["paths"]
    assert all({"href", "rel", "type"} <= set(link) for link in r.json()["links"])


def test_conformance_declares_core_geojson_and_openapi(client: TestClient) -> None:
    classes = client.get("/ogc/conformance").json()["conformsTo"]
    assert CONFORMANCE_CORE in classes
    assert any(c.endswith("/conf/geojson") for c in classes)
    assert any(c.endswith("/conf/oas30") for c in classes)


def test_collections_list_grids_areas_and_reports_with_extents(client: TestClient) -> None:
    doc = client.get("/ogc/collections").json()
    by_id = {c["id"]: c for c in doc["collections"]}
    assert {"grids", "communities", "towns", "districts", "reports"} <= set(by_id)
    grids = by_id["grids"]
    assert rels(grids)["items"]["type"] == GEOJSON
    west, south, east, north = grids["extent"]["spatial"]["bbox"][0]
    assert 120 < west < east < 121 and 30 < south < north < 31.5
    assert grids["extent"]["temporal"]["interval"] == [["2025-01-01", None]]
    assert client.get("/ogc/collections/grids").json()["id"] == "grids"
    missing = client.get("/ogc/collections/roads")
    assert missing.status_code == 404 and "'roads'" in missing.json()["description"]


# --------------------------------------------------------------------------- items


def test_grid_items_page_with_next_and_prev_links(client: TestClient, engine: Engine) -> None:
    first = client.get("/ogc/collections/grids/items?limit=3")
    assert first.status_code == 200 and first.headers["content-type"] == GEOJSON
    page = first.json()
    assert page["type"] == "FeatureCollection"
    assert page["numberMatched"] == grid_count(engine) and page["numberReturned"] == 3
    codes = [f["properties"]["code"] for f in page["features"]]
    assert codes == sorted(codes) and [f["id"] for f in page["features"]] == codes
    assert "prev" not in rels(page)
    nxt = urlparse(rels(page)["next"]["href"])
    assert parse_qs(nxt.query) == {"limit": ["3"], "offset": ["3"]}
    second = client.get(f"{nxt.path}?{nxt.query}").json()
    assert second["features"][0]["properties"]["code"] > codes[-1]
    assert parse_qs(urlparse(rels(second)["prev"]["href"]).query)["offset"] == ["0"]
    last = client.get(f"/ogc/collections/grids/items?limit=3&offset={page['numberMatched'] - 2}")
    assert last.json()["numberReturned"] == 2 and "next" not in rels(last.json())


def test_grid_feature_carries_code_chain_and_unit(client: TestClient) -> None:
    page = client.get("/ogc/collections/grids/items?limit=1").json()
    code = page["features"][0]["properties"]["code"]
    feature = client.get(f"/ogc/collections/grids/items/{code}")
    assert feature.status_code == 200 and feature.headers["content-type"] == GEOJSON
    body = feature.json()
    props = body["properties"]
    assert body["id"] == code and props["code"] == code and props["level"] == "grid"
    assert props["community_code"] == code[:12] and props["town_code"] == code[:9]
    assert props["district_code"] == code[:6] and props["district_name"]
    assert props["unit_name"].endswith("网格工作组")
    assert body["geometry"]["type"] == "MultiPolygon"
    assert rels(body)["collection"]["href"].endswith("/ogc/collections/grids")
    missing = client.get("/ogc/collections/grids/items/330411999999999")
    assert missing.status_code == 404 and "330411999999999" in missing.json()["description"]


def test_bbox_selects_the_grids_it_meets(client: TestClient, engine: Engine) -> None:
    box = (120.66, 30.80, 120.68, 30.82)
    page = client.get("/ogc/collections/grids/items?limit=1000&bbox=" + ",".join(map(str, box)))
    assert page.json()["numberMatched"] == grid_count(engine, box) > 0
    assert page.json()["numberReturned"] == page.json()["numberMatched"]


def test_other_levels_are_collections_of_their_own(client: TestClient) -> None:
    towns = client.get("/ogc/collections/towns/items").json()
    assert towns["numberMatched"] == 9
    assert {f["properties"]["level"] for f in towns["features"]} == {"town"}
    assert "community_code" not in towns["features"][0]["properties"]
    assert client.get("/ogc/collections/districts/items").json()["numberMatched"] == 1


def test_datetime_picks_the_boundary_version_of_that_day(client: TestClient) -> None:
    then = client.get("/ogc/collections/towns/items?datetime=2025-03-01").json()
    assert then["numberMatched"] == 9
    before = client.get("/ogc/collections/towns/items?datetime=2024-06-01")
    assert before.status_code == 404 and "2024-06-01" in before.json()["description"]
    interval = client.get("/ogc/collections/towns/items?datetime=2025-01-01/2025-06-01")
    assert interval.status_code == 400 and "one day" in interval.json()["description"]


def test_a_limit_above_the_maximum_is_lowered_not_refused(client: TestClient) -> None:
    r = client.get("/ogc/collections/towns/items?limit=999999")
    assert r.status_code == 200
    assert parse_qs(urlparse(rels(r.json())["self"]["href"]).query)["limit"] == ["10000"]


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("limit=0", "limit"),
        ("limit=ten", "'ten'"),
        ("offset=-1", "offset"),
        ("bbox=1,2,3", "bbox"),
        ("bbox=120,31,121,30", "bbox"),
        ("bbox=200,30,201,31", "bbox"),
        ("datetime=yesterday", "'yesterday'"),
        ("datetime=2025-05-01/2025-01-01", "ends before"),
        ("colour=red", "'colour'"),
        ("f=html", "f='html'"),
        ("limit=1&limit=2", "twice"),
    ],
)
def test_bad_item_parameters_are_400_naming_them(client: TestClient, query, names) -> None:  # type: ignore[no-untyped-def]
    r = client.get(f"/ogc/collections/reports/items?{query}")
    assert r.status_code == 400, r.text
    assert names in r.json()["description"]


# --------------------------------------------------------------------------- reports


def test_reports_are_the_public_open311_view_without_personal_data(
    client: TestClient, filed: int, engine: Engine
) -> None:
    r = client.get("/ogc/collections/reports/items?limit=1000")
    page = r.json()
    assert page["numberMatched"] == report_count(engine)
    mine = next(f for f in page["features"] if f["id"] == filed)
    assert set(mine["properties"]) <= OPEN311_FIELDS
    assert mine["properties"]["service_code"] == "facility_damage"
    assert mine["geometry"]["type"] == "Point"
    assert "陈康" not in r.text and "13800000000" not in r.text
    one = client.get(f"/ogc/collections/reports/items/{filed}")
    assert one.status_code == 200 and one.json()["id"] == filed
    assert "陈康" not in one.text and "13800000000" not in one.text
    assert client.get("/ogc/collections/reports/items/abc").status_code == 404


def test_a_staff_key_sees_the_point_and_text_the_public_a_coarse_cell(
    client: TestClient, keys, filed: int, demo_locator: Locator  # type: ignore[no-untyped-def]
) -> None:
    point = demo_locator.grids.geometry.iloc[7].representative_point()
    public = client.get(f"/ogc/collections/reports/items/{filed}").json()
    staff = client.get(f"/ogc/collections/reports/items/{filed}", headers=auth(keys["admin"]))
    assert staff.json()["geometry"]["coordinates"] == [point.x, point.y]
    assert staff.json()["properties"]["description"] == "路灯不亮"
    cell = h3.latlng_to_cell(point.y, point.x, 11)
    lat, lon = h3.cell_to_latlng(h3.cell_to_parent(cell, 8))  # the public resolution's cell
    assert public["geometry"]["coordinates"] == pytest.approx([lon, lat], abs=1e-12)
    assert public["properties"]["description"] is None
    assert public["properties"]["media_url"] is None
    for answer in (public, staff.json()):
        assert "陈康" not in json.dumps(answer, ensure_ascii=False)


def test_datetime_filters_reports_by_time_reported(client: TestClient, filed: int) -> None:
    today = dt.datetime.now(dt.UTC).astimezone(dt.timezone(dt.timedelta(hours=8))).date()
    long_ago = client.get("/ogc/collections/reports/items?datetime=../2020-01-01").json()
    assert long_ago["numberMatched"] == 0
    recent = client.get(f"/ogc/collections/reports/items?datetime={today - dt.timedelta(1)}/..")
    assert filed in [f["id"] for f in recent.json()["features"]]


# --------------------------------------------------------------------------- GDAL


def ogr(*args: str) -> str:
    out = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout


@needs_gdal
def test_gdal_oapif_lists_every_collection_with_counts_and_the_code_field(
    live_server: str, engine: Engine, filed: int
) -> None:
    summary = ogr("ogrinfo", "-ro", "-al", "-so", f"OAPIF:{live_server}/ogc")
    layers = {}
    for block in summary.split("Layer name: ")[1:]:
        name = block.splitlines()[0].strip()
        count = next(ln for ln in block.splitlines() if ln.startswith("Feature Count:"))
        layers[name] = (int(count.split(":")[1]), block)
    assert set(layers) == {"grids", "communities", "towns", "districts", "reports"}
    assert layers["grids"][0] == grid_count(engine)
    assert layers["towns"][0] == 9 and layers["districts"][0] == 1
    assert layers["reports"][0] == report_count(engine)
    assert "code: String" in layers["grids"][1]
    assert "Geometry: Multi Polygon" in layers["grids"][1]


@needs_gdal
def test_gdal_reads_every_grid_feature_with_its_code(
    live_server: str, engine: Engine, tmp_path: Path
) -> None:
    out = tmp_path / "grids.geojson"
    ogr(
        "ogr2ogr", "-f", "GeoJSON", str(out), f"OAPIF:{live_server}/ogc", "grids",
        "-oo", "PAGE_SIZE=1000",
    )  # fmt: skip
    features = json.loads(out.read_text())["features"]
    with engine.connect() as conn:
        codes = conn.execute(
            text(
                "SELECT a.code FROM version_areas va JOIN areas a ON a.id = va.area_id "
                "JOIN boundary_versions v ON v.id = va.version_id "
                "WHERE va.level = 'grid' AND v.status = 'published'"
            )
        ).scalars()
        expected = set(codes)
    got = [f["properties"]["code"] for f in features]
    assert len(got) == len(expected) and set(got) == expected
    assert all(f["geometry"]["type"] == "MultiPolygon" for f in features)
