"""Private by default: every public surface is read back, decoded, and searched for the exact
point and the description of reports that are not public.

The surfaces: Open311 (JSON and XML, lists and single requests, bbox and circle filters), the
OGC ``reports`` collection (items, one item, the collection's extent), the vector tiles
(reports, heat, hot spots: MVT decoded with ``mapbox_vector_tile``), the GeoJSON analysis
layers and the map pages' embedded data. To the public a report is the centre of its coarse
H3 cell (resolution ``GEO_PRIVACY_PUBLIC_H3_RES``, default 8: the parent of its stored res-11
cell), its community and no text; staff keys see it exactly, grid workers in their area and
reporters their own; a case of a public category that staff marked public is exact for all.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
import re
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

import h3
import mapbox_vector_tile
import numpy as np
import pytest
import shapely
from fastapi.testclient import TestClient

from geo_service.locator import Locator
from geo_service.settings import Settings
from tests.conftest import auth

PUBLIC_RES = Settings().privacy.public_h3_res  # 8 unless the environment says otherwise
XIUZHOU = "120.5,30.55,120.85,31.0"
HEX = uuid.uuid4().hex[:8]
MARK = f"私密{HEX}"  # in every private description and photo: must never reach the public
SHOWN = f"公开{uuid.uuid4().hex[:8]}"  # in the public case's description: shown to everyone
NAME, PHONE = "李秘密", "13700001234"
NEIGHBOURS = 6  # reports around the dispute, so its cell passes k = 5 in every layer
SCATTERED = 60  # reports over the district, so hot spot statistics have cells to work on
MIN_OFF_CENTRE_M = 120.0  # every exact point is this far from its coarse cell's centre


def metres(lon0: float, lat0: float, lon1: float, lat1: float) -> float:
    """Great-circle distance in metres."""
    return float(h3.great_circle_distance((lat0, lon0), (lat1, lon1), unit="m"))


def coarse_centre(lon: float, lat: float) -> tuple[float, float]:
    """Where the public view must put a report at (lon, lat): its res-11 cell's parent's
    centre."""
    parent = h3.cell_to_parent(h3.latlng_to_cell(lat, lon, 11), PUBLIC_RES)
    clat, clon = h3.cell_to_latlng(parent)
    return clon, clat


@dataclass(frozen=True)
class Filed:
    """A report filed here: id, exact point, description, and whether it is public."""

    id: str
    lon: float
    lat: float
    description: str
    public: bool = False


def _point_in(grid: shapely.Geometry, rng: np.random.Generator) -> tuple[float, float]:
    """A random point well inside ``grid``, far from its coarse cell's centre."""
    x0, y0, x1, y1 = grid.bounds
    inner = grid.buffer(-0.0002)
    for _ in range(10_000):
        x, y = float(rng.uniform(x0, x1)), float(rng.uniform(y0, y1))
        if inner.contains(shapely.Point(x, y)) and metres(x, y, *coarse_centre(x, y)) > (
            MIN_OFF_CENTRE_M
        ):
            return x, y
    raise AssertionError("no point found in the grid")


def _body(category: str, lon: float, lat: float, text: str) -> dict[str, Any]:
    return {
        "channel": "wechat", "category": category, "description": text,
        "reported_at": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "location": {"lon": lon, "lat": lat}, "photos": [f"https://example.org/{text}.jpg"],
        "reporter": {"name": NAME, "phone": PHONE},
    }  # fmt: skip


def _file(
    client: TestClient, key: str, category: str, lon: float, lat: float, text: str
) -> str:
    r = client.post("/v1/reports", json=_body(category, lon, lat, text), headers=auth(key))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


@pytest.fixture(scope="module")
def world(client: TestClient, keys: dict[str, str], demo_locator: Locator) -> dict[str, Any]:
    """A neighbour dispute (with neighbours in its cell), a theft, a sanitation case (public
    category, not marked), a damaged facility marked public, a pollution case in the grid
    worker's area; every one with the reporter's name and phone."""
    rng = np.random.default_rng(20261204)
    grids = demo_locator.grids
    scope = grids["community_code"].iloc[0]
    in_scope = grids[grids["community_code"] == scope].geometry.iloc[-1]
    places = {
        "dispute": ("reporter", "neighbour_dispute", grids.geometry.iloc[2500], "邻居吵架"),
        "theft": ("reporter2", "theft", grids.geometry.iloc[2530], "电动车被盗"),
        "sanitation": ("reporter", "sanitation", grids.geometry.iloc[2560], "垃圾堆放"),
        "facility": ("reporter", "facility_damage", grids.geometry.iloc[2590], "路灯损坏"),
        "scoped": ("operator", "river_pollution", in_scope, "河道排污"),
    }
    out: dict[str, Any] = {"keys": keys}
    for name, (who, category, grid, text) in places.items():
        x, y = _point_in(grid, rng)
        text = f"{text} {SHOWN if name == 'facility' else MARK}"
        rid = _file(client, keys[who], category, x, y, text)
        out[name] = Filed(rid, x, y, text)
    d = out["dispute"]
    out["neighbours"] = []
    for i in range(NEIGHBOURS):  # within ~15 m: the same coarse cell
        x, y = d.lon + 1e-4 * math.cos(i), d.lat + 1e-4 * math.sin(i)
        if coarse_centre(x, y) == coarse_centre(d.lon, d.lat):
            text = f"又吵架 {MARK}"
            rid = _file(client, keys["reporter"], "neighbour_dispute", x, y, text)
            out["neighbours"].append(Filed(rid, x, y, text))
    assert len(out["neighbours"]) >= 5
    picks = rng.choice(len(grids), SCATTERED, replace=False)
    spots = [(*_point_in(grids.geometry.iloc[int(i)], rng), f"占道 {MARK}") for i in picks]
    bulk = [_body("road_occupation", x, y, t) for x, y, t in spots]
    r = client.post("/v1/reports:bulk", json=bulk, headers=auth(keys["operator"]))
    assert r.status_code == 200, r.text
    stored = [item["id"] for item in r.json()["items"]]
    out["scattered"] = [Filed(str(i), x, y, t) for i, (x, y, t) in zip(stored, spots, strict=True)]
    made = client.post(
        f"/v1/reports/{out['facility'].id}/public", json={"public": True},
        headers=auth(keys["operator"]),
    )  # fmt: skip
    assert made.status_code == 200 and made.json()["public"] is True, made.text
    out["facility"] = Filed(**{**out["facility"].__dict__, "public": True})
    return out


def private(world: dict[str, Any]) -> list[Filed]:
    """Every report here the public must see coarsely."""
    names = ("dispute", "theft", "sanitation", "scoped")
    return [world[n] for n in names] + list(world["neighbours"]) + list(world["scattered"])


# --------------------------------------------------------------------------- searching text

_NUMBER = re.compile(r"-?\d+\.\d+")


def exact_points_in(text: str, reports: list[Filed], tol: float = 2e-5) -> list[str]:
    """Reports whose point appears in ``text`` as two consecutive numbers (lon, lat or lat,
    lon) within ``tol`` degrees (~2 m): a coordinate pair leaked, rounded or not."""
    nums = [float(m) for m in _NUMBER.findall(text)]
    pairs = list(itertools.pairwise(nums))
    found = []
    for r in reports:
        for a, b in pairs:
            if (abs(a - r.lon) < tol and abs(b - r.lat) < tol) or (
                abs(a - r.lat) < tol and abs(b - r.lon) < tol
            ):
                found.append(r.id)
                break
    return found


def assert_nothing_private(text: str, world: dict[str, Any], where: str) -> None:
    """No description, photo, name or phone of any report here, no exact point of a private
    one."""
    assert MARK not in text and HEX not in text, where  # photo URLs are percent-encoded
    assert NAME not in text and PHONE not in text, where
    assert exact_points_in(text, private(world)) == [], where


# --------------------------------------------------------------------------- Open311


def _open311(client: TestClient, rid: str, headers: dict[str, str] | None = None) -> Any:
    r = client.get(f"/open311/v2/requests/{rid}.json", headers=headers or {})
    assert r.status_code == 200, r.text
    return r.json()[0]


def test_open311_gives_the_public_a_coarse_cell_and_no_text(client, world) -> None:  # type: ignore[no-untyped-def]
    for r in private(world):
        got = _open311(client, r.id)
        assert (got["long"], got["lat"]) == pytest.approx(coarse_centre(r.lon, r.lat), abs=1e-12)
        assert metres(got["long"], got["lat"], r.lon, r.lat) > MIN_OFF_CENTRE_M
        assert got["description"] is None and got["media_url"] is None
        assert got["address"] is None or got["address"].count(" / ") == 2  # down to community
        assert got["address_id"] is None or len(got["address_id"]) == 12
        unit = got["agency_responsible"] or ""
        assert unit == "网格工作组" or "网格" not in unit  # a grid team: its kind, not its grid


def test_a_public_case_of_a_public_category_is_exact_for_everyone(client, world) -> None:  # type: ignore[no-untyped-def]
    f = world["facility"]
    got = _open311(client, f.id)
    assert (got["long"], got["lat"]) == (f.lon, f.lat)
    assert got["description"] == f.description and got["media_url"].endswith(f"{SHOWN[2:]}.jpg")
    assert len(got["address_id"]) == 15  # the grid
    assert NAME not in json.dumps(got, ensure_ascii=False)


def test_a_public_category_alone_is_not_enough(client, world) -> None:  # type: ignore[no-untyped-def]
    got = _open311(client, world["sanitation"].id)  # sanitation is public; the case is not
    assert got["description"] is None


@pytest.mark.parametrize("role", ["operator", "planner", "admin"])
def test_staff_keys_see_every_report_exactly(client, world, role: str) -> None:  # type: ignore[no-untyped-def]
    for r in [*private(world), world["facility"]]:
        got = _open311(client, r.id, auth(world["keys"][role]))
        assert (got["long"], got["lat"]) == (r.lon, r.lat)
        assert got["description"] == r.description
        assert NAME not in json.dumps(got, ensure_ascii=False)  # still no personal data


def test_grid_workers_see_their_area_exactly_and_reporters_their_own(client, world) -> None:  # type: ignore[no-untyped-def]
    keys = world["keys"]
    worker = auth(keys["grid_worker"])
    scoped, dispute = world["scoped"], world["dispute"]
    assert _open311(client, scoped.id, worker)["description"] == scoped.description
    assert _open311(client, dispute.id, worker)["description"] is None
    mine = _open311(client, dispute.id, auth(keys["reporter"]))
    assert (mine["long"], mine["lat"]) == (dispute.lon, dispute.lat)
    theirs = _open311(client, world["theft"].id, auth(keys["reporter"]))
    assert theirs["description"] is None
    assert _open311(client, world["theft"].id, auth(keys["reporter2"]))["description"]


def _ids(client: TestClient, headers: dict[str, str] | None = None, **params: str) -> set[str]:
    r = client.get("/open311/v2/requests.json", params=params, headers=headers or {})
    assert r.status_code == 200, r.text
    return {x["service_request_id"] for x in r.json()}


def _box(x: float, y: float, d: float = 2e-4) -> str:
    return f"{x - d},{y - d},{x + d},{y + d}"


def test_filters_cannot_find_the_point_of_a_private_report(client, world) -> None:  # type: ignore[no-untyped-def]
    """bbox and circle match the public by the cell's centre: narrowing them around the exact
    point finds nothing, around the centre finds the report."""
    d = world["dispute"]
    cx, cy = coarse_centre(d.lon, d.lat)
    assert d.id not in _ids(client, bbox=_box(d.lon, d.lat))
    assert d.id not in _ids(client, lat=repr(d.lat), long=repr(d.lon), radius="60")
    assert d.id in _ids(client, bbox=_box(cx, cy))
    assert d.id in _ids(client, lat=repr(cy), long=repr(cx), radius="60")
    operator = auth(world["keys"]["operator"])
    assert d.id in _ids(client, operator, bbox=_box(d.lon, d.lat))
    assert d.id not in _ids(client, operator, bbox=_box(cx, cy, 1e-5))
    f = world["facility"]  # exact for everyone: matched on its point
    assert f.id in _ids(client, bbox=_box(f.lon, f.lat))


def test_every_open311_answer_is_clean(client, world) -> None:  # type: ignore[no-untyped-def]
    answers = []
    named = [world[n] for n in ("dispute", "theft", "sanitation", "scoped")]
    for fmt in ("json", "xml"):
        answers.append(client.get(f"/open311/v2/requests.{fmt}"))
        answers.append(client.get(f"/open311/v2/requests.{fmt}", params={"bbox": XIUZHOU}))
        ids = ",".join(r.id for r in [*private(world), world["facility"]])
        by_id = {"service_request_id": ids}
        answers.append(client.get(f"/open311/v2/requests.{fmt}", params=by_id))
        answers += [client.get(f"/open311/v2/requests/{r.id}.{fmt}") for r in named]
    for r in answers:
        assert r.status_code == 200, r.text
        assert_nothing_private(r.text, world, str(r.url))
    xml = ET.fromstring(answers[len(answers) // 2 + 2].content)  # the XML list of every id
    listed = {e.findtext("service_request_id") for e in xml}
    assert {r.id for r in private(world)} <= listed
    for e in xml:
        if e.findtext("service_request_id") == world["dispute"].id:
            assert (e.findtext("description") or "") == ""


# --------------------------------------------------------------------------- OGC


def test_ogc_reports_are_coarse_for_the_public(client, world) -> None:  # type: ignore[no-untyped-def]
    answers = [
        client.get("/ogc/collections/reports/items", params={"limit": 1000}),
        client.get("/ogc/collections/reports/items", params={"limit": 1000, "bbox": XIUZHOU}),
        client.get("/ogc/collections/reports"),
        client.get("/ogc/collections"),
        *[client.get(f"/ogc/collections/reports/items/{r.id}") for r in private(world)],
    ]
    for r in answers:
        assert r.status_code == 200, r.text
        assert_nothing_private(r.text, world, str(r.url))
    d = world["dispute"]
    one = client.get(f"/ogc/collections/reports/items/{d.id}").json()
    assert one["geometry"]["coordinates"] == pytest.approx(list(coarse_centre(d.lon, d.lat)))
    assert one["properties"]["description"] is None
    extent = answers[2].json()["extent"]["spatial"]["bbox"][0]
    assert all(abs(v * 100 - round(v * 100)) < 1e-9 for v in extent)  # rounded to 0.01°
    staff = client.get(f"/ogc/collections/reports/items/{d.id}",
                       headers=auth(world["keys"]["admin"])).json()  # fmt: skip
    assert staff["geometry"]["coordinates"] == [d.lon, d.lat]
    f = world["facility"]
    public = client.get(f"/ogc/collections/reports/items/{f.id}").json()
    assert public["geometry"]["coordinates"] == [f.lon, f.lat]


# --------------------------------------------------------------------------- tiles


def _tile(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    n = 2**z
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    return z, x, y


def _lonlat(z: int, x: int, y: int, px: float, py: float, extent: int) -> tuple[float, float]:
    """A tile-local point (y down) in lon/lat."""
    n = 2**z
    lon = (x + px / extent) / n * 360.0 - 180.0
    lat = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * (y + py / extent) / n))))
    return lon, lat


def _points(geometry: dict[str, Any]) -> list[tuple[float, float]]:
    coords = geometry["coordinates"]
    if geometry["type"] == "Point":
        return [tuple(coords)]
    flat: list[tuple[float, float]] = []

    def walk(c: Any) -> None:
        if isinstance(c[0], int | float):
            flat.append((c[0], c[1]))
        else:
            for part in c:
                walk(part)

    walk(coords)
    return flat


@pytest.mark.parametrize("layer", ["reports", "heat", "hotspots"])
@pytest.mark.parametrize("z", [11, 13, 14, 15, 16])
def test_tiles_for_the_public_are_coarse_cells_only(client, world, layer: str, z: int) -> None:  # type: ignore[no-untyped-def]
    d = world["dispute"]
    zz, x, y = _tile(*coarse_centre(d.lon, d.lat), z)  # the tile holding its cluster
    r = client.get(f"/tiles/{layer}/{zz}/{x}/{y}.mvt")
    assert r.status_code in (200, 204), r.text
    assert MARK.encode() not in r.content and PHONE.encode() not in r.content
    if r.status_code == 204:
        assert layer == "hotspots"  # too few cells for Gi* in one day is fine
        return
    decoded = mapbox_vector_tile.decode(r.content, default_options={"y_coord_down": True})
    features = decoded[layer]["features"]
    extent = decoded[layer]["extent"]
    assert features
    for feat in features:
        props = feat["properties"]
        assert "description" not in props and "id" not in props  # no single reports
        if "cell" in props:
            assert h3.get_resolution(props["cell"]) <= PUBLIC_RES, (layer, z, props)
        if feat["geometry"]["type"] == "Point":  # clusters: never on a report's point
            lon, lat = _lonlat(zz, x, y, *_points(feat["geometry"])[0], extent)
            for p in private(world):
                assert metres(lon, lat, p.lon, p.lat) > 20, (layer, z, p.id)
    if layer == "reports":  # the cluster holding the dispute sits on its coarse cell's centre
        cell = h3.cell_to_parent(h3.latlng_to_cell(d.lat, d.lon, 11), PUBLIC_RES)
        (mine,) = [f for f in features if f["properties"]["cell"] == cell]
        lon, lat = _lonlat(zz, x, y, *_points(mine["geometry"])[0], extent)
        assert metres(lon, lat, *coarse_centre(d.lon, d.lat)) < 10  # MVT rounding only


def test_staff_tiles_may_be_finer(client, world) -> None:  # type: ignore[no-untyped-def]
    d = world["dispute"]
    zz, x, y = _tile(d.lon, d.lat, 16)
    r = client.get(f"/tiles/heat/{zz}/{x}/{y}.mvt?k=0", headers=auth(world["keys"]["operator"]))
    heat = mapbox_vector_tile.decode(r.content)["heat"]["features"]
    cells = [f["properties"]["cell"] for f in heat]
    assert cells and {h3.get_resolution(c) for c in cells} == {11}


# --------------------------------------------------------------------------- analyses, maps


@pytest.mark.parametrize(
    "path, params",
    [
        ("/v1/analytics/heat", {}),
        ("/v1/analytics/heat", {"zoom": 16, "bbox": XIUZHOU}),
        ("/v1/analytics/heat", {"level": "grid"}),
        ("/v1/analytics/hotspots", {}),
        ("/v1/analytics/hotspots", {"zoom": 15}),
        ("/v1/analytics/emerging-hotspots", {"slice": "day"}),
        ("/v1/analytics/grid-stats", {}),
    ],
)
def test_analysis_layers_carry_no_point_and_no_text(client, world, path, params) -> None:  # type: ignore[no-untyped-def]
    today = dt.datetime.now(dt.UTC).date()
    window = {"from": (today - dt.timedelta(days=40)).isoformat(),
              "to": (today + dt.timedelta(days=2)).isoformat()}  # fmt: skip
    r = client.get(path, params={**window, **params})
    assert r.status_code == 200, r.text
    assert_nothing_private(r.text, world, path)
    assert r.json()["features"]
    for f in r.json()["features"]:
        cell = f["properties"].get("cell") or (f["id"] if h3.is_valid_cell(str(f["id"])) else None)
        if cell:
            assert h3.get_resolution(cell) <= PUBLIC_RES, (path, params, cell)


def test_finer_cells_need_a_staff_key(client, world) -> None:  # type: ignore[no-untyped-def]
    keys = world["keys"]
    fine = {"res": PUBLIC_RES + 1}
    assert client.get("/v1/analytics/heat", params=fine).status_code == 401
    r = client.get("/v1/analytics/heat", params=fine, headers=auth(keys["reporter"]))
    assert r.status_code == 403 and f"above {PUBLIC_RES}" in r.json()["message"]
    assert client.get("/v1/analytics/heat", params=fine,
                      headers=auth(keys["operator"])).status_code == 200  # fmt: skip
    assert client.get("/maps/heat", params=fine).status_code == 401
    page = client.get("/maps/heat").text
    assert f'value="{PUBLIC_RES + 1}"' not in page  # the page does not offer what it refuses


@pytest.mark.parametrize("page", ["/maps/heat", "/maps/hotspots", "/maps/grids", "/maps/tiles"])
def test_map_pages_embed_no_point_and_no_text(client, world, page: str) -> None:  # type: ignore[no-untyped-def]
    r = client.get(page)
    assert r.status_code == 200, r.text
    assert_nothing_private(r.text, world, page)


# --------------------------------------------------------------------------- marking public


def test_only_operators_and_admins_mark_cases_public_and_only_of_public_categories(
    client, world  # type: ignore[no-untyped-def]
) -> None:
    keys = world["keys"]
    scoped, theft = world["scoped"], world["theft"]
    url = f"/v1/reports/{scoped.id}/public"
    assert client.post(url, json={"public": True}).status_code == 401
    assert client.post(url, json={"public": True},
                       headers=auth(keys["grid_worker"])).status_code == 403  # fmt: skip
    r = client.post(f"/v1/reports/{theft.id}/public", json={"public": True},
                    headers=auth(keys["admin"]))  # fmt: skip
    assert r.status_code == 409 and "not public" in r.json()["message"]
    assert _open311(client, theft.id)["description"] is None
    admin = auth(keys["admin"])
    assert client.post(url, json={"public": True}, headers=admin).json()["public"] is True
    assert _open311(client, scoped.id)["description"] == scoped.description
    assert client.post(url, json={"public": False}, headers=admin).json()["public"] is False
    assert _open311(client, scoped.id)["description"] is None
    assert client.post(url, json={"public": "yes please"}, headers=admin).status_code == 422
