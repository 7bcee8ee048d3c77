"""What a layout file may be and hold, checked before GDAL or GEOS is asked about it.

One set of checks for every reader (planners' uploads and ``boundaries import``), each limit
once, in :class:`~geo_service.settings.LayoutLimitSettings` (``GEO_LAYOUT_*``):

* **Content, not name**: a ``.geojson`` must be GeoJSON text, a ``.gpkg`` a SQLite database,
  a ``.zip`` a zip, a ``.shp`` a Shapefile; anything else is refused naming what it is (GML,
  KML, a zip, a PDF, binary data…), so GDAL never guesses a driver from the content.
* **Vertices and features before geometry**: GeoJSON text is scanned in 1 MiB pieces without
  parsing it (white space dropped; a vertex is a ``]`` right after a digit, i.e. an array of
  numbers; a geometry starts at its ``"coordinates":`` key), so a vertex bomb is refused
  after reading at most 1 MiB past the limit and nothing is built. The count is exact for
  GeoJSON geometries and can only over-count (a ``"[1]"`` inside a string counts too). For
  GeoPackage and Shapefile, GDAL's feature count and the geometries' WKB (walked ring by ring,
  only where the bytes could hold more than the limit) are checked before shapely builds one.
* **Zips** are unpacked by us, not by GDAL, into a private folder: members must stay inside it
  (no absolute paths, ``..``, drive letters or links, no encryption), and the bytes actually
  inflated are counted against a total and a per-member ratio, so a lying header or a
  decompression bomb stops early.

Messages name the file as the caller knows it, never a server path.
"""

from __future__ import annotations

import re
import stat
import struct
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Final

import numpy as np

from geo_service.errors import InvalidInput, TooLarge
from geo_service.settings import LayoutLimitSettings

GEOJSON_SUFFIXES: Final = (".geojson", ".json")
LAYOUT_SUFFIXES: Final = (*GEOJSON_SUFFIXES, ".gpkg", ".zip")
IN_ZIP_SUFFIXES: Final = (".shp", ".gpkg", *GEOJSON_SUFFIXES)
_CHUNK: Final = 1 << 20
_BOMB_FLOOR: Final = 1 << 20  # a member inflating to less than this is never called a bomb
_WS: Final = np.zeros(256, dtype=bool)
_WS[[9, 10, 13, 32]] = True
# on the white-space-free text: where a geometry starts, and where a feature is
_MARKS: Final = re.compile(rb'"coordinates":|"type":"Feature"[,}]')
_CARRY: Final = 32  # bytes of white-space-free text kept across pieces (the longest mark: 17)
_MIN_WKB_VERTEX: Final = 16  # bytes of one 2D WKB point: vertices <= len(wkb) / 16


@dataclass(frozen=True)
class GeoJSONCounts:
    """What a GeoJSON scan found: features, geometries and vertices."""

    features: int
    geometries: int
    vertices: int


# --- what a file is --------------------------------------------------------------------------


def what_is(head: bytes) -> str:
    """A short description of what a file starting with ``head`` is, for refusals."""
    body = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    lower = body[:4096].lower()
    if not body:
        return "empty"
    if body.startswith(b"<"):
        if b"<kml" in lower:
            return "KML (XML)"
        if b"gml" in lower:
            return "GML (XML)"
        return "XML" if body.startswith((b"<?xml", b"<!")) or b"</" in lower else "markup"
    if body.startswith((b"{", b"[")):
        if re.search(rb'"type"\s*:\s*"feature(collection)?"', lower):
            return "GeoJSON"
        if b'"topology"' in lower:
            return "TopoJSON"
        if b'"geometrytype"' in lower or b'"spatialreference"' in lower:
            return "Esri JSON"
        return "JSON that is not GeoJSON" if body.startswith(b"{") else "a JSON array"
    for magic, name in (
        (b"PK\x03\x04", "a zip archive"),
        (b"PK\x05\x06", "an empty zip archive"),
        (b"SQLite format 3\x00", "a SQLite database (GeoPackage?)"),
        (b"\x00\x00\x27\x0a", "a Shapefile .shp"),
        (b"%PDF", "a PDF document"),
        (b"\x89PNG", "a PNG image"),
        (b"\xff\xd8\xff", "a JPEG image"),
        (b"\x1f\x8b", "gzip-compressed data"),
        (b"Rar!", "a RAR archive"),
        (b"7z\xbc\xaf", "a 7-Zip archive"),
    ):
        if head.startswith(magic):
            return name
    try:
        head[:1024].decode("utf-8")
    except UnicodeDecodeError:
        return "binary data"
    if re.match(rb"\s*[\w\" ]+,", head):
        return "CSV text"
    return "text that is not JSON"


def _head(path: Path, size: int = 4096) -> bytes:
    with path.open("rb") as f:
        return f.read(size)


def check_content(path: Path, name: str) -> None:
    """Refuse (422) a file whose content is not what its suffix says, naming what it is."""
    suffix = path.suffix.lower()
    head = _head(path)
    if suffix in GEOJSON_SUFFIXES:
        if not head.removeprefix(b"\xef\xbb\xbf").lstrip().startswith(b"{"):
            raise InvalidInput(
                f"{name} is {what_is(head)}, not GeoJSON: a {suffix} file must be a GeoJSON "
                "FeatureCollection (JSON text)",
                details={"file": name, "found": what_is(head)},
            )
        return  # the scan checks that the object is GeoJSON (scan_geojson)
    expected = {
        ".gpkg": ((b"SQLite format 3\x00",), "a GeoPackage"),
        ".zip": ((b"PK\x03\x04", b"PK\x05\x06"), "a zip archive"),
        ".shp": ((b"\x00\x00\x27\x0a",), "a Shapefile"),
    }.get(suffix)
    if expected is not None and not head.startswith(expected[0]):
        raise InvalidInput(
            f"{name} is {what_is(head)}, not {expected[1]}",
            details={"file": name, "found": what_is(head)},
        )


# --- GeoJSON: count before parsing ------------------------------------------------------------


def scan_geojson(path: Path, name: str, limits: LayoutLimitSettings) -> GeoJSONCounts:
    """Count the features, geometries and vertices of GeoJSON text without parsing it; 413 as
    soon as one geometry or the file passes its limit, 422 when it is not GeoJSON."""
    per_feature, in_all = limits.max_vertices_per_feature, limits.max_vertices_total
    carry = b""
    current = geometries = features = vertices = 0
    collection = False
    with path.open("rb") as f:
        while raw := f.read(_CHUNK):
            chars = np.frombuffer(raw, dtype=np.uint8)
            dense = carry + chars[~_WS[chars]].tobytes()
            d = np.frombuffer(dense, dtype=np.uint8)
            # a vertex: an array of numbers ends, i.e. "]" right after a digit
            ends = np.flatnonzero((d[1:] == 93) & ((d[:-1] - 48) < 10)) + 1
            ends = ends[ends >= len(carry)]
            starts = []
            for m in _MARKS.finditer(dense):
                if m.end() <= len(carry):
                    continue  # seen in the previous piece
                if m.group().startswith(b'"c'):
                    starts.append(m.start())
                else:
                    features += 1
            collection = collection or b'"type":"FeatureCollection"' in dense
            done = 0
            for cut in np.searchsorted(ends, starts).tolist():
                current += cut - done
                done = cut
                _check_geometry(current, geometries, per_feature, name)
                geometries, current = geometries + 1, 0
            current += len(ends) - done
            vertices += len(ends)
            _check_geometry(current, geometries, per_feature, name)
            if vertices > in_all:
                raise TooLarge(
                    f"{name} holds more than {in_all} vertices in all (GEO_LAYOUT_MAX_VERTICES_"
                    "TOTAL): simplify or split the layout",
                    details={"file": name, "limit": in_all},
                )
            if max(features, geometries) > limits.max_features:
                raise TooLarge(
                    f"{name} holds more than {limits.max_features} features "
                    "(GEO_LAYOUT_MAX_FEATURES)",
                    details={"file": name, "limit": limits.max_features},
                )
            carry = dense[-_CARRY:]
    if not (collection or features):
        found = what_is(_head(path))
        kind = "" if found.startswith("JSON") else f" ({found})"
        raise InvalidInput(
            f'{name} is not GeoJSON{kind}: no "type": "FeatureCollection" or "Feature" in it',
            details={"file": name, "found": found},
        )
    return GeoJSONCounts(features, geometries, vertices)


def _check_geometry(count: int, number: int, limit: int, name: str) -> None:
    """413 when geometry ``number`` (1-based; 0 is the text before the first) is over."""
    if count > limit:
        which = f"feature {number}" if number else "the text before the first feature"
        raise TooLarge(
            f"{which} of {name} has more than {limit} vertices, the limit per feature "
            "(GEO_LAYOUT_MAX_VERTICES_PER_FEATURE): simplify it",
            details={"file": name, "feature": number, "limit": limit},
        )


# --- GeoPackage, Shapefile: count the WKB --------------------------------------------------


def wkb_vertices(wkb: bytes) -> int:
    """The number of vertices (points) in ISO or extended WKB, read from its headers only."""
    count, _ = _wkb_walk(memoryview(wkb), 0)
    return count


def _wkb_walk(buf: memoryview, off: int) -> tuple[int, int]:
    order = "<" if buf[off] == 1 else ">"
    (kind,) = struct.unpack_from(order + "I", buf, off + 1)
    off += 5
    if kind & 0x20000000:  # EWKB: an SRID follows
        off += 4
    dims = 2 + bool(kind & 0x80000000) + bool(kind & 0x40000000)
    dim_code, base = divmod(kind & 0x0FFFFFFF, 1000)
    dims += (0, 1, 1, 2)[dim_code] if dim_code < 4 else 0
    point = 8 * dims
    if base == 1:
        return 1, off + point
    (n,) = struct.unpack_from(order + "I", buf, off)
    off += 4
    if base == 2:
        return n, off + n * point
    if base == 3:
        total = 0
        for _ in range(n):
            (m,) = struct.unpack_from(order + "I", buf, off)
            total += m
            off += 4 + m * point
        return total, off
    if base in (4, 5, 6, 7):
        total = 0
        for _ in range(n):
            part, off = _wkb_walk(buf, off)
            total += part
        return total, off
    # curves and surfaces we do not read: bounded by the bytes (a layout refuses them later)
    return (len(buf) - off) // _MIN_WKB_VERTEX, len(buf)


def check_wkb(geometries: Sequence[bytes | None], name: str, limits: LayoutLimitSettings) -> int:
    """413 when a geometry of ``geometries`` (WKB) or all of them pass the vertex limits;
    WKB is walked only where its size could hold more than the limit. The vertex total."""
    sizes = np.fromiter((len(g) if g is not None else 0 for g in geometries), dtype=np.int64,
                        count=len(geometries))  # fmt: skip
    per_feature = limits.max_vertices_per_feature
    suspects = np.flatnonzero(sizes // _MIN_WKB_VERTEX > per_feature)
    counts = sizes // _MIN_WKB_VERTEX
    for i in suspects.tolist():
        wkb = geometries[i]
        counts[i] = wkb_vertices(wkb) if wkb is not None else 0
        _check_geometry(int(counts[i]), i + 1, per_feature, name)
    total = int(counts.sum())
    if total > limits.max_vertices_total:
        exact = sum(wkb_vertices(g) for g in geometries if g is not None)
        if exact > limits.max_vertices_total:
            raise TooLarge(
                f"{name} holds {exact} vertices, more than {limits.max_vertices_total} in all "
                "(GEO_LAYOUT_MAX_VERTICES_TOTAL): simplify or split the layout",
                details={"file": name, "limit": limits.max_vertices_total},
            )
        total = exact
    return total


# --- zips ------------------------------------------------------------------------------------


def _target(folder: Path, name: str) -> Path:
    """Where member ``name`` goes under ``folder``; 422 when it would land outside it."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if not parts or name.startswith(("/", "\\")) or any(p == ".." or ":" in p for p in parts):
        raise InvalidInput(f"zip member {name!r} points outside the archive's folder: refused")
    target = folder.joinpath(*parts)
    if not target.resolve().is_relative_to(folder.resolve()):
        raise InvalidInput(f"zip member {name!r} points outside the archive's folder: refused")
    return target


def extract_zip(path: Path, folder: Path, limits: LayoutLimitSettings, name: str) -> None:
    """Unpack zip ``path`` (called ``name`` in messages) into ``folder`` within the member,
    size and ratio limits, counting the bytes really inflated."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InvalidInput(f"{name} is not a readable zip file: {exc}") from exc
    with archive:
        infos = archive.infolist()
        if len(infos) > limits.max_zip_members:
            raise TooLarge(
                f"{name} holds {len(infos)} members, over the limit of "
                f"{limits.max_zip_members} (GEO_LAYOUT_MAX_ZIP_MEMBERS)"
            )
        total = 0
        for info in infos:
            target = _target(folder, info.filename)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            if stat.S_ISLNK(info.external_attr >> 16):
                raise InvalidInput(f"zip member {info.filename!r} is a symbolic link: refused")
            if info.flag_bits & 0x1:
                raise InvalidInput(f"zip member {info.filename!r} is encrypted: refused")
            target.parent.mkdir(parents=True, exist_ok=True)
            total += _inflate(archive, info, target, limits, limits.max_unzipped_bytes - total)


def _inflate(
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    target: Path,
    limits: LayoutLimitSettings,
    budget: int,
) -> int:
    """Write one member, counting the bytes really inflated; return how many were written."""
    written = 0
    ceiling = max(_BOMB_FLOOR, limits.max_zip_ratio * max(info.compress_size, 1))
    try:
        with archive.open(info) as src, target.open("xb") as out:
            while chunk := src.read(_CHUNK):
                written += len(chunk)
                if written > budget:
                    raise TooLarge(
                        f"zip unpacks to more than {limits.max_unzipped_bytes} bytes "
                        "(GEO_LAYOUT_MAX_UNZIPPED_BYTES): refused"
                    )
                if written > ceiling:
                    raise TooLarge(
                        f"zip member {info.filename!r} inflates over {limits.max_zip_ratio:g}x "
                        "its compressed size (a decompression bomb?, GEO_LAYOUT_MAX_ZIP_RATIO): "
                        "refused"
                    )
                out.write(chunk)
    except FileExistsError as exc:
        raise InvalidInput(f"zip holds {info.filename!r} more than once: refused") from exc
    except (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, EOFError) as exc:
        raise InvalidInput(f"zip member {info.filename!r} cannot be unpacked: {exc}") from exc
    return written


def layout_in(folder: Path) -> Path:
    """The one layout (.shp, .gpkg, .geojson) unpacked in ``folder``; 422 for none or several."""
    found = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.suffix.lower() in IN_ZIP_SUFFIXES
        and "__MACOSX" not in p.parts
        and not p.name.startswith(".")
    )
    if not found:
        raise InvalidInput("the zip holds no layout (.shp with its .dbf/.shx, .gpkg or .geojson)")
    if len(found) > 1:
        names = ", ".join(str(p.relative_to(folder)) for p in found)
        raise InvalidInput(f"the zip holds several layouts ({names}): send one per draft")
    return found[0]
