"""Read a boundary layout file (GeoJSON, GeoPackage, zipped Shapefile) into WGS84.

What the file is and holds is checked first (:mod:`geo_service.boundaries.safety`: content
sniffed, features and vertices counted before GDAL or GEOS build a geometry, zips unpacked
within limits, all from ``GEO_LAYOUT_*``); then non-polygonal or nested collections and
non-finite coordinates are refused before GEOS sees them. Coordinates already in
WGS84/CGCS2000 are kept bit for bit (no reprojection, no rounding). Messages name the file as
the caller knows it, never a server path.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyogrio
import pyogrio.raw
import shapely
from pyogrio.errors import DataLayerError, DataSourceError

from geo_service.boundaries import safety
from geo_service.coords import check_lonlat, normalize_crs, to_wgs84
from geo_service.errors import InvalidCoordinates, InvalidGeometry, InvalidInput, TooLarge
from geo_service.settings import LayoutLimitSettings

REQUIRED_COLUMNS = ("code", "name", "level", "parent_code")
# the default per-feature limit (GEO_LAYOUT_MAX_VERTICES_PER_FEATURE), for geometries that
# arrive as JSON bodies rather than files (a planner's grid edit)
MAX_VERTICES_PER_FEATURE = LayoutLimitSettings.model_fields["max_vertices_per_feature"].default
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


def read_layout(
    path: str | Path,
    crs: str | None = None,
    layer: str | None = None,
    limits: LayoutLimitSettings | None = None,
) -> Layout:
    """Read ``path`` and convert it to WGS84, within ``limits`` (``GEO_LAYOUT_*`` when None).

    ``crs`` (wgs84, cgcs2000, gcj02, bd09, EPSG:n) says what the coordinates are in and wins
    over the file's own declaration: GeoJSON always claims WGS84, even when its coordinates
    come from a GCJ-02 phone map. Without ``crs`` the file's CRS is used; a file that declares
    none (a Shapefile without .prj) is refused.
    """
    p = Path(path)
    limits = limits or LayoutLimitSettings()
    if not p.is_file():
        raise InvalidInput(f"no such file: {p.name}")
    if p.suffix.lower() != ".zip":
        return _read_plain(p, p.name, crs, layer, limits)
    safety.check_content(p, p.name)
    with tempfile.TemporaryDirectory(prefix="geo-layout-") as tmp:
        folder = Path(tmp)
        safety.extract_zip(p, folder, limits, p.name)
        inner = safety.layout_in(folder)
        name = f"{p.name}:{inner.relative_to(folder).as_posix()}"
        return _read_plain(inner, name, crs, layer, limits)


def _read_plain(
    p: Path, name: str, crs: str | None, layer: str | None, limits: LayoutLimitSettings
) -> Layout:
    """Check and read one layout file that is not a zip; ``name`` is how messages call it."""
    safety.check_content(p, name)
    geojson = p.suffix.lower() in safety.GEOJSON_SUFFIXES
    source = f"GeoJSON:{p}" if geojson else str(p)  # the driver the content was checked for
    try:
        if geojson:
            safety.scan_geojson(p, name, limits)
            info = pyogrio.read_info(source, layer=layer)
        else:
            info = pyogrio.read_info(source, layer=layer, force_feature_count=True)
            _check_ogr(p, source, name, layer, int(info.get("features", -1)), limits)
        declared = info.get("crs")
        frame = pyogrio.read_dataframe(source, layer=layer)
    except (DataSourceError, DataLayerError) as exc:
        message = str(exc).replace(source, name).replace(str(p), name)
        raise InvalidInput(f"cannot read {name} as a vector layout: {message}") from exc
    if crs is not None:
        crs_name = normalize_crs(crs)
    elif not declared:
        raise InvalidInput(
            f"{name} declares no coordinate system (a Shapefile without .prj?): give crs"
        )
    else:
        epsg = gpd.GeoSeries([], crs=declared).crs.to_epsg()
        if not epsg:
            raise InvalidInput(f"{name} has a CRS with no EPSG code ({declared}): give crs")
        crs_name = normalize_crs(f"EPSG:{epsg}")
    return Layout(prepare_frame(frame, crs_name, limits), crs_name)


def _check_ogr(
    p: Path, source: str, name: str, layer: str | None, features: int, limits: LayoutLimitSettings
) -> None:
    """Features and vertices of a GeoPackage or Shapefile against ``limits``, from GDAL's
    count and the geometries' WKB, before any shapely geometry is built. A file too small to
    hold more vertices than a limit (16 bytes a vertex at least) is not walked."""
    if features > limits.max_features:
        raise TooLarge(
            f"{name} holds {features} features, over the limit of {limits.max_features} "
            "(GEO_LAYOUT_MAX_FEATURES)",
            details={"file": name, "limit": limits.max_features},
        )
    size = p.stat().st_size
    if size // 16 <= min(limits.max_vertices_per_feature, limits.max_vertices_total):
        return
    _, _, wkb, _ = pyogrio.raw.read(source, layer=layer, columns=[], read_geometry=True)
    safety.check_wkb(list(wkb), name, limits)


def prepare_frame(
    frame: pd.DataFrame, crs_name: str, limits: LayoutLimitSettings | None = None
) -> gpd.GeoDataFrame:
    """Check the schema and geometry sanity, convert to WGS84, normalise the columns."""
    limits = limits or LayoutLimitSettings()
    if len(frame) > limits.max_features:
        raise TooLarge(
            f"{len(frame)} features, over the limit of {limits.max_features} "
            "(GEO_LAYOUT_MAX_FEATURES)"
        )
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
    check_geometry_sanity(geoms, codes, limits)
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


def check_geometry_sanity(
    geoms: npt.NDArray[np.object_],
    codes: npt.NDArray[np.str_],
    limits: LayoutLimitSettings | None = None,
) -> None:
    """Refuse what GEOS should never be asked about: wrong types, NaN/inf, huge vertex counts
    (the files' own checks ran before; this holds for frames built otherwise)."""
    limits = limits or LayoutLimitSettings()
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
    per_feature, in_all = limits.max_vertices_per_feature, limits.max_vertices_total
    if counts.max(initial=0) > per_feature:
        i = int(np.argmax(counts))
        raise TooLarge(
            f"feature {codes[i]!r} has {counts[i]} vertices, over the limit of {per_feature} "
            "per feature (GEO_LAYOUT_MAX_VERTICES_PER_FEATURE)"
        )
    if counts.sum() > in_all:
        raise TooLarge(
            f"layout has {counts.sum()} vertices, over the limit of {in_all} "
            "(GEO_LAYOUT_MAX_VERTICES_TOTAL)"
        )
    coords, index = shapely.get_coordinates(geoms, return_index=True)
    finite = np.isfinite(coords).all(axis=1)
    if not finite.all():
        i = int(index[np.flatnonzero(~finite)[0]])
        raise InvalidCoordinates(
            f"feature {codes[i]!r} has non-finite coordinates (NaN or infinity)",
            details={"code": str(codes[i])},
        )
