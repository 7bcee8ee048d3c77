"""Uploaded layout files, received and unpacked safely.

The request body is counted as it streams in and refused past the cap (413) before it is all
read. Zips are unpacked by us, not by GDAL, into a private folder: members must stay inside it
(no absolute paths, ``..``, drive letters or links), and the bytes actually inflated are counted
against a total and a ratio limit, so a lying header or a decompression bomb stops early.
"""

from __future__ import annotations

import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.types import Message

from geo_service.errors import InvalidInput, TooLarge
from geo_service.settings import PlanningSettings

LAYOUT_SUFFIXES = (".geojson", ".json", ".gpkg", ".zip")
_IN_ZIP = (".shp", ".gpkg", ".geojson", ".json")
_CHUNK = 1 << 20
_BOMB_FLOOR = 1 << 20  # a member inflating to less than this is never called a bomb


@dataclass(frozen=True)
class Upload:
    """A layout upload saved to disk, with the form fields that came with it."""

    path: Path
    filename: str
    label: str | None
    crs: str | None


async def receive_upload(request: Request, max_bytes: int, folder: Path) -> Upload:
    """Parse a multipart upload (``file``, ``label``, optional ``crs``) into ``folder``.

    Refuses (413) a body over ``max_bytes``, by its Content-Length before reading, or while it
    streams in when no length is given.
    """
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise TooLarge(f"upload of {int(declared)} bytes is over the limit of {max_bytes} bytes")
    seen = 0

    async def counted() -> Message:
        nonlocal seen
        message = await request.receive()
        seen += len(message.get("body", b""))
        if seen > max_bytes:
            raise TooLarge(f"upload is over the limit of {max_bytes} bytes")
        return message

    limited = Request(request.scope, counted)
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise InvalidInput("send the layout as multipart/form-data with fields file and label")
    async with limited.form(max_files=1, max_fields=8) as form:
        file = form.get("file")
        if not isinstance(file, UploadFile):
            raise InvalidInput("multipart field 'file' (the layout file) is required")
        name = PurePosixPath((file.filename or "").replace("\\", "/")).name
        suffix = PurePosixPath(name).suffix.lower()
        if suffix not in LAYOUT_SUFFIXES:
            raise InvalidInput(
                f"file {name!r} is not a layout: send {', '.join(LAYOUT_SUFFIXES)} "
                "(a Shapefile goes zipped)"
            )
        path = folder / f"upload{suffix}"
        with path.open("wb") as out:
            while chunk := await file.read(_CHUNK):
                out.write(chunk)
        label, crs = form.get("label"), form.get("crs")
        return Upload(
            path,
            name,
            label if isinstance(label, str) else None,
            crs if isinstance(crs, str) and crs.strip() else None,
        )


def _target(folder: Path, name: str) -> Path:
    """Where member ``name`` goes under ``folder``; 422 when it would land outside it."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if (
        not parts
        or name.startswith(("/", "\\"))
        or any(p == ".." or ":" in p for p in parts)
    ):
        raise InvalidInput(f"zip member {name!r} points outside the archive's folder: refused")
    target = folder.joinpath(*parts)
    if not target.resolve().is_relative_to(folder.resolve()):
        raise InvalidInput(f"zip member {name!r} points outside the archive's folder: refused")
    return target


def extract_zip(path: Path, folder: Path, limits: PlanningSettings) -> None:
    """Unpack ``path`` into ``folder`` within the member, size and ratio limits of ``limits``."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InvalidInput(f"the upload is not a readable zip file: {exc}") from exc
    with archive:
        infos = archive.infolist()
        if len(infos) > limits.max_zip_members:
            raise TooLarge(
                f"zip holds {len(infos)} members, over the limit of {limits.max_zip_members}"
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
    limits: PlanningSettings,
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
                        f"zip unpacks to more than {limits.max_unzipped_bytes} bytes: refused"
                    )
                if written > ceiling:
                    raise TooLarge(
                        f"zip member {info.filename!r} inflates over {limits.max_zip_ratio:g}x "
                        "its compressed size (a decompression bomb?): refused"
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
        and p.suffix.lower() in _IN_ZIP
        and "__MACOSX" not in p.parts
        and not p.name.startswith(".")
    )
    if not found:
        raise InvalidInput("the zip holds no layout (.shp with its .dbf/.shx, .gpkg or .geojson)")
    if len(found) > 1:
        names = ", ".join(str(p.relative_to(folder)) for p in found)
        raise InvalidInput(f"the zip holds several layouts ({names}): send one per draft")
    return found[0]


def layout_file(upload: Upload, folder: Path, limits: PlanningSettings) -> Path:
    """The readable layout of ``upload``: the file itself, or the one inside its zip."""
    if upload.path.suffix.lower() != ".zip":
        return upload.path
    unpacked = folder / "unzipped"
    unpacked.mkdir()
    extract_zip(upload.path, unpacked, limits)
    return layout_in(unpacked)
