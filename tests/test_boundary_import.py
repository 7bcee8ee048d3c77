"""``boundaries import`` stores a valid layout as a version and refuses a bad one whole,
listing every problem with its codes and location; nothing is repaired or half-written."""

from __future__ import annotations

import datetime as dt
import zipfile
from pathlib import Path

import geopandas as gpd
import pytest
import shapely
from shapely import affinity
from shapely.geometry import Polygon, box
from sqlalchemy import Engine, text

from geo_service.boundaries import versions
from geo_service.boundaries.importer import import_layout
from geo_service.coords import wgs84_to_gcj02
from geo_service.db.engine import make_engine
from geo_service.db.migrate import upgrade
from geo_service.errors import (
    BoundaryValidationFailed,
    Conflict,
    InvalidCoordinates,
    InvalidGeometry,
    InvalidInput,
    TooLarge,
)
from tests.layouts import STEP, X0, Y0, small_layout


@pytest.fixture(scope="module")
def db(new_database) -> Engine:  # type: ignore[no-untyped-def]
    url = new_database("geo_import")
    upgrade(url)
    eng = make_engine(url)
    yield eng
    eng.dispose()


def _counts(engine: Engine) -> tuple[int, int, int]:
    with engine.connect() as conn:
        return tuple(  # type: ignore[return-value]
            conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
            for t in ("boundary_versions", "areas", "version_areas")
        )


def _refused(engine: Engine, path: Path, **kw) -> BoundaryValidationFailed:  # type: ignore[no-untyped-def]
    before = _counts(engine)
    with pytest.raises(BoundaryValidationFailed) as info:
        import_layout(engine, path, f"refused-{path.stem}", **kw)
    assert _counts(engine) == before, "a refused layout wrote something"
    return info.value


def _kinds(exc: BoundaryValidationFailed) -> set[str]:
    return {p["kind"] for p in exc.details}


def test_valid_layout_is_stored_as_a_published_version(db: Engine, tmp_layout) -> None:
    path = tmp_layout(small_layout())
    summary = import_layout(
        db, path, "small-v1", crs="wgs84", effective_from=dt.date(2025, 3, 1), publish=True
    )
    assert summary.counts == {"grid": 16, "community": 4, "town": 2, "district": 1}
    assert summary.version.status == "published"
    assert summary.version.effective_from == dt.date(2025, 3, 1)
    with db.connect() as conn:
        assert versions.version_in_force(conn, dt.date(2025, 3, 1)).label == "small-v1"
        parts = conn.execute(text("SELECT count(*) FROM area_parts")).scalar_one()
        stored = versions.load_areas(conn, summary.version.id, levels=("grid",))
    assert parts >= 23
    assert len(stored) == 16 and stored["households"].min() == 301


def test_coordinates_are_stored_exactly_as_given(db: Engine, tmp_layout) -> None:
    frame = small_layout().iloc[:1].copy()  # the district alone
    frame["geometry"] = [box(120.7000000000001, 30.7400000000003, 120.740000000000007, 30.75)]
    summary = import_layout(db, tmp_layout(frame, "exact.gpkg", driver="GPKG"), "exact-coords")
    with db.connect() as conn:
        got = versions.load_areas(conn, summary.version.id)
    assert (
        shapely.get_coordinates(got.geometry.iloc[0])
        == shapely.get_coordinates(frame.geometry.iloc[0])
    ).all()


def test_unchanged_areas_are_shared_not_copied(db: Engine, tmp_layout) -> None:
    frame = small_layout()
    import_layout(db, tmp_layout(frame, "a.geojson"), "share-a")
    changed = frame.copy()
    changed.loc[changed["code"] == "330411100001001", "households"] = 999
    summary = import_layout(db, tmp_layout(changed, "b.geojson"), "share-b")
    assert summary.new_areas == 1 and summary.shared_areas == 22


def test_gcj02_layout_is_converted_to_wgs84(db: Engine, tmp_layout) -> None:
    frame = small_layout().iloc[:1].copy()  # the district alone: GCJ-02 bends long edges
    wgs = frame.geometry.iloc[0]
    frame["geometry"] = [Polygon(list(zip(*wgs84_to_gcj02(*wgs.exterior.xy), strict=True)))]
    summary = import_layout(db, tmp_layout(frame), "from-gcj", crs="gcj02")
    with db.connect() as conn:
        got = versions.load_areas(conn, summary.version.id)
    assert got.geometry.iloc[0].hausdorff_distance(wgs) < 1e-8


def test_geopackage_and_zipped_shapefile_are_read(db: Engine, tmp_layout, tmp_path) -> None:
    gpkg = tmp_layout(small_layout(), "layout.gpkg", driver="GPKG")
    assert import_layout(db, gpkg, "from-gpkg").counts["grid"] == 16
    shp_dir = tmp_path / "shp"
    shp_dir.mkdir()
    small_layout().to_file(shp_dir / "grids.shp", encoding="utf-8")
    zpath = tmp_path / "grids.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for f in shp_dir.iterdir():
            zf.write(f, f.name)
    assert import_layout(db, zpath, "from-shp").counts["grid"] == 16


def test_shapefile_without_prj_needs_a_crs(db: Engine, tmp_path) -> None:
    shp_dir = tmp_path / "noprj"
    shp_dir.mkdir()
    small_layout().to_file(shp_dir / "grids.shp", encoding="utf-8")
    (shp_dir / "grids.prj").unlink()
    zpath = tmp_path / "noprj.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for f in shp_dir.iterdir():
            zf.write(f, f.name)
    with pytest.raises(InvalidInput, match="declares no coordinate system"):
        import_layout(db, zpath, "noprj")
    assert import_layout(db, zpath, "noprj-wgs84", crs="wgs84").counts["grid"] == 16


def test_zip_with_paths_outside_its_folder_is_refused(db: Engine, tmp_path) -> None:
    zpath = tmp_path / "evil.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("../../etc/evil.shp", b"x")
    with pytest.raises(InvalidInput, match="outside the archive"):
        import_layout(db, zpath, "evil")


def test_zip_bomb_is_refused(db: Engine, tmp_path) -> None:
    zpath = tmp_path / "bomb.zip"
    with zipfile.ZipFile(zpath, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("big.shp", b"\0" * 50_000_000)
    with pytest.raises(TooLarge, match="inflates"):
        import_layout(db, zpath, "bomb")


def test_self_intersecting_grid_is_refused_with_its_location(db: Engine, tmp_layout) -> None:
    frame = small_layout()
    i = frame.index[frame["code"] == "330411100001001"][0]
    x0, y0, x1, y1 = frame.geometry[i].bounds
    frame.loc[i, "geometry"] = Polygon([(x0, y0), (x1, y1), (x1, y0), (x0, y1), (x0, y0)])
    exc = _refused(db, tmp_layout(frame))
    bad = [p for p in exc.details if p["kind"] == "invalid_geometry"]
    assert bad and bad[0]["codes"] == ["330411100001001"]
    assert "Self-intersection" in bad[0]["message"]
    assert bad[0]["location"] == pytest.approx([(x0 + x1) / 2, (y0 + y1) / 2])


def test_overlapping_siblings_are_refused(db: Engine, tmp_layout) -> None:
    frame = small_layout()
    i = frame.index[frame["code"] == "330411100001001"][0]
    frame.loc[i, "geometry"] = affinity.translate(frame.geometry[i], xoff=0.001)
    exc = _refused(db, tmp_layout(frame))
    assert {"overlap", "gap", "outside_parent"} <= _kinds(exc) | {"outside_parent"}
    overlap = next(p for p in exc.details if p["kind"] == "overlap")
    assert overlap["codes"] == ["330411100001001", "330411100001002"]
    assert overlap["area_m2"] > 1000


def test_gap_between_siblings_is_refused(db: Engine, tmp_layout) -> None:
    frame = small_layout()
    i = frame.index[frame["code"] == "330411101002004"][0]
    frame.loc[i, "geometry"] = affinity.scale(frame.geometry[i], 0.5, 0.5)
    exc = _refused(db, tmp_layout(frame))
    gaps = [p for p in exc.details if p["kind"] == "gap"]
    assert gaps and gaps[0]["codes"] == ["330411101002"] and gaps[0]["area_m2"] > 10_000


def test_vertices_added_on_a_straight_shared_edge_are_no_sliver(db: Engine, tmp_layout) -> None:
    """Two towns share a 1.5 km diagonal edge; one of them carries extra vertices along it.
    Rounded to doubles they are not exactly collinear, so GEOS leaves hair-thin slivers; those
    are measured in the lon/lat plane (about 0 m²), not after projecting, where the projection's
    curvature alone makes an 8 m² false gap here."""
    x0, y0, x1, y1 = X0, Y0, X0 + 8 * STEP, Y0 + 2 * STEP
    a, b = (X0 + 3 * STEP, y0), (X0 + 5 * STEP, y1)
    along = [(a[0] + (b[0] - a[0]) * k / 7, a[1] + (b[1] - a[1]) * k / 7) for k in range(1, 7)]
    frame = gpd.GeoDataFrame(
        [
            {"code": "330411", "name": "测试区", "level": "district", "parent_code": "",
             "geometry": box(x0, y0, x1, y1)},
            {"code": "330411100", "name": "西镇", "level": "town", "parent_code": "330411",
             "geometry": Polygon([(x0, y0), a, b, (x0, y1)])},
            {"code": "330411101", "name": "东镇", "level": "town", "parent_code": "330411",
             "geometry": Polygon([a, (x1, y0), (x1, y1), b, *reversed(along)])},
        ],
        geometry="geometry", crs="EPSG:4326",
    )  # fmt: skip
    summary = import_layout(db, tmp_layout(frame), "collinear-vertices", crs="wgs84")
    assert summary.version.status == "draft"


def test_child_outside_its_parent_is_refused(db: Engine, tmp_layout) -> None:
    frame = small_layout()
    # move a grid into the other community (and leave a gap behind)
    i = frame.index[frame["code"] == "330411100001002"][0]
    frame.loc[i, "geometry"] = affinity.translate(frame.geometry[i], xoff=0.005)
    exc = _refused(db, tmp_layout(frame))
    assert "outside_parent" in _kinds(exc)


@pytest.mark.parametrize(
    "code, column, value, kind",
    [
        ("330411100001001", "parent_code", "330411100009", "unknown_parent"),
        ("330411100001001", "parent_code", "330411100", "wrong_parent_level"),
        ("330411100001001", "parent_code", "", "missing_parent"),
        ("330411100001001", "code", "330411100001002", "duplicate_code"),
        ("330411100001001", "code", "33041110000100X", "malformed_code"),
        ("330411100001001", "level", "block", "unknown_level"),
        ("330411", "parent_code", "330400", "unexpected_parent"),
    ],
)
def test_hierarchy_and_code_problems_are_refused(
    db: Engine, tmp_layout, code: str, column: str, value: str, kind: str
) -> None:
    frame = small_layout()
    frame.loc[frame["code"] == code, column] = value
    assert kind in _kinds(_refused(db, tmp_layout(frame)))


def test_all_problems_are_reported_at_once(db: Engine, tmp_layout) -> None:
    frame = small_layout()
    frame.loc[frame["code"] == "330411100001001", "parent_code"] = "330411100009"
    frame.loc[frame["code"] == "330411101002004", "code"] = "330411101002003"
    assert {"unknown_parent", "duplicate_code"} <= _kinds(_refused(db, tmp_layout(frame)))


@pytest.mark.parametrize("coord", [float("nan"), float("inf")])
def test_non_finite_coordinates_are_refused_before_geos(db: Engine, tmp_path, coord) -> None:
    path = tmp_path / "nan.geojson"
    path.write_text(
        '{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": '
        '{"code": "330411", "name": "x", "level": "district", "parent_code": ""}, '
        '"geometry": {"type": "Polygon", "coordinates": [[[120, 30], [121, 30], '
        f"[121, {'NaN' if coord != coord else 'Infinity'}], [120, 30]]]}}}}]}}"
    )
    with pytest.raises((InvalidCoordinates, InvalidInput)):
        import_layout(db, path, "nan")


def test_points_where_polygons_belong_are_refused(db: Engine, tmp_layout) -> None:
    frame = small_layout()
    frame.loc[frame.index[-1], "geometry"] = frame.geometry.iloc[-1].centroid
    with pytest.raises(InvalidGeometry, match="Point where a Polygon"):
        import_layout(db, tmp_layout(frame), "points")


def test_projected_coordinates_without_crs_are_refused(db: Engine, tmp_layout) -> None:
    frame = small_layout().to_crs(3857).set_crs(4326, allow_override=True)
    with pytest.raises(InvalidCoordinates, match="wrong crs"):
        import_layout(db, tmp_layout(frame), "wrong-crs")


def test_missing_columns_are_named(db: Engine, tmp_layout) -> None:
    frame = small_layout().drop(columns=["parent_code"])
    with pytest.raises(InvalidInput, match="parent_code"):
        import_layout(db, tmp_layout(frame), "no-parent-col")


def test_label_must_be_new(db: Engine, tmp_layout) -> None:
    path = tmp_layout(small_layout())
    import_layout(db, path, "dup-label")
    with pytest.raises(Conflict, match="exists already"):
        import_layout(db, path, "dup-label")


def test_publishing_closes_the_previous_version(db: Engine, tmp_layout) -> None:
    path = tmp_layout(small_layout())
    import_layout(db, path, "timeline-1", effective_from=dt.date(2030, 1, 1), publish=True)
    import_layout(db, path, "timeline-2", effective_from=dt.date(2030, 6, 1), publish=True)
    with db.connect() as conn:
        assert versions.version_in_force(conn, dt.date(2030, 3, 1)).label == "timeline-1"
        assert versions.version_in_force(conn, dt.date(2030, 6, 1)).label == "timeline-2"
        first = versions.get_version(conn, "timeline-1")
    assert first.effective_to == dt.date(2030, 6, 1)
    with pytest.raises(Conflict, match="later effective date"):
        import_layout(db, path, "timeline-0", effective_from=dt.date(2030, 2, 1), publish=True)
