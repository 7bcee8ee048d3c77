"""Planners upload layouts as drafts: every format, only with the planner role, and bad files
(broken geometry, a broken hierarchy, oversize bodies, unsafe or inflating zips, a Shapefile
without .prj) are refused with a 4xx naming the problem, writing nothing."""

from __future__ import annotations

import io
import stat
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import pytest
from fastapi.testclient import TestClient
from shapely import affinity
from shapely.geometry import Polygon
from sqlalchemy import Engine, text

from geo_service.app import create_app
from geo_service.boundaries import versions
from geo_service.coords import wgs84_to_gcj02
from geo_service.settings import (
    BodyLimitSettings,
    DatabaseSettings,
    LayoutLimitSettings,
    Settings,
)
from tests.conftest import DEMO_LAYOUT, auth
from tests.layouts import small_layout

FORBIDDEN = ("reporter", "grid_worker", "operator", "admin")


def _label(stem: str = "draft") -> str:
    return f"{stem}-{uuid.uuid4().hex[:8]}"


def _upload(
    client: TestClient,
    key: str | None,
    content: bytes,
    filename: str = "layout.geojson",
    label: str | None = None,
    crs: str | None = None,
):  # type: ignore[no-untyped-def]
    data = {"label": label if label is not None else _label()}
    if crs:
        data["crs"] = crs
    return client.post(
        "/v1/boundaries/versions",
        files={"file": (filename, content, "application/octet-stream")},
        data=data,
        headers=auth(key) if key else {},
    )


def _geojson(frame: gpd.GeoDataFrame) -> bytes:
    return frame.to_json(drop_id=True).encode()


def _counts(engine: Engine) -> tuple[int, int, int]:
    with engine.connect() as conn:
        return tuple(  # type: ignore[return-value]
            conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
            for t in ("boundary_versions", "areas", "version_areas")
        )


def _zip(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _shapefile_zip(tmp_path: Path, frame: gpd.GeoDataFrame, prj: bool = True) -> bytes:
    folder = tmp_path / f"shp-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    frame.to_file(folder / "grids.shp", encoding="utf-8")
    if not prj:
        (folder / "grids.prj").unlink()
    return _zip({f"layout/{f.name}": f.read_bytes() for f in folder.iterdir()})


@pytest.fixture(scope="module")
def tight_client(database_url: str) -> Iterator[TestClient]:
    """The app with small upload limits: 200 kB bodies, 300 kB unpacked."""
    app = create_app(
        Settings(
            database=DatabaseSettings(url=database_url),
            body_limits=BodyLimitSettings(upload=200_000),
            layout=LayoutLimitSettings(max_unzipped_bytes=300_000),
        )
    )
    with TestClient(app) as c:
        yield c


def _refused(engine: Engine, response, status: int, words: str):  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert words in response.json()["message"], response.json()["message"]
    return response.json()


# ---------------------------------------------------------------------------- drafts are made


def test_planner_upload_creates_a_draft_holding_the_layout(
    client: TestClient, keys, engine: Engine
) -> None:
    frame = small_layout()
    label = _label("small")
    r = _upload(client, keys["planner"], _geojson(frame), label=label)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["label"] == label and body["status"] == "draft"
    assert body["counts"] == {"district": 1, "town": 2, "community": 4, "grid": 16}
    assert body["errors"] == 0
    with engine.connect() as conn:
        assert versions.get_version(conn, body["id"]).status == "draft"
        stored = versions.load_areas(conn, body["id"])
    assert sorted(stored["code"]) == sorted(frame["code"])
    got = stored.set_index("code").geometry
    for code, geom in zip(frame["code"], frame.geometry, strict=True):
        assert got[code].equals(geom)


def test_every_other_column_is_kept_as_an_attribute_whatever_its_name(
    client: TestClient, keys, engine: Engine
) -> None:
    frame = small_layout()
    frame["grid worker"] = "张三"
    frame["2nd-leader"] = 7
    r = _upload(client, keys["planner"], _geojson(frame))
    assert r.status_code == 201, r.text
    with engine.connect() as conn:
        attrs = conn.execute(
            text("SELECT a.attributes FROM version_areas va JOIN areas a ON a.id = va.area_id "
                 "WHERE va.version_id = :v AND va.code = '330411100001001'"),
            {"v": r.json()["id"]},
        ).scalar_one()
    assert attrs == {"grid worker": "张三", "2nd-leader": 7}


def test_a_draft_does_not_change_the_version_in_force(client: TestClient, keys) -> None:
    before = client.get("/v1/locate", params={"lon": 120.7025, "lat": 30.7425}).json()
    assert _upload(client, keys["planner"], _geojson(small_layout())).status_code == 201
    after = client.get("/v1/locate", params={"lon": 120.7025, "lat": 30.7425}).json()
    assert after["version"] == before["version"]
    listed = client.get("/v1/boundaries/versions").json()["versions"]
    assert [v["label"] for v in listed if v["status"] == "published"] == ["demo-2025"]


def test_the_demo_layout_uploads_as_a_clean_draft_sharing_every_area(
    client: TestClient, keys
) -> None:
    r = _upload(client, keys["planner"], DEMO_LAYOUT.read_bytes(), "xiuzhou.geojson",
                crs="wgs84")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["counts"]["grid"] == 2988 and body["errors"] == 0 and body["warnings"] == 0
    assert body["new_areas"] == 0 and body["shared_areas"] == 3093


@pytest.mark.parametrize("fmt", ["gpkg", "shp.zip"])
def test_geopackage_and_zipped_shapefile_upload_as_drafts(
    client: TestClient, keys, tmp_path: Path, fmt: str
) -> None:
    if fmt == "gpkg":
        small_layout().to_file(tmp_path / "layout.gpkg", driver="GPKG")
        content, name = (tmp_path / "layout.gpkg").read_bytes(), "layout.gpkg"
    else:
        content, name = _shapefile_zip(tmp_path, small_layout()), "layout.zip"
    r = _upload(client, keys["planner"], content, name)
    assert r.status_code == 201, r.text
    assert r.json()["counts"]["grid"] == 16


def test_gcj02_upload_is_stored_in_wgs84(client: TestClient, keys, engine: Engine) -> None:
    frame = small_layout().iloc[:1].copy()  # the district alone: corners move, edges stay
    wgs = frame.geometry.copy()
    frame["geometry"] = [
        Polygon(list(zip(*wgs84_to_gcj02(*g.exterior.xy), strict=True))) for g in wgs
    ]
    r = _upload(client, keys["planner"], _geojson(frame), crs="gcj02")
    assert r.status_code == 201, r.text
    with engine.connect() as conn:
        got = versions.load_areas(conn, r.json()["id"]).set_index("code").geometry
    assert max(got[c].hausdorff_distance(g) for c, g in zip(frame["code"], wgs, strict=True)) < 1e-8


def test_a_layout_with_grid_faults_is_stored_so_the_planner_can_fix_them(
    client: TestClient, keys
) -> None:
    frame = small_layout()
    i = frame.index[frame["code"] == "330411100001001"][0]
    frame.loc[i, "geometry"] = affinity.translate(frame.geometry[i], xoff=0.001)
    r = _upload(client, keys["planner"], _geojson(frame))
    assert r.status_code == 201, r.text
    assert r.json()["errors"] == 2  # an overlap with its east neighbour, a gap to its west
    report = client.get(r.json()["validation"], headers=auth(keys["planner"])).json()
    assert report["kinds"] == {"overlap": 1, "gap": 1}


# ---------------------------------------------------------------------------- who may upload


@pytest.mark.parametrize("role", FORBIDDEN)
def test_only_planners_upload_drafts(client: TestClient, keys, engine: Engine, role: str) -> None:
    before = _counts(engine)
    r = _upload(client, keys[role], _geojson(small_layout()))
    assert r.status_code == 403 and "planner" in r.json()["message"]
    assert _counts(engine) == before


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer gs_not-a-key"}])
def test_uploads_without_a_valid_key_are_401(client: TestClient, headers) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/v1/boundaries/versions", headers=headers,
                    files={"file": ("layout.geojson", _geojson(small_layout()))},
                    data={"label": _label()})
    assert r.status_code == 401


# ---------------------------------------------------------------------------- refused uploads


def test_broken_geometry_is_refused_naming_the_grid_and_where(
    client: TestClient, keys, engine: Engine
) -> None:
    frame = small_layout()
    i = frame.index[frame["code"] == "330411100001001"][0]
    x0, y0, x1, y1 = frame.geometry[i].bounds
    frame.loc[i, "geometry"] = Polygon([(x0, y0), (x1, y1), (x1, y0), (x0, y1), (x0, y0)])
    before = _counts(engine)
    body = _refused(engine, _upload(client, keys["planner"], _geojson(frame)), 422,
                    "invalid_geometry")
    bad = next(p for p in body["details"] if p["kind"] == "invalid_geometry")
    assert bad["codes"] == ["330411100001001"] and "Self-intersection" in bad["message"]
    assert bad["location"] == pytest.approx([(x0 + x1) / 2, (y0 + y1) / 2])
    assert _counts(engine) == before


@pytest.mark.parametrize(
    "code, column, value, kind",
    [
        ("330411100001001", "parent_code", "330411100009", "unknown_parent"),
        ("330411100001001", "parent_code", "", "missing_parent"),
        ("330411100001001", "code", "330411100001002", "duplicate_code"),
        ("330411100001001", "level", "block", "unknown_level"),
        ("330411100001", "code", "33041110000X", "malformed_code"),
    ],
)
def test_layouts_the_grid_edits_cannot_fix_are_refused(
    client: TestClient, keys, engine: Engine, code: str, column: str, value: str, kind: str
) -> None:
    frame = small_layout()
    frame.loc[frame["code"] == code, column] = value
    before = _counts(engine)
    r = _upload(client, keys["planner"], _geojson(frame))
    assert r.status_code == 422, r.text
    assert kind in {p["kind"] for p in r.json()["details"]}
    assert _counts(engine) == before


def test_faults_between_communities_are_refused(client: TestClient, keys, engine: Engine) -> None:
    frame = small_layout()
    i = frame.index[frame["code"] == "330411100001"][0]
    frame.loc[i, "geometry"] = affinity.scale(frame.geometry[i], 1.2, 1.0)
    r = _upload(client, keys["planner"], _geojson(frame))
    assert r.status_code == 422, r.text
    refused = {(p["kind"], p["codes"][0]) for p in r.json()["details"]}
    assert ("overlap", "330411100001") in refused


def test_points_where_polygons_belong_are_refused(client: TestClient, keys) -> None:
    frame = small_layout()
    frame.loc[frame.index[-1], "geometry"] = frame.geometry.iloc[-1].centroid
    r = _upload(client, keys["planner"], _geojson(frame))
    assert r.status_code == 422 and "Point where a Polygon" in r.json()["message"]


def test_missing_label_file_and_unknown_file_types_are_named(client: TestClient, keys) -> None:
    planner = auth(keys["planner"])
    r = _upload(client, keys["planner"], _geojson(small_layout()), label="  ")
    assert r.status_code == 422 and "label" in r.json()["message"]
    r = client.post("/v1/boundaries/versions", data={"label": _label()}, headers=planner,
                    files={"attachment": ("layout.geojson", _geojson(small_layout()))})
    assert r.status_code == 422 and "'file'" in r.json()["message"]
    r = _upload(client, keys["planner"], b"a,b\n1,2\n", "layout.csv")
    assert r.status_code == 422 and "not a layout" in r.json()["message"]
    r = _upload(client, keys["planner"], b"{not json", "layout.geojson")
    assert r.status_code == 422 and "layout.geojson is not GeoJSON" in r.json()["message"]
    r = _upload(client, keys["planner"], b'{"type": "FeatureCollection", "features": [', "a.json")
    assert r.status_code == 422 and "cannot read a.json" in r.json()["message"]
    r = client.post("/v1/boundaries/versions", json={"label": "x"}, headers=planner)
    assert r.status_code == 422 and "multipart" in r.json()["message"]


def test_a_label_in_use_is_a_conflict(client: TestClient, keys) -> None:
    label = _label("taken")
    first = _upload(client, keys["planner"], _geojson(small_layout()), label=label)
    assert first.status_code == 201
    r = _upload(client, keys["planner"], _geojson(small_layout()), label=label)
    assert r.status_code == 409 and label in r.json()["message"]


def test_shapefile_without_prj_needs_a_crs(client: TestClient, keys, tmp_path: Path) -> None:
    content = _shapefile_zip(tmp_path, small_layout(), prj=False)
    r = _upload(client, keys["planner"], content, "noprj.zip")
    assert r.status_code == 422 and "declares no coordinate system" in r.json()["message"]
    assert _upload(client, keys["planner"], content, "noprj.zip", crs="wgs84").status_code == 201


def test_body_over_the_size_cap_is_413_before_anything_is_stored(
    tight_client: TestClient, keys, engine: Engine
) -> None:
    big = DEMO_LAYOUT.read_bytes()  # 1.7 MB, over the 200 kB cap
    before = _counts(engine)
    r = _upload(tight_client, keys["planner"], big)
    assert r.status_code == 413 and "limit of 200000 bytes" in r.json()["message"]
    assert _counts(engine) == before


def test_streamed_body_without_length_is_cut_at_the_cap(tight_client: TestClient, keys) -> None:
    boundary = "planningboundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"label\"\r\n\r\n{_label()}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            "filename=\"layout.geojson\"\r\n\r\n").encode()

    def chunks() -> Iterator[bytes]:
        yield head
        for _ in range(40):  # 40 x 10 kB, never finished: the cap must stop it
            yield b" " * 10_000

    r = tight_client.post(
        "/v1/boundaries/versions", content=chunks(),
        headers={**auth(keys["planner"]),
                 "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert r.status_code == 413 and r.json()["message"].startswith("upload is over the limit")


@pytest.mark.parametrize("member", ["../evil.geojson", "/tmp/evil.geojson", "a/../../evil.geojson",
                                    "C:/evil.geojson", "..\\evil.geojson"])
def test_zip_members_outside_the_folder_are_refused(
    client: TestClient, keys, engine: Engine, tmp_path: Path, member: str
) -> None:
    content = _zip({member: _geojson(small_layout())})
    before = _counts(engine)
    r = _upload(client, keys["planner"], content, "evil.zip")
    assert r.status_code == 422 and "outside the archive" in r.json()["message"]
    assert repr(member) in r.json()["message"]
    assert _counts(engine) == before


def test_symbolic_links_in_zips_are_refused(client: TestClient, keys) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("layout.geojson")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    r = _upload(client, keys["planner"], buf.getvalue(), "link.zip")
    assert r.status_code == 422 and "symbolic link" in r.json()["message"]


def test_decompression_bomb_is_refused_by_its_ratio(client: TestClient, keys) -> None:
    content = _zip({"layout.geojson": b"\0" * 30_000_000})
    assert len(content) < 100_000
    r = _upload(client, keys["planner"], content, "bomb.zip")
    assert r.status_code == 413 and "decompression bomb" in r.json()["message"]


def test_zip_unpacking_past_the_total_cap_is_refused(
    tight_client: TestClient, keys, tmp_path: Path
) -> None:
    # an ordinary layout, modestly compressible, that unpacks past the 300 kB cap
    content = _zip({"layout.geojson": DEMO_LAYOUT.read_bytes()[:400_000]})
    assert len(content) < 200_000
    r = _upload(tight_client, keys["planner"], content, "big.zip")
    assert r.status_code == 413 and "unpacks to more than 300000 bytes" in r.json()["message"]


def test_zips_must_hold_exactly_one_layout(client: TestClient, keys) -> None:
    layout = _geojson(small_layout())
    r = _upload(client, keys["planner"], _zip({"a.geojson": layout, "b.geojson": layout}),
                "two.zip")
    assert r.status_code == 422 and "several layouts" in r.json()["message"]
    r = _upload(client, keys["planner"], _zip({"readme.txt": b"hello"}), "none.zip")
    assert r.status_code == 422 and "no layout" in r.json()["message"]
    r = _upload(client, keys["planner"], b"PK\x03\x04 not really", "broken.zip")
    assert r.status_code == 422 and "not a readable zip" in r.json()["message"]
