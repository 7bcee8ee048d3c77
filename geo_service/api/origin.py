"""An ASGI middleware that tells the audit log where each HTTP request comes from.

The client address (``scope["client"]``: the peer, or what uvicorn's ``--proxy-headers`` made of
``X-Forwarded-For`` from a trusted proxy) is put in :data:`geo_service.audit.ORIGIN` for the
request's context, which the route's worker threads inherit; a domain function that writes an
audit entry then records it without any route passing it along.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from geo_service.audit import origin


class OriginMiddleware:
    """Run each HTTP request with its client address as the audit origin."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        with origin(str(client[0]) if client else "unknown"):
            await self.app(scope, receive, send)
