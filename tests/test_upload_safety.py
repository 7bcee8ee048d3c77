"""What a layout file is and holds is checked before GDAL or GEOS work on it: the content must
be what the name says (GML named ``.geojson`` is refused saying it is GML), features and
vertices are counted first (a vertex bomb of 4 features × 499,999 vertices is refused within
a second, naming the limit, in every format), one set of zip limits for every reader, and no
message ever shows a server path."""

from __future__ import annotations

import io
import re
import tempfile
import time
import uuid
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import orjson
import pytest
import shapely
from fastapi.testclient import TestClient
from shapely.geometry import Polygon
from sqlalchemy import Engine, text

from geo_service.boundaries import safety
from geo_service.boundaries.reader import read_layout
from geo_service.errors import InvalidInput, TooLarge, without_server_paths
from geo_service.settings import LayoutLimitSettings
from tests.conftest import DEMO_LAYOUT, auth
from tests.layouts import small_layout

BOMB_FEATURES, BOMB_VERTICES = 4, 499_999


def _upload(client: TestClient, key: str, content: bytes, filename: str):  # type: ignore[no-untyped-def]
    return client.post(
        "/v1/boundaries/versions",
        files={"file": (filename, content, "application/octet-stream")},
        data={"label": f"safety-{uuid.uuid4().hex[:8]}"},
        headers=auth(key),
    )


def _drafts(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM boundary_versions")).scalar_one())


def _ring(n: int, cx: float, cy: float = 30.75, r: float = 0.01) -> np.ndarray:
    """A closed ring of ``n`` vertices (the first repeated last) around (cx, cy)."""
    a = np.linspace(0, 2 * np.pi, n - 1, endpoint=False)
    pts = np.column_stack([cx + r * np.cos(a), cy + r * np.sin(a)]).round(6)
    return np.vstack([pts, pts[:1]])


def _bomb_frame(features: int = BOMB_FEATURES, vertices: int = BOMB_VERTICES) -> gpd.GeoDataFrame:
    rows = [
        {"code": f"330411100001{i:03d}", "name": f"g{i}", "level": "grid", "parent_code": "",
         "geometry": Polygon(_ring(vertices, 120.70 + 0.03 * i))}
        for i in range(features)
    ]  # fmt: skip
    return gpd.GeoDataFrame(rows, crs="EPSG:4326")


def _bomb_geojson(features: int = BOMB_FEATURES, vertices: int = BOMB_VERTICES) -> bytes:
    """The bomb as compact GeoJSON text, written by orjson straight from numpy."""
    feats = [
        {"type": "Feature",
         "properties": {"code": f"330411100001{i:03d}", "name": "g", "level": "grid",
                        "parent_code": ""},
         "geometry": {"type": "Polygon", "coordinates": [_ring(vertices, 120.70 + 0.03 * i)]}}
        for i in range(features)
    ]  # fmt: skip
    return orjson.dumps(
        {"type": "FeatureCollection", "features": feats}, option=orjson.OPT_SERIALIZE_NUMPY
    )


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


# ------------------------------------------------------------------------- content, not name

GML = b"""<?xml version="1.0" encoding="UTF-8"?>
<ogr:FeatureCollection xmlns:ogr="http://ogr.maptools.org/" xmlns:gml="http://www.opengis.net/gml">
  <gml:featureMember><ogr:grids><ogr:code>330411100001001</ogr:code>
  <ogr:geometryProperty><gml:Polygon><gml:outerBoundaryIs><gml:LinearRing>
  <gml:coordinates>120.7,30.7 120.8,30.7 120.8,30.8 120.7,30.7</gml:coordinates>
  </gml:LinearRing></gml:outerBoundaryIs></gml:Polygon></ogr:geometryProperty>
  </ogr:grids></gml:featureMember></ogr:FeatureCollection>"""


@pytest.mark.parametrize(
    ("content", "filename", "words"),
    [
        (GML, "layout.geojson", "layout.geojson is GML (XML), not GeoJSON"),
        (
            b'<kml xmlns="http://www.opengis.net/kml/2.2"><Document/></kml>',
            "a.geojson",
            "a.geojson is KML (XML), not GeoJSON",
        ),
        (
            b'{"type": "Topology", "objects": {}, "arcs": []}',
            "t.json",
            "t.json is not GeoJSON (TopoJSON)",
        ),
        (
            b'{"geometryType": "esriGeometryPolygon", "features": []}',
            "e.geojson",
            "e.geojson is not GeoJSON (Esri JSON)",
        ),
        (_zip({"a.txt": b"x"}), "layout.geojson", "layout.geojson is a zip archive, not GeoJSON"),
        (b"%PDF-1.7 ...", "layout.gpkg", "layout.gpkg is a PDF document, not a GeoPackage"),
        (
            b'{"type": "FeatureCollection", "features": []}',
            "layout.gpkg",
            "layout.gpkg is GeoJSON, not a GeoPackage",
        ),
        (b"code,name\n1,a\n", "layout.zip", "layout.zip is CSV text, not a zip archive"),
        (
            b"\x00\x01\x02\x03\xff\xfe" * 10,
            "layout.geojson",
            "layout.geojson is binary data, not GeoJSON",
        ),
    ],
)
def test_content_that_is_not_what_its_name_says_is_refused_naming_what_it_is(
    client: TestClient, keys: dict[str, str], engine: Engine, content: bytes, filename: str,
    words: str,
) -> None:  # fmt: skip
    before = _drafts(engine)
    r = _upload(client, keys["planner"], content, filename)
    assert r.status_code == 422, r.text
    assert words in r.json()["message"], r.json()["message"]
    assert _drafts(engine) == before


def test_gml_in_a_zip_named_geojson_is_refused_too(
    client: TestClient, keys: dict[str, str]
) -> None:
    r = _upload(client, keys["planner"], _zip({"layout/grids.geojson": GML}), "grids.zip")
    assert r.status_code == 422
    assert "grids.geojson is GML (XML), not GeoJSON" in r.json()["message"]


def test_the_cli_reader_sniffs_content_as_well(tmp_path: Path) -> None:
    path = tmp_path / "grids.geojson"
    path.write_bytes(GML)
    with pytest.raises(InvalidInput, match=r"grids.geojson is GML \(XML\), not GeoJSON"):
        read_layout(path)


# ---------------------------------------------------------------------- vertices, counted first


def test_a_geojson_vertex_bomb_is_refused_within_a_second_naming_the_limit(
    client: TestClient, keys: dict[str, str], engine: Engine
) -> None:
    body = _bomb_geojson()
    assert len(body) < 64 * 1024 * 1024  # under the body limit: the vertex limit must say no
    before = _drafts(engine)
    started = time.perf_counter()
    r = _upload(client, keys["planner"], body, "bomb.geojson")
    elapsed = time.perf_counter() - started
    assert r.status_code == 413, r.text
    message = r.json()["message"]
    assert "feature 1 of bomb.geojson has more than 100000 vertices" in message
    assert "GEO_LAYOUT_MAX_VERTICES_PER_FEATURE" in message
    assert elapsed < 3.0, elapsed  # the stored-after-25-s probe; this includes the upload
    assert _drafts(engine) == before


@pytest.mark.parametrize("fmt", ["gpkg", "shp.zip"])
def test_a_geopackage_or_shapefile_vertex_bomb_is_refused_before_geos(
    client: TestClient, keys: dict[str, str], tmp_path: Path, fmt: str
) -> None:
    frame = _bomb_frame()
    if fmt == "gpkg":
        frame.to_file(tmp_path / "bomb.gpkg", driver="GPKG")
        body, name = (tmp_path / "bomb.gpkg").read_bytes(), "bomb.gpkg"
    else:
        frame.to_file(tmp_path / "bomb.shp")
        body = _zip({f"bomb/{p.name}": p.read_bytes() for p in tmp_path.glob("bomb.*")})
        name = "bomb.zip"
    started = time.perf_counter()
    r = _upload(client, keys["planner"], body, name)
    elapsed = time.perf_counter() - started
    assert r.status_code == 413, r.text
    assert "feature 1 of" in r.json()["message"]
    assert "more than 100000 vertices" in r.json()["message"]
    assert elapsed < 5.0, elapsed


def test_many_features_under_the_feature_limit_are_held_to_the_file_limit(tmp_path: Path) -> None:
    path = tmp_path / "many.geojson"
    path.write_bytes(_bomb_geojson(features=12, vertices=1_000))
    tight = LayoutLimitSettings(max_vertices_per_feature=1_000, max_vertices_total=10_000)
    with pytest.raises(TooLarge, match="more than 10000 vertices in all"):
        read_layout(path, limits=tight)
    frame = _bomb_frame(features=12, vertices=1_000)
    frame.to_file(tmp_path / "many.gpkg", driver="GPKG")
    with pytest.raises(TooLarge, match="holds 12000 vertices, more than 10000 in all"):
        read_layout(tmp_path / "many.gpkg", limits=tight.model_copy(
            update={"max_vertices_per_feature": 1_000})
        )  # fmt: skip
    with pytest.raises(TooLarge, match="more than 5 features"):
        read_layout(path, limits=LayoutLimitSettings(max_features=5))
    with pytest.raises(TooLarge, match="holds 12 features, over the limit of 5"):
        read_layout(tmp_path / "many.gpkg", limits=LayoutLimitSettings(max_features=5))


def test_a_feature_at_the_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "edge.geojson"
    path.write_bytes(_bomb_geojson(features=2, vertices=500))
    limits = LayoutLimitSettings(max_vertices_per_feature=500, max_vertices_total=1_000)
    layout = read_layout(path, limits=limits)
    assert shapely.get_num_coordinates(layout.frame.geometry.values).tolist() == [500, 500]
    with pytest.raises(TooLarge, match=r"feature 1 of edge\.geojson has more than 499"):
        read_layout(path, limits=limits.model_copy(update={"max_vertices_per_feature": 499}))


@pytest.mark.parametrize("chunk", [7, 1_000, 65_536])
def test_the_scan_counts_exactly_what_gdal_reads_whatever_the_piece_size(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, chunk: int
) -> None:
    """The demo layout, compact and pretty-printed by GDAL, scanned in pieces that cut
    numbers, brackets and keys anywhere."""
    monkeypatch.setattr(safety, "_CHUNK", chunk)
    frame = gpd.read_file(DEMO_LAYOUT)
    pretty = tmp_path / "pretty.geojson"
    frame.head(300).to_file(pretty, driver="GeoJSON")  # GDAL's "[ 120.7, 30.7 ]" with spaces
    for path, rows in ((DEMO_LAYOUT, frame), (pretty, frame.head(300))):
        if chunk == 7 and path == DEMO_LAYOUT:
            continue  # 1.7 MB in 7-byte pieces: slow, and the other files cover it
        counts = safety.scan_geojson(Path(path), "x", LayoutLimitSettings())
        per_feature = shapely.get_num_coordinates(rows.geometry.values)
        assert counts.vertices == int(per_feature.sum())
        assert counts.geometries == counts.features == len(rows)


def test_the_scan_refuses_a_single_geometry_as_soon_as_it_passes(tmp_path: Path) -> None:
    path = tmp_path / "one.geojson"
    path.write_bytes(_bomb_geojson(features=1, vertices=300_000) + b" " * 10)
    with pytest.raises(TooLarge, match=r"feature 1 of one\.geojson has more than 100000"):
        safety.scan_geojson(path, "one.geojson", LayoutLimitSettings())


def test_wkb_vertices_are_read_from_the_headers() -> None:
    square = Polygon([(0, 0), (1, 0), (1, 1), (0, 1)], [[(0.2, 0.2), (0.4, 0.2), (0.3, 0.4)]])
    multi = shapely.MultiPolygon([square, shapely.box(5, 5, 6, 6)])
    z = shapely.force_3d(multi)
    for geom in (square, multi, z, shapely.Point(1, 2), shapely.LineString([(0, 0), (1, 1)])):
        for flavour in ("iso", "extended"):
            wkb = shapely.to_wkb(geom, flavor=flavour, include_srid=False, byte_order=0)
            assert safety.wkb_vertices(wkb) == shapely.get_num_coordinates(geom)
            little = shapely.to_wkb(geom, flavor=flavour, byte_order=1)
            assert safety.wkb_vertices(little) == shapely.get_num_coordinates(geom)
    with_srid = shapely.to_wkb(shapely.set_srid(multi, 4326), flavor="extended", include_srid=True)
    assert safety.wkb_vertices(with_srid) == shapely.get_num_coordinates(multi) == 14


# -------------------------------------------------------------------- one set of zip limits


def test_every_reader_uses_the_same_zip_limits(tmp_path: Path) -> None:
    """The CLI's reader unpacks zips under the same counted limits as uploads."""
    layout = small_layout().to_json(drop_id=True).encode()
    bomb = tmp_path / "bomb.zip"
    bomb.write_bytes(_zip({"grids.geojson": layout + b" " * 5_000_000}))
    with pytest.raises(TooLarge, match="decompression bomb"):
        read_layout(bomb)
    many = tmp_path / "many.zip"
    many.write_bytes(_zip({"grids.geojson": layout, **{f"x{i}.txt": b"" for i in range(5)}}))
    with pytest.raises(TooLarge, match="holds 6 members, over the limit of 5"):
        read_layout(many, limits=LayoutLimitSettings(max_zip_members=5))
    assert len(read_layout(many).frame) == len(small_layout())
    with pytest.raises(TooLarge, match="unpacks to more than 1000 bytes"):
        read_layout(many, limits=LayoutLimitSettings(max_unzipped_bytes=1_000))


# ---------------------------------------------------------------------- no server paths


_TMP = re.compile(re.escape(tempfile.gettempdir()) + r"|/tmp/|geo-upload-|geo-layout-|/vsi")


@pytest.mark.parametrize(
    ("content", "filename"),
    [
        (b'{"type": "FeatureCollection", "features": [{"type": "Feature", ', "cut.geojson"),
        (b"SQLite format 3\x00" + b"\x00" * 200, "broken.gpkg"),
        (b"\x00\x00\x27\x0a" + b"\x00" * 200, "grids.shp"),
        (_zip({"grids/grids.shp": b"\x00\x00\x27\x0a" + b"\x01" * 100}), "grids.zip"),
        (_zip({"layout.gpkg": b"SQLite format 3\x00garbage"}), "packed.zip"),
        (b"PK\x03\x04 not really", "broken.zip"),
        (b'{"type": "FeatureCollection", "features": []}', "../../etc/passwd.geojson"),
    ],
)
def test_no_message_shows_a_server_path(
    client: TestClient, keys: dict[str, str], content: bytes, filename: str
) -> None:
    r = _upload(client, keys["planner"], content, filename)
    assert 400 <= r.status_code < 500, r.text
    assert not _TMP.search(r.text), r.text


def test_server_paths_are_cut_from_any_domain_message() -> None:
    folder = tempfile.mkdtemp(prefix="geo-upload-")
    message = f"cannot read {folder}/unzipped/layout/grids.shp: '/vsizip/{folder}/a.zip/b.shp'"
    assert without_server_paths(message) == "cannot read grids.shp: 'b.shp'"
    assert InvalidInput(message).message == "cannot read grids.shp: 'b.shp'"
    kept = "zip member '/tmp/evil.geojson' points outside; see /v1/boundaries/versions/3/diff"
    assert without_server_paths(kept) == kept  # the caller's own names and our URLs stay
