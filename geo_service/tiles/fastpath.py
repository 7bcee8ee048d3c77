"""An ASGI middleware that answers cached tiles before routing.

The tile route remembers how it understood each request (path, query string and
``Authorization`` header → layer, tile, normalised query) for ``KEY_TTL_S``. A later identical
request whose tile is in the cache under the current generation is answered here, with the
same status and headers the route would give — a request with a key only while this worker's
key store vouches for that key without a query (:meth:`geo_service.auth.KeyStore.known`: looked
up under a generation read less than ``GEO_AUTH_KEY_RECHECK_S`` ago, so a revoked key falls
through to the route as fast as anywhere else); a request with a session cookie and no key
(a signed-in page) always goes to the route, which never remembers it; anything else goes on
to the route. The fast
path only skips work, never a rule: parsing, privacy and cache keys are the route's.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from geo_service.tiles.response import tile_answer

_PREFIX = "/tiles/"


def _vouched(scope: Scope, auth: bytes) -> bool:
    """Whether the worker's key store knows the Bearer key of ``auth`` as valid right now."""
    keys: Any = getattr(scope["app"].state, "keys", None)
    scheme, _, token = auth.decode("latin-1").partition(" ")
    if keys is None or scheme.lower() != "bearer" or not token.strip():
        return False
    return keys.known(token.strip()) is not None


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
                session = False
                for name, value in scope["headers"]:
                    if name == b"authorization":
                        auth = value
                    elif name == b"if-none-match":
                        inm = value.decode("latin-1")
                    elif name == b"cookie" and b"gs_session=" in value:
                        session = True  # a signed-in page: its role's view, from the route
                found = None
                if auth is not None or not session:
                    found = service.hit((scope["path"], scope["query_string"], auth))
                if found is not None and auth is not None and not _vouched(scope, auth):
                    found = None
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
