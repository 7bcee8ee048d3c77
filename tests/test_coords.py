"""Coordinates from Chinese phone maps (GCJ-02, BD-09) and EPSG codes arrive as WGS84."""

from __future__ import annotations

import math

import numpy as np
import prcoords
import pytest

from geo_service.coords import (
    normalize_crs,
    rows_to_wgs84,
    to_wgs84,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)
from geo_service.errors import InvalidCoordinates, UnknownCRS

M_PER_DEG = 111_320.0


def _metres(dx: np.ndarray, dy: np.ndarray, lat: np.ndarray) -> np.ndarray:
    return np.hypot(dx * M_PER_DEG * np.cos(np.radians(lat)), dy * M_PER_DEG)


@pytest.fixture(scope="module")
def china_points() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    return rng.uniform(74, 134, 20_000), rng.uniform(18, 53, 20_000)


@pytest.mark.parametrize("crs, forward", [("gcj02", wgs84_to_gcj02), ("bd09", wgs84_to_bd09)])
def test_round_trip_error_is_under_half_a_metre(china_points, crs, forward) -> None:
    lon, lat = china_points
    fx, fy = forward(lon, lat)
    assert _metres(fx - lon, fy - lat, lat).min() > 1.0  # the obfuscation really moved them
    bx, by = to_wgs84(fx, fy, crs)
    assert _metres(bx - lon, by - lat, lat).max() <= 0.5
    assert _metres(bx - lon, by - lat, lat).max() < 0.001  # in practice: well under 1 mm


def test_gcj02_inverse_agrees_with_prcoords_precise_inverse(china_points) -> None:
    lon, lat = china_points
    gx, gy = wgs84_to_gcj02(lon[:500], lat[:500])
    ours = np.column_stack(to_wgs84(gx, gy, "gcj02"))
    ref = np.array([prcoords.gcj_wgs_bored((y, x)) for x, y in zip(gx, gy, strict=True)])
    assert _metres(ours[:, 0] - ref[:, 1], ours[:, 1] - ref[:, 0], lat[:500]).max() < 0.01


def test_wgs84_and_cgcs2000_are_kept_bit_for_bit() -> None:
    lon = np.array([120.123456789012345, 120.7])
    lat = np.array([30.987654321098765, 30.75])
    for crs in ("wgs84", "cgcs2000", "EPSG:4326", "WGS-84"):
        x, y = to_wgs84(lon, lat, crs)
        assert np.array_equal(x, lon) and np.array_equal(y, lat)


def test_projected_epsg_codes_are_converted() -> None:
    # Web Mercator metres of (120.7, 30.75)
    x = 120.7 * math.pi / 180 * 6378137.0
    y = math.log(math.tan(math.pi / 4 + math.radians(30.75) / 2)) * 6378137.0
    lon, lat = to_wgs84([x], [y], "EPSG:3857")
    assert lon[0] == pytest.approx(120.7, abs=1e-9)
    assert lat[0] == pytest.approx(30.75, abs=1e-9)


@pytest.mark.parametrize("name", ["gcj-03", "", "EPSG:999999", "utm"])
def test_unknown_crs_is_refused_by_name(name: str) -> None:
    if name == "":
        assert normalize_crs(name) == "wgs84"  # empty means the default
        return
    with pytest.raises(UnknownCRS, match="unknown crs"):
        normalize_crs(name)


@pytest.mark.parametrize(
    "lon, lat", [(math.nan, 30.0), (120.0, math.inf), (181.0, 30.0), (120.0, -91.0)]
)
def test_impossible_coordinates_are_refused_naming_the_point(lon: float, lat: float) -> None:
    with pytest.raises(InvalidCoordinates, match="point 1 has invalid coordinates"):
        to_wgs84([120.0, lon], [30.0, lat], "gcj02")


def test_refusals_print_plain_numbers_not_numpy_reprs() -> None:
    with pytest.raises(InvalidCoordinates) as err:
        to_wgs84(np.array([120.0, 200.0]), np.array([30.0, 30.5]), "wgs84")
    assert "point 1 has invalid coordinates (lon=200.0, lat=30.5)" in err.value.message
    assert "np." not in err.value.message


def test_rows_naming_their_own_crs_convert_as_their_crs_does_alone() -> None:
    """Intake and the history import convert a CRS's rows together; the answer is the one
    each CRS gives on its own, and spellings of one CRS are one CRS."""
    lon = np.array([120.70, 120.71, 120.72, 120.73, 120.74])
    lat = np.array([30.70, 30.71, 30.72, 30.73, 30.74])
    names = ["gcj02", "WGS84", "GCJ-02", "bd09", "EPSG:4326"]
    got = rows_to_wgs84(lon, lat, names)
    assert got.crs.tolist() == ["gcj02", "wgs84", "gcj02", "bd09", "wgs84"]
    for rows, crs in (([0, 2], "gcj02"), ([1, 4], "wgs84"), ([3], "bd09")):
        x, y = to_wgs84(lon[rows], lat[rows], crs)
        assert got.lon[rows].tolist() == x.tolist() and got.lat[rows].tolist() == y.tolist()
    assert got.crs_errors == {} and got.point_errors == {}


def test_bad_rows_are_told_apart_from_the_good_ones_of_their_crs() -> None:
    got = rows_to_wgs84([120.7, 200.0, 120.8, 120.9], [30.7, 30.7, 30.8, 30.9],
                        ["gcj02", "gcj02", "gcj-03", "gcj02"])  # fmt: skip
    assert sorted(got.point_errors) == [1] and "invalid coordinates" in got.point_errors[1]
    assert sorted(got.crs_errors) == [2] and "unknown crs 'gcj-03'" in got.crs_errors[2]
    assert got.crs.tolist() == ["gcj02", "gcj02", None, "gcj02"]
    assert np.isnan(got.lon[[1, 2]]).all() and np.isfinite(got.lon[[0, 3]]).all()
    x, _ = to_wgs84([120.7, 120.9], [30.7, 30.9], "gcj02")
    assert got.lon[[0, 3]].tolist() == x.tolist()


def test_rows_left_out_of_conversion_keep_only_their_crs_name() -> None:
    got = rows_to_wgs84([120.7, math.nan], [30.7, 30.7], ["bd09", "bd-09"],
                        convert=np.array([True, False]))  # fmt: skip
    assert got.crs.tolist() == ["bd09", "bd09"]
    assert np.isfinite(got.lon[0]) and np.isnan(got.lon[1])
    assert got.point_errors == {}  # a row without numbers is not a refused point
