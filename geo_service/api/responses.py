"""JSON responses rendered by orjson (numpy scalars included)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import JSONResponse

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


class JSONBytes(JSONResponse):
    """A JSON response serialised with orjson (a ``JSONResponse``, so the OpenAPI document
    shows a route's ``response_model`` as its body)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=_OPTIONS)


def error_response(status: int, code: str, message: str, details: Any = None) -> JSONBytes:
    """The service's error answer, ``{"error", "message", "details"}``, with ``status``."""
    return JSONBytes({"error": code, "message": message, "details": details}, status_code=status)
