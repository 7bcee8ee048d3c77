"""Uploaded layout files, received safely.

The request arrives with its body already held to the upload limit (413 past it, counted as it
streams in: :mod:`geo_service.api.limits`). The file is written to a private folder under the
uploader's own file name when that name is plain (so messages name the file they know, never
the folder), and its content is checked against its suffix at once; what it may hold (features,
vertices, zip members) is checked by the reader (:mod:`geo_service.boundaries.safety`) before
GDAL or GEOS build a geometry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from starlette.datastructures import UploadFile
from starlette.requests import Request

from geo_service.boundaries.safety import LAYOUT_SUFFIXES, check_content
from geo_service.errors import InvalidInput

_CHUNK = 1 << 20
_PLAIN_NAME = re.compile(r"[\w\-. ]{1,120}")


@dataclass(frozen=True)
class Upload:
    """A layout upload saved to disk, with the form fields that came with it."""

    path: Path
    filename: str
    label: str | None
    crs: str | None


def _stored_name(name: str, suffix: str) -> str:
    """The name the upload is written under: the uploader's when plain, else ``upload.EXT``."""
    if _PLAIN_NAME.fullmatch(name) and not name.startswith(".") and ".." not in name:
        return name
    return f"upload{suffix}"


async def receive_upload(request: Request, folder: Path) -> Upload:
    """Parse a multipart upload (``file``, ``label``, optional ``crs``) into ``folder`` and
    check its content against its suffix (422 naming what it is otherwise); the request's
    body is held to the upload limit by the route (``api.limits.UploadRequest``)."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise InvalidInput("send the layout as multipart/form-data with fields file and label")
    async with request.form(max_files=1, max_fields=8) as form:
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
        path = folder / _stored_name(name, suffix)
        with path.open("wb") as out:
            while chunk := await file.read(_CHUNK):
                out.write(chunk)
        check_content(path, name)
        label, crs = form.get("label"), form.get("crs")
        return Upload(
            path,
            name,
            label if isinstance(label, str) else None,
            crs if isinstance(crs, str) and crs.strip() else None,
        )
