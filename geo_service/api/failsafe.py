"""The last line of the HTTP edge: a fault never costs the caller their connection.

Starlette answers an unhandled exception (our handler words it: 503 for a database outage,
else a JSON 500) and then raises it again "so the server can log it"; uvicorn, seeing an
exception after a complete response, closes the connection, so the client's next request on
that keep-alive connection is reset. :class:`KeepAlive` wraps the whole application
(``create_app`` installs it outside Starlette's own error middleware): it logs the exception
and swallows it once the answer has gone out in full, and only lets it through (so the
server closes the connection) when an answer was cut off half way, as it must.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi.routing import iter_route_contexts
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from geo_service.errors import from_driver_error

log = logging.getLogger("geo_service.http")


class KeepAlive:
    """Swallow (and log) an exception raised after its response went out complete."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        complete = False

        async def watched(message: Message) -> None:
            nonlocal complete
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                complete = True

        try:
            await self.app(scope, receive, watched)
        except Exception as exc:
            if not complete:
                raise
            where = f"{scope.get('method')} {scope.get('path')}"
            if from_driver_error(exc) is not None:  # an outage, answered 503
                log.warning("%s: %s", where, exc.__class__.__name__)
            else:
                log.error("%s: exception after the answer went out", where, exc_info=exc)


def allowed_methods(app: Any, scope: Scope) -> set[str]:
    """The methods the request's path takes (its ``Allow`` header): those of every documented
    route whose path matches it (Starlette names only the first such route's); a catch-all
    answering 404 (Open311's) is no method the path takes."""
    documented: set[str] = set()
    hidden: set[str] = set()
    for route in iter_route_contexts(app.router.routes):  # as included, with their prefixes
        methods = route.methods
        if methods and route.matches(dict(scope))[0] is not Match.NONE:
            shown = getattr(route.original_route, "include_in_schema", True)
            (documented if shown else hidden).update(methods)
    return documented or hidden
