"""GeoParquet in and out of the batch path: what we write is standard GeoParquet 1.1 that
geopandas reads back exactly, any point GeoParquet in a convertible CRS is read as WGS84, and a
source that cannot be used is refused before any task runs, naming the file and the reason."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely
from pyproj import CRS, Transformer

from geo_service.batch.dataset import open_source
from geo_service.batch.geoparquet import point_wkb, read_points, with_points, write_atomic
from geo_service.errors import InvalidCoordinates, InvalidInput

RNG = np.random.default_rng(20261204)
LON = np.round(RNG.uniform(120.6, 120.9, 500), 7)
LAT = np.round(RNG.uniform(30.6, 30.9, 500), 7)
LOCAL_SITE = (
    'ENGCRS["site plan",EDATUM["site datum"],CS[Cartesian,2],'
    'AXIS["x",east,ORDER[1],LENGTHUNIT["metre",1]],AXIS["y",north,ORDER[2],LENGTHUNIT["metre",1]]]'
)


def _points(crs: object = "EPSG:4326", n: int = 500) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"id": np.arange(n), "v": np.arange(n) * 2},
        geometry=gpd.points_from_xy(LON[:n], LAT[:n]),
        crs=crs,
    )


def test_our_files_are_geoparquet_1_1_that_geopandas_reads_exactly(tmp_path: Path) -> None:
    table = pa.table({"id": pa.array(np.arange(len(LON)), pa.int64())})
    path = tmp_path / "p.parquet"
    write_atomic(path, with_points(table, LON, LAT))
    meta = json.loads(pq.read_schema(path).metadata[b"geo"])
    column = meta["columns"]["geometry"]
    assert meta["version"] == "1.1.0" and meta["primary_column"] == "geometry"
    assert column["encoding"] == "WKB" and column["geometry_types"] == ["Point"]
    assert CRS.from_json_dict(column["crs"]).equals(CRS.from_epsg(4326))
    assert column["covering"]["bbox"]["xmin"] == ["bbox", "xmin"]
    back = gpd.read_parquet(path)
    assert back.crs.equals(CRS.from_epsg(4326))
    assert np.array_equal(back.geometry.x.to_numpy(), LON)
    assert np.array_equal(back.geometry.y.to_numpy(), LAT)
    bbox = pq.read_table(path).column("bbox").combine_chunks().flatten()
    assert np.array_equal(bbox[0].to_numpy(), LON) and np.array_equal(bbox[3].to_numpy(), LAT)
    assert not list(tmp_path.glob(".*.tmp"))  # written through a temporary name, renamed


def test_point_wkb_is_what_shapely_writes() -> None:
    ours = point_wkb(LON[:20], LAT[:20]).to_pylist()
    assert ours == [
        shapely.to_wkb(shapely.Point(x, y)) for x, y in zip(LON[:20], LAT[:20], strict=True)
    ]


def _read(path: Path) -> tuple[np.ndarray, np.ndarray]:
    source = open_source(path)
    piece = source.pieces[0]
    return read_points(piece.read(), source.geometry, piece.where)


def test_geopandas_wkb_and_native_point_files_read_as_the_same_points(tmp_path: Path) -> None:
    _points().to_parquet(tmp_path / "wkb.parquet", write_covering_bbox=True)
    _points().to_parquet(tmp_path / "native.parquet", geometry_encoding="geoarrow")
    for name in ("wkb.parquet", "native.parquet"):
        x, y = _read(tmp_path / name)
        assert np.array_equal(x, LON) and np.array_equal(y, LAT), name


def test_a_projected_crs_is_converted_to_wgs84(tmp_path: Path) -> None:
    utm = _points().to_crs("EPSG:32651")
    utm.to_parquet(tmp_path / "utm.parquet")
    x, y = _read(tmp_path / "utm.parquet")
    to_wgs = Transformer.from_crs("EPSG:32651", "EPSG:4326", always_xy=True)
    ex, ey = to_wgs.transform(utm.geometry.x.to_numpy(), utm.geometry.y.to_numpy())
    assert np.allclose(x, ex, rtol=0, atol=1e-9) and np.allclose(y, ey, rtol=0, atol=1e-9)
    assert np.allclose(x, LON, rtol=0, atol=1e-7)


def test_null_and_empty_points_read_as_nan(tmp_path: Path) -> None:
    frame = _points(n=4)
    frame.loc[1, "geometry"] = None
    frame.loc[2, "geometry"] = shapely.Point()
    frame.to_parquet(tmp_path / "holes.parquet")
    x, y = _read(tmp_path / "holes.parquet")
    assert np.isnan(x[1:3]).all() and np.isnan(y[1:3]).all()
    assert x[0] == LON[0] and y[3] == LAT[3]


def test_plain_parquet_has_no_geometry_column(tmp_path: Path) -> None:
    pd.DataFrame({"id": [1, 2], "lon": LON[:2], "lat": LAT[:2]}).to_parquet(tmp_path / "a.parquet")
    with pytest.raises(InvalidInput, match="has no geometry column"):
        open_source(tmp_path)


def test_a_crs_that_cannot_become_wgs84_is_refused(tmp_path: Path) -> None:
    frame = gpd.GeoDataFrame(
        {"id": [1]}, geometry=[shapely.Point(12.5, 40.0)], crs=CRS.from_wkt(LOCAL_SITE)
    )
    frame.to_parquet(tmp_path / "site.parquet")
    with pytest.raises(InvalidInput, match="not WGS84 and cannot be converted"):
        open_source(tmp_path)


def test_an_undefined_crs_is_refused(tmp_path: Path) -> None:
    _points(crs=None).to_parquet(tmp_path / "nocrs.parquet")
    with pytest.raises(InvalidInput, match="CRS is undefined"):
        open_source(tmp_path)


def test_an_empty_partition_is_refused_by_name(tmp_path: Path) -> None:
    part = tmp_path / "month=2025-06" / "district=330411"
    part.mkdir(parents=True)
    _points().to_parquet(part / "part-00000.parquet")
    _points().iloc[:0].to_parquet(part / "part-00001.parquet")
    with pytest.raises(InvalidInput, match=r"part-00001\.parquet is an empty partition"):
        open_source(tmp_path)


def test_every_file_needs_the_id_column(tmp_path: Path) -> None:
    _points().drop(columns="id").to_parquet(tmp_path / "noid.parquet")
    with pytest.raises(InvalidInput, match="has no 'id' column"):
        open_source(tmp_path)


def test_files_disagreeing_on_crs_are_refused(tmp_path: Path) -> None:
    _points().to_parquet(tmp_path / "a.parquet")
    _points().to_crs("EPSG:32651").to_parquet(tmp_path / "b.parquet")
    with pytest.raises(InvalidInput, match=r"b\.parquet: its geometry"):
        open_source(tmp_path)


def test_polygons_are_not_points(tmp_path: Path) -> None:
    frame = _points(n=3)
    frame.to_parquet(tmp_path / "mixed.parquet")  # declares Point; then a polygon sneaks in
    table = pq.read_table(tmp_path / "mixed.parquet")
    wkb = table.column("geometry").to_pylist()
    wkb[2] = shapely.to_wkb(shapely.box(0, 0, 1, 1))
    table = table.set_column(2, "geometry", pa.array(wkb, pa.binary()))
    pq.write_table(table, tmp_path / "mixed.parquet")
    with pytest.raises(InvalidInput, match="row 2 holds a Polygon, not a point"):
        _read(tmp_path / "mixed.parquet")
    polygons = shapely.buffer(frame.geometry.to_numpy(), 0.001)
    frame.set_geometry(gpd.GeoSeries(polygons, crs=frame.crs)).to_parquet(tmp_path / "poly.parquet")
    with pytest.raises(InvalidInput, match="holds Polygon, not points"):
        open_source(tmp_path / "poly.parquet")


def test_metres_labelled_as_wgs84_are_refused(tmp_path: Path) -> None:
    utm = _points().to_crs("EPSG:32651").set_crs("EPSG:4326", allow_override=True)
    utm.to_parquet(tmp_path / "mislabelled.parquet")
    with pytest.raises(InvalidCoordinates, match=r"row 0 is at .* not a WGS84 lon/lat"):
        _read(tmp_path / "mislabelled.parquet")


def test_pieces_pack_row_groups_and_number_rows_within_the_file(tmp_path: Path) -> None:
    _points().to_parquet(tmp_path / "groups.parquet", row_group_size=100)
    source = open_source(tmp_path / "groups.parquet", rows_per_piece=250)
    assert [p.rows for p in source.pieces] == [200, 200, 100]
    assert [p.first_row for p in source.pieces] == [0, 200, 400]
    x, _ = read_points(source.pieces[1].read(), source.geometry, "groups")
    assert np.array_equal(x, LON[200:400])
