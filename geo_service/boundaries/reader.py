"""Read a boundary layout file (GeoJSON, GeoPackage, zipped Shapefile) into WGS84.

Pathological input is refused before GEOS sees it: non-polygonal or nested collections,
non-finite coordinates, more vertices than the limit. Coordinates already in WGS84/CGCS2000
are kept bit for bit (no reprojection, no rounding).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyogrio
import shapely
from pyogrio.errors import DataLayerError, DataSourceError

from geo_service.coords import check_lonlat, normalize_crs, to_wgs84
from geo_service.errors import InvalidCoordinates, InvalidGeometry, InvalidInput, TooLarge

REQUIRED_COLUMNS = ("code", "name", "level", "parent_code")
MAX_VERTICES_PER_FEATURE = 500_000
MAX_VERTICES_TOTAL = 20_000_000
MAX_FEATURES = 1_000_000
MAX_UNZIPPED_BYTES = 2 << 30
MAX_ZIP_RATIO = 200
_TRUNCATED = {
    "parent_cod": "parent_code",
    "population": "population",
    "households": "households",
    "grid_worke": "grid_worker",
    "grid_leade": "grid_leader",
}
_TYPE_NAMES = {
    -1: "no geometry",
    0: "Point",
    1: "LineString",
    2: "LinearRing",
    4: "MultiPoint",
    5: "MultiLineString",
    7: "GeometryCollection",
}


@dataclass(frozen=True)
class Layout:
    """A layout read from a file: WGS84 frame with the required columns, and its source CRS."""

    frame: gpd.GeoDataFrame
    source_crs: str


def _check_zip(path: Path) -> None:
    """Refuse zips with absolute/parent paths or that would inflate past the limits."""
    try:
        with zipfile.ZipFile(path) as zf:
            total = 0
            for info in zf.infolist():
                name = info.filename
                if name.startswith("/") or ".." in Path(name).parts:
                    raise InvalidInput(f"zip member {name!r} points outside the archive")
                total += info.file_size
                if info.compress_size and info.file_size / info.compress_size > MAX_ZIP_RATIO:
                    raise TooLarge(f"zip member {name!r} inflates over {MAX_ZIP_RATIO}x: refused")
            if total > MAX_UNZIPPED_BYTES:
                raise TooLarge(f"zip would unpack to {total} bytes, over {MAX_UNZIPPED_BYTES}")
    except zipfile.BadZipFile as exc:
        raise InvalidInput(f"{path.name} is not a valid zip file: {exc}") from exc


def read_layout(path: str | Path, crs: str | None = None, layer: str | None = None) -> Layout:
    """Read ``path`` and convert it to WGS84.

    ``crs`` (wgs84, cgcs2000, gcj02, bd09, EPSG:n) says what the coordinates are in and wins
    over the file's own declaration: GeoJSON always claims WGS84, even when its coordinates
    come from a GCJ-02 phone map. Without ``crs`` the file's CRS is used; a file that declares
    none (a Shapefile without .prj) is refused.
    """
    p = Path(path)
    if not p.exists():
        raise InvalidInput(f"no such file: {p.name}")
    source = str(p)
    if p.suffix.lower() == ".zip":
        _check_zip(p)
        source = f"/vsizip/{p.resolve()}"
    try:
        declared = pyogrio.read_info(source, layer=layer).get("crs")
        frame = pyogrio.read_dataframe(source, layer=layer)
    except (DataSourceError, DataLayerError) as exc:
        raise InvalidInput(f"cannot read {p.name} as a vector layout: {exc}") from exc
    if crs is not None:
        crs_name = normalize_crs(crs)
    elif not declared:
        raise InvalidInput(
            f"{p.name} declares no coordinate system (a Shapefile without .prj?): give crs"
        )
    else:
        epsg = gpd.GeoSeries([], crs=declared).crs.to_epsg()
        if not epsg:
            raise InvalidInput(f"{p.name} has a CRS with no EPSG code ({declared}): give crs")
        crs_name = normalize_crs(f"EPSG:{epsg}")
    return Layout(prepare_frame(frame, crs_name), crs_name)


def prepare_frame(frame: pd.DataFrame, crs_name: str) -> gpd.GeoDataFrame:
    """Check the schema and geometry sanity, convert to WGS84, normalise the columns."""
    if len(frame) > MAX_FEATURES:
        raise TooLarge(f"{len(frame)} features, over the limit of {MAX_FEATURES}")
    # Shapefile (dBASE) field names stop at 10 characters
    frame = frame.rename(columns={k: v for k, v in _TRUNCATED.items() if v not in frame.columns})
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise InvalidInput(
            f"layout lacks the column(s) {', '.join(missing)}: every feature needs "
            "code, name, level and parent_code",
            details={"missing": missing},
        )
    gdf = gpd.GeoDataFrame(frame, geometry="geometry")
    geoms = gdf.geometry.to_numpy()
    codes = gdf["code"].astype(str).to_numpy()
    check_geometry_sanity(geoms, codes)
    name = normalize_crs(crs_name)
    coords = shapely.get_coordinates(geoms)
    if name in ("wgs84", "cgcs2000"):
        try:
            check_lonlat(coords[:, 0], coords[:, 1])
        except InvalidCoordinates as exc:
            raise InvalidCoordinates(
                f"coordinates are not longitude/latitude ({exc.message}): wrong crs?"
            ) from exc
    else:
        x, y = to_wgs84(coords[:, 0], coords[:, 1], name)
        geoms = shapely.set_coordinates(geoms.copy(), np.column_stack([x, y]))
    out = gpd.GeoDataFrame(gdf.drop(columns="geometry"), geometry=geoms, crs="EPSG:4326")
    for col in ("code", "name", "level"):
        out[col] = out[col].astype(str).str.strip()
    out["parent_code"] = out["parent_code"].fillna("").astype(str).str.strip()
    out.loc[out["parent_code"].isin(["None", "nan"]), "parent_code"] = ""
    return out


def check_geometry_sanity(geoms: npt.NDArray[np.object_], codes: npt.NDArray[np.str_]) -> None:
    """Refuse what GEOS should never be asked about: wrong types, NaN/inf, huge vertex counts."""
    types = shapely.get_type_id(geoms)
    bad = ~np.isin(types, (3, 6))  # Polygon, MultiPolygon
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InvalidGeometry(
            f"feature {codes[i]!r}: {_TYPE_NAMES.get(int(types[i]), 'geometry')} where a "
            "Polygon or MultiPolygon is required",
            details={"code": str(codes[i])},
        )
    counts = shapely.get_num_coordinates(geoms)
    if counts.max(initial=0) > MAX_VERTICES_PER_FEATURE:
        i = int(np.argmax(counts))
        raise TooLarge(
            f"feature {codes[i]!r} has {counts[i]} vertices, over {MAX_VERTICES_PER_FEATURE}"
        )
    if counts.sum() > MAX_VERTICES_TOTAL:
        raise TooLarge(f"layout has {counts.sum()} vertices, over {MAX_VERTICES_TOTAL}")
    coords, index = shapely.get_coordinates(geoms, return_index=True)
    finite = np.isfinite(coords).all(axis=1)
    if not finite.all():
        i = int(index[np.flatnonzero(~finite)[0]])
        raise InvalidCoordinates(
            f"feature {codes[i]!r} has non-finite coordinates (NaN or infinity)",
            details={"code": str(codes[i])},
        )
