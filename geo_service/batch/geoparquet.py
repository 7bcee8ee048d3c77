"""GeoParquet 1.1 points: write WGS84 point tables with their ``geo`` metadata, read them back.

Why our own few functions rather than geopandas: the batch path streams millions of points
per task, and a point's WKB is 21 fixed bytes, so both directions are a numpy view instead of
a shapely object per row. Files carry the CRS (PROJJSON of EPSG:4326) and a ``bbox`` covering
column (GeoParquet 1.1), whose row-group statistics let readers skip what lies elsewhere.
Reading accepts any GeoParquet point column (WKB or the native ``point`` encoding) in any CRS
PROJ can convert to WGS84; CGCS2000 is taken as WGS84, as everywhere in the service.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError, ProjError

from geo_service.errors import InvalidCoordinates, InvalidInput

FloatArray = npt.NDArray[np.float64]

GEO_KEY: Final = b"geo"
VERSION: Final = "1.1.0"
GEOMETRY: Final = "geometry"
BBOX: Final = "bbox"
WGS84_EPSG: Final = (4326, 4490)  # CGCS2000 is taken as WGS84 (centimetres apart)
_WKB_POINT: Final = np.dtype([("order", "u1"), ("type", "<u4"), ("x", "<f8"), ("y", "<f8")])
_BBOX_TYPE: Final = pa.struct(
    [("xmin", pa.float64()), ("ymin", pa.float64()), ("xmax", pa.float64()), ("ymax", pa.float64())]
)
_ABSENT: Final = object()


@lru_cache(maxsize=1)
def _wgs84_projjson() -> dict[str, Any]:
    return dict(CRS.from_epsg(4326).to_json_dict())


def geo_metadata() -> bytes:
    """The ``geo`` schema metadata of our files: one WKB point column in EPSG:4326 with a
    ``bbox`` covering column."""
    column = {
        "encoding": "WKB",
        "geometry_types": ["Point"],
        "crs": _wgs84_projjson(),
        "covering": {
            "bbox": {
                "xmin": [BBOX, "xmin"],
                "ymin": [BBOX, "ymin"],
                "xmax": [BBOX, "xmax"],
                "ymax": [BBOX, "ymax"],
            }
        },
    }
    meta = {"version": VERSION, "primary_column": GEOMETRY, "columns": {GEOMETRY: column}}
    return json.dumps(meta).encode()


def point_wkb(x: FloatArray, y: FloatArray) -> pa.BinaryArray:
    """Little-endian 2D WKB points (what shapely.to_wkb writes), built as one numpy buffer."""
    n = len(x)
    rec = np.empty(n, dtype=_WKB_POINT)
    rec["order"] = 1
    rec["type"] = 1
    rec["x"] = x
    rec["y"] = y
    offsets = np.arange(0, _WKB_POINT.itemsize * (n + 1), _WKB_POINT.itemsize, dtype=np.int32)
    return pa.BinaryArray.from_buffers(
        pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(rec.tobytes())]
    )


def bbox_column(x: FloatArray, y: FloatArray) -> pa.StructArray:
    """The covering ``bbox`` of points: min and max are the point itself."""
    xs, ys = pa.array(x, pa.float64()), pa.array(y, pa.float64())
    return pa.StructArray.from_arrays([xs, ys, xs, ys], fields=list(_BBOX_TYPE))


def with_points(table: pa.Table, x: FloatArray, y: FloatArray) -> pa.Table:
    """``table`` plus ``geometry`` (WKB points) and ``bbox`` columns and the ``geo`` metadata."""
    out = table.append_column(GEOMETRY, point_wkb(x, y)).append_column(BBOX, bbox_column(x, y))
    meta = dict(out.schema.metadata or {})
    meta[GEO_KEY] = geo_metadata()
    return out.replace_schema_metadata(meta)


def open_writer(path: Path, schema: pa.Schema) -> pq.ParquetWriter:
    """A Parquet writer with statistics (the bbox column's let readers prune row groups)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return pq.ParquetWriter(path, schema, compression="zstd", write_statistics=True)


def write_atomic(path: Path, table: pa.Table, row_group_rows: int = 256 * 1024) -> None:
    """Write ``table`` to ``path`` through a hidden temporary name and a rename, so a task
    killed mid-write leaves no half file and its retry simply replaces the whole file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    pq.write_table(table, tmp, compression="zstd", row_group_size=row_group_rows)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class GeoColumn:
    """The primary geometry column of a GeoParquet source, as its ``geo`` metadata says.

    ``crs`` is None when points are WGS84 already, else the PROJJSON to convert from.
    """

    name: str
    encoding: str  # WKB | point
    crs: str | None
    crs_name: str
    covering: str | None  # the bbox covering column, if any

    @property
    def columns(self) -> tuple[str, ...]:
        """The physical columns that hold the geometry (and its covering)."""
        return (self.name,) if self.covering is None else (self.name, self.covering)


def _resolve_crs(value: object, where: str) -> tuple[str | None, str]:
    if value is _ABSENT:  # the spec's default: OGC:CRS84, longitude/latitude on WGS84
        return None, "OGC:CRS84"
    if value is None:
        raise InvalidInput(
            f"{where}: the geometry column's CRS is undefined (null), so we cannot tell whether "
            "its points are WGS84; write the file with its CRS"
        )
    try:
        crs = CRS.from_user_input(value)
    except CRSError as exc:
        raise InvalidInput(f"{where}: the geometry column's CRS cannot be read: {exc}") from exc
    for code in WGS84_EPSG:
        if crs.equals(CRS.from_epsg(code), ignore_axis_order=True):
            return None, crs.name
    try:
        Transformer.from_crs(crs, CRS.from_epsg(4326), always_xy=True)
    except (ProjError, CRSError) as exc:
        raise InvalidInput(
            f"{where}: points are in {crs.name!r} ({crs.type_name}), which is not WGS84 and "
            "cannot be converted to it"
        ) from exc
    return crs.to_json(), crs.name


def geo_column(schema: pa.Schema, where: str) -> GeoColumn:
    """The point column of a file's schema, or :class:`InvalidInput` saying why there is none
    usable (no ``geo`` metadata, a missing column, non-point types, an unconvertible CRS)."""
    raw = (schema.metadata or {}).get(GEO_KEY)
    if raw is None:
        raise InvalidInput(
            f"{where} has no geometry column: it is Parquet without GeoParquet 'geo' metadata "
            "(write it with geopandas' to_parquet, or with `geo-service batch export`)"
        )
    try:
        meta = json.loads(raw)
        name = meta["primary_column"]
        column = meta["columns"][name]
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(f"{where}: its GeoParquet 'geo' metadata is malformed ({exc})") from exc
    if name not in schema.names:
        raise InvalidInput(f"{where}: the geometry column {name!r} of its metadata is missing")
    encoding = str(column.get("encoding", "WKB"))
    if encoding.lower() not in ("wkb", "point"):
        raise InvalidInput(
            f"{where}: geometry column {name!r} is encoded as {encoding!r}; points are read "
            "from WKB or the native 'point' encoding"
        )
    types = [str(t) for t in column.get("geometry_types", [])]
    if any(t not in ("Point", "Point Z") for t in types):
        raise InvalidInput(
            f"{where}: geometry column {name!r} holds {', '.join(types)}, not points"
        )
    crs, crs_name = _resolve_crs(column.get("crs", _ABSENT), where)
    covering = column.get("covering", {}).get("bbox", {}).get("xmin", [None])[0]
    return GeoColumn(name, encoding.lower(), crs, crs_name, covering)


@lru_cache(maxsize=8)
def _transformer(projjson: str) -> Transformer:
    return Transformer.from_crs(CRS.from_json(projjson), CRS.from_epsg(4326), always_xy=True)


def _wkb_chunk(chunk: pa.Array, first_row: int, where: str) -> tuple[FloatArray, FloatArray]:
    n = len(chunk)
    if n and chunk.null_count == 0 and pa.types.is_binary(chunk.type):
        offsets = np.frombuffer(chunk.buffers()[1], dtype=np.int32)[chunk.offset :][: n + 1]
        if np.all(np.diff(offsets) == _WKB_POINT.itemsize):
            data = chunk.buffers()[2]
            start = int(offsets[0])
            rec = np.frombuffer(data, dtype=_WKB_POINT, count=n, offset=start)
            if np.all(rec["order"] == 1) and np.all(rec["type"] == 1):
                return rec["x"].astype(np.float64), rec["y"].astype(np.float64)
    geoms = shapely.from_wkb(chunk.to_numpy(zero_copy_only=False))
    kind = shapely.get_type_id(geoms)
    bad = (kind != shapely.GeometryType.POINT) & (kind != shapely.GeometryType.MISSING)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InvalidInput(
            f"{where}: row {first_row + i} holds a {geoms[i].geom_type}, not a point",
            details={"row": first_row + i},
        )
    x = np.full(n, np.nan)
    y = np.full(n, np.nan)
    present = kind == shapely.GeometryType.POINT
    present[present] = ~shapely.is_empty(geoms[present])
    x[present] = shapely.get_x(geoms[present])
    y[present] = shapely.get_y(geoms[present])
    return x, y


def read_points(
    table: pa.Table, geo: GeoColumn, where: str, first_row: int = 0
) -> tuple[FloatArray, FloatArray]:
    """WGS84 lon/lat of each row's point (NaN for a null or empty point).

    Raises :class:`InvalidInput` naming the row for a non-point geometry and
    :class:`InvalidCoordinates` for points that are not lon/lat after conversion (a file
    whose metadata says WGS84 while it holds metres, say). ``first_row`` numbers the rows of
    ``table`` within the file, for those messages.
    """
    column = table.column(geo.name)
    xs: list[FloatArray] = []
    ys: list[FloatArray] = []
    row = first_row
    for chunk in column.chunks:
        if geo.encoding == "point":
            flat = chunk.flatten() if pa.types.is_struct(chunk.type) else None
            if flat is None or len(flat) < 2:
                raise InvalidInput(f"{where}: the 'point' column is not a struct of x and y")
            valid = np.asarray(chunk.is_valid())
            x = np.where(valid, flat[0].to_numpy(zero_copy_only=False), np.nan)
            y = np.where(valid, flat[1].to_numpy(zero_copy_only=False), np.nan)
        else:
            if pa.types.is_large_binary(chunk.type):
                chunk = chunk.cast(pa.binary())
            x, y = _wkb_chunk(chunk, row, where)
        xs.append(np.asarray(x, dtype=np.float64))
        ys.append(np.asarray(y, dtype=np.float64))
        row += len(chunk)
    x = np.concatenate(xs) if xs else np.zeros(0)
    y = np.concatenate(ys) if ys else np.zeros(0)
    if geo.crs is not None:
        finite = np.isfinite(x) & np.isfinite(y)
        tx, ty = _transformer(geo.crs).transform(x[finite], y[finite])
        x, y = x.copy(), y.copy()
        x[finite], y[finite] = tx, ty
    given = np.isfinite(x) | np.isfinite(y)
    bad = given & ~((np.abs(x) <= 180.0) & (np.abs(y) <= 90.0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InvalidCoordinates(
            f"{where}: row {first_row + i} is at ({float(x[i])}, {float(y[i])}), not a WGS84 "
            f"lon/lat (the file's CRS is {geo.crs_name}); {int(bad.sum())} such row(s)",
            details={"row": first_row + i},
        )
    return x, y
