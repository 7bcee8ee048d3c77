"""An ASGI middleware that answers cached tiles before routing.

The tile route remembers how it understood each request (path, query string and
``Authorization`` header → layer, tile, normalised query), for as long as API keys are cached
(``KEY_TTL_S``, as :class:`geo_service.auth.KeyStore` does). A later identical request whose
tile is in the cache under the current generation is answered here, with the same status and
headers the route would give; anything else goes on to the route. The fast path only skips
work, never a rule: parsing, privacy and cache keys are the route's.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from geo_service.tiles.response import tile_answer

_PREFIX = "/tiles/"


class TileHitMiddleware:
    """Serve tile cache hits of already-seen requests without routing."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and scope["path"].startswith(_PREFIX)
        ):
            service: Any = getattr(scope["app"].state, "tiles", None)
            if service is not None:
                auth = inm = None
                for name, value in scope["headers"]:
                    if name == b"authorization":
                        auth = value
                    elif name == b"if-none-match":
                        inm = value.decode("latin-1")
                found = service.hit((scope["path"], scope["query_string"], auth))
                if found is not None:
                    tile, private = found
                    status, headers, body = tile_answer(
                        tile, True, inm, private, service.settings.max_age_s
                    )
                    raw = [(k.encode(), v.encode("latin-1")) for k, v in headers]
                    if status == 200:  # 204 and 304 carry no body and no length
                        raw.append((b"content-length", str(len(body)).encode()))
                    await send({"type": "http.response.start", "status": status, "headers": raw})
                    await send({"type": "http.response.body", "body": body})
                    return
        await self.app(scope, receive, send)
