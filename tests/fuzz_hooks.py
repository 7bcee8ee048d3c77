"""Schemathesis hooks for the fuzz (``SCHEMATHESIS_HOOKS=tests.fuzz_hooks``).

* How to put an NDJSON body on the wire (``POST /v1/reports:bulk`` takes one), which
  schemathesis does not know: the document declares the body as the array of its lines, and
  each item goes on a line.
* With ``GEO_FUZZ_KEYS`` (a JSON list of API keys), the callers take turns: each request is
  sent as the next of the public (no key) and the listed keys, so one run covers every role.
"""

from __future__ import annotations

import itertools
import json
import os
from typing import Any

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx: schemathesis.SerializationContext, value: Any) -> dict[str, Any]:
    """An array as NDJSON, one JSON value per line; anything else as the one JSON value."""
    if isinstance(value, bytes):
        return {"data": value}
    items = value if isinstance(value, list) else [value]
    lines = (json.dumps(item, ensure_ascii=False) for item in items)
    return {"data": "\n".join(lines).encode("utf-8")}


_KEYS: list[str] = json.loads(os.environ.get("GEO_FUZZ_KEYS", "[]"))
_CALLERS = itertools.cycle(["", *_KEYS])  # "": the public

if _KEYS:

    @schemathesis.auth(refresh_interval=None)  # asked on every request: the next caller
    class Callers:
        """The callers in turn, as schemathesis' auth (so its auth checks know it is one)."""

        def get(self, case: Any, ctx: Any) -> str:
            return next(_CALLERS)

        def set(self, case: Any, data: str, ctx: Any) -> None:
            headers = {k: v for k, v in (case.headers or {}).items()
                       if k.lower() != "authorization"}
            if data:
                headers["Authorization"] = f"Bearer {data}"
            case.headers = headers
