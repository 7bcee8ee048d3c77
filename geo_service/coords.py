"""CRS at the edge: convert WGS84 / CGCS2000 / GCJ-02 / BD-09 / EPSG:n coordinates to WGS84 arrays.

GCJ-02 (WeChat, AMap, Tencent) and BD-09 (Baidu) are the obfuscated datums Chinese phone maps
give. The forward transforms come from ``coordtransform`` (C batch functions); its GCJ-02 → WGS84
inverse is the one-step approximation (metre-level error), so :func:`to_wgs84` refines it by
fixed-point iteration on the library's own forward transform (Caijun 2014), to well under 1 mm.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

import coordTransform as ct
import numpy as np
import numpy.typing as npt
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

from geo_service.errors import GeoServiceError, InvalidCoordinates, UnknownCRS

FloatArray = npt.NDArray[np.float64]

CRS_NAMES: Final = ("wgs84", "cgcs2000", "gcj02", "bd09")
_ALIASES: Final = {
    "wgs84": "wgs84",
    "wgs-84": "wgs84",
    "epsg:4326": "wgs84",
    "cgcs2000": "cgcs2000",
    "epsg:4490": "cgcs2000",
    "gcj02": "gcj02",
    "gcj-02": "gcj02",
    "bd09": "bd09",
    "bd-09": "bd09",
}
_EPSG = re.compile(r"^epsg:(\d{4,6})$")
_MAX_ITER: Final = 8
_TOL_DEG: Final = 1e-10  # ~0.01 mm


def normalize_crs(name: str | None) -> str:
    """Canonical name of a CRS given by a caller: one of :data:`CRS_NAMES` or ``EPSG:n``.

    Raises :class:`UnknownCRS` naming the value when it is neither.
    """
    key = (name or "wgs84").strip().lower()
    if key in _ALIASES:
        return _ALIASES[key]
    match = _EPSG.match(key)
    if match:
        _epsg_transformer(int(match.group(1)))  # raises UnknownCRS if PROJ does not know it
        return f"EPSG:{match.group(1)}"
    raise UnknownCRS(
        f"unknown crs {name!r}: use one of {', '.join(CRS_NAMES)} or EPSG:<code>",
        details={"crs": name},
    )


@lru_cache(maxsize=64)
def _epsg_transformer(code: int) -> Transformer:
    try:
        return Transformer.from_crs(CRS.from_epsg(code), CRS.from_epsg(4326), always_xy=True)
    except CRSError as exc:
        raise UnknownCRS(f"unknown crs 'EPSG:{code}': {exc}", details={"crs": code}) from exc


def _as_arrays(lons: npt.ArrayLike, lats: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    x = np.ascontiguousarray(lons, dtype=np.float64).reshape(-1)
    y = np.ascontiguousarray(lats, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise InvalidCoordinates(f"lons and lats differ in length ({x.size} vs {y.size})")
    return x, y


def check_lonlat(lons: FloatArray, lats: FloatArray) -> None:
    """Raise :class:`InvalidCoordinates` naming the first point that is not a finite lon/lat."""
    # one comparison per axis: NaN and ±inf fail ``<=`` as well as out-of-range values do
    bad = ~((np.abs(lons) <= 180.0) & (np.abs(lats) <= 90.0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InvalidCoordinates(
            f"point {i} has invalid coordinates (lon={float(lons[i])}, lat={float(lats[i])}): "
            "longitude must be finite within [-180, 180] and latitude within [-90, 90]",
            details={"index": i, "count": int(bad.sum())},
        )


def wgs84_to_gcj02(lons: npt.ArrayLike, lats: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """WGS84 → GCJ-02 (identity outside China, as the obfuscation is defined)."""
    x, y = _as_arrays(lons, lats)
    gx, gy = ct.wgs84_to_gcj02(x, y)
    return np.asarray(gx, dtype=np.float64), np.asarray(gy, dtype=np.float64)


def wgs84_to_bd09(lons: npt.ArrayLike, lats: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """WGS84 → BD-09 (through GCJ-02)."""
    gx, gy = wgs84_to_gcj02(lons, lats)
    bx, by = ct.gcj02_to_bd09(gx, gy)
    return np.asarray(bx, dtype=np.float64), np.asarray(by, dtype=np.float64)


def gcj02_to_wgs84(lons: npt.ArrayLike, lats: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """GCJ-02 → WGS84, iterated to the fixed point of the forward transform (< 0.01 mm)."""
    gx, gy = _as_arrays(lons, lats)
    wx, wy = (np.asarray(v, dtype=np.float64) for v in ct.gcj02_to_wgs84(gx, gy))
    for _ in range(_MAX_ITER):
        fx, fy = wgs84_to_gcj02(wx, wy)
        dx, dy = fx - gx, fy - gy
        wx, wy = wx - dx, wy - dy
        if (
            float(np.max(np.abs(dx), initial=0.0)) < _TOL_DEG
            and float(np.max(np.abs(dy), initial=0.0)) < _TOL_DEG
        ):
            break
    return wx, wy


def bd09_to_wgs84(lons: npt.ArrayLike, lats: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """BD-09 → WGS84: BD-09 → GCJ-02 refined the same way, then GCJ-02 → WGS84."""
    bx, by = _as_arrays(lons, lats)
    gx, gy = (np.asarray(v, dtype=np.float64) for v in ct.bd09_to_gcj02(bx, by))
    for _ in range(_MAX_ITER):
        fx, fy = (np.asarray(v, dtype=np.float64) for v in ct.gcj02_to_bd09(gx, gy))
        dx, dy = fx - bx, fy - by
        gx, gy = gx - dx, gy - dy
        if (
            float(np.max(np.abs(dx), initial=0.0)) < _TOL_DEG
            and float(np.max(np.abs(dy), initial=0.0)) < _TOL_DEG
        ):
            break
    return gcj02_to_wgs84(gx, gy)


def to_wgs84(
    lons: npt.ArrayLike, lats: npt.ArrayLike, crs: str | None = "wgs84"
) -> tuple[FloatArray, FloatArray]:
    """Convert coordinates in ``crs`` to WGS84 lon/lat arrays, refusing non-finite input.

    CGCS2000 is taken as WGS84 (they differ by centimetres, below any grid's precision), so
    official survey coordinates are stored exactly as given.
    """
    name = normalize_crs(crs)
    x, y = _as_arrays(lons, lats)
    if name.startswith("EPSG:"):
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            check_lonlat(x, y)
        tx, ty = _epsg_transformer(int(name[5:])).transform(x, y)
        x, y = np.asarray(tx, dtype=np.float64), np.asarray(ty, dtype=np.float64)
    else:
        check_lonlat(x, y)
        if name == "gcj02":
            x, y = gcj02_to_wgs84(x, y)
        elif name == "bd09":
            x, y = bd09_to_wgs84(x, y)
        else:
            return x, y  # WGS84/CGCS2000: already checked, stored as given
    check_lonlat(x, y)
    return x, y


@dataclass(frozen=True)
class RowsInWGS84:
    """Rows converted a CRS at a time (:func:`rows_to_wgs84`): each row's canonical CRS name
    (None where it is unknown), WGS84 lon/lat (NaN where not converted), and why rows failed."""

    crs: npt.NDArray[np.object_]
    lon: FloatArray
    lat: FloatArray
    crs_errors: dict[int, str]  # row → why its CRS is unknown
    point_errors: dict[int, str]  # row → why its coordinates were refused in a known CRS


def rows_to_wgs84(
    lons: npt.ArrayLike,
    lats: npt.ArrayLike,
    crs_names: Sequence[str | None] | npt.NDArray[np.object_],
    convert: npt.NDArray[np.bool_] | None = None,
) -> RowsInWGS84:
    """Convert rows each naming its own CRS, refusing bad rows instead of raising.

    Why: intake and the history import get many rows in a few CRSs; converting a CRS's rows in
    one call is fast, and only a group that fails is retried row by row to tell the bad rows
    from the good. ``convert`` (default: all) selects the rows whose coordinates are converted;
    the others only get their CRS named (the import leaves rows without numbers alone).
    """
    x, y = _as_arrays(lons, lats)
    n = len(x)
    names = np.asarray(crs_names, dtype=object)
    wanted = np.ones(n, dtype=bool) if convert is None else np.asarray(convert, dtype=bool)
    crs = np.full(n, None, dtype=object)
    out_x, out_y = np.full(n, np.nan), np.full(n, np.nan)
    crs_errors: dict[int, str] = {}
    point_errors: dict[int, str] = {}
    groups: dict[str, list[int]] = {}
    for raw in dict.fromkeys(names.tolist()):
        rows = np.flatnonzero(names == raw)
        try:
            canonical = normalize_crs(raw)
        except GeoServiceError as exc:
            crs_errors.update(dict.fromkeys(rows.tolist(), exc.message))
            continue
        crs[rows] = canonical
        groups.setdefault(canonical, []).extend(rows[wanted[rows]].tolist())
    for canonical, members in groups.items():
        idx = np.array(sorted(members), dtype=np.intp)
        if len(idx) == 0:
            continue
        try:
            out_x[idx], out_y[idx] = to_wgs84(x[idx], y[idx], canonical)
            continue
        except GeoServiceError:
            pass
        for i in idx.tolist():  # find the bad ones
            try:
                (out_x[i],), (out_y[i],) = to_wgs84(x[i : i + 1], y[i : i + 1], canonical)
            except GeoServiceError as exc:
                point_errors[i] = exc.message
    return RowsInWGS84(crs, out_x, out_y, crs_errors, point_errors)
