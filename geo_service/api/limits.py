"""Request body limits: one setting per route family, enforced here and nowhere else.

The families and their settings (``GEO_BODY_LIMIT_*``, :class:`~geo_service.settings.
BodyLimitSettings`): ``locate`` (``POST /v1/locate``), ``intake`` (one report: ``POST
/v1/reports``, Open311 ``POST requests``), ``bulk`` (``POST /v1/reports:bulk``), ``upload`` (a
planner's layout file) and ``other`` (every other body: loop steps, grid edits, publish…).

How: :class:`BodyLimitMiddleware` meters every request body as it streams in, at the ``other``
limit. A route that reads its own body first raises the limit to its family's with a typed
dependency (:data:`LocateRequest`, :data:`IntakeRequest`, :data:`BulkRequest`,
:data:`UploadRequest`). Either way a declared ``Content-Length`` over the limit is refused
before a byte is read, and a body sent without one (chunked) is cut at the limit: 413, and no
route ever holds more than its family allows.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from fastapi import Depends, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from geo_service.api.responses import error_response
from geo_service.errors import TooLarge
from geo_service.settings import BodyLimitSettings

Family = Literal["locate", "intake", "bulk", "upload", "other"]

# what a refusal calls the body of each family
_NOUN: Final[dict[Family, str]] = {
    "locate": "locate request",
    "intake": "report",
    "bulk": "bulk request",
    "upload": "upload",
    "other": "request body",
}
_FAMILIES: Final[tuple[Family, ...]] = ("locate", "intake", "bulk", "upload", "other")
_SCOPE_KEY: Final = "geo_service.body_meter"
_NO_BODY: Final = frozenset({"GET", "HEAD", "OPTIONS"})


def _limits_of(settings: BodyLimitSettings) -> dict[Family, int]:
    """Each family's limit in bytes, read once."""
    return {family: getattr(settings, family) for family in _FAMILIES}


def _declared_length(scope: Scope) -> int | None:
    """The ``Content-Length`` the client declared, None when absent or not a number."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


class BodyMeter:
    """Counts one request's body as it is received and refuses it past its family's limit."""

    __slots__ = ("_limits", "_receive", "declared", "family", "limit", "refusal", "seen")

    def __init__(
        self, receive: Receive, declared: int | None, limits: BodyLimitSettings | dict[Family, int]
    ) -> None:
        self._receive = receive
        self._limits = limits if isinstance(limits, dict) else _limits_of(limits)
        self.declared = declared
        self.family: Family = "other"
        self.limit = self._limits["other"]
        self.seen = 0
        self.refusal: TooLarge | None = None

    def use(self, family: Family) -> None:
        """Apply ``family``'s limit from now on; 413 at once when the declared length is over."""
        self.family = family
        self.limit = self._limits[family]
        self._check_declared()

    def _refuse(self, message: str) -> TooLarge:
        self.refusal = TooLarge(message, details={"limit_bytes": self.limit})
        return self.refusal

    def _check_declared(self) -> None:
        if self.declared is not None and self.declared > self.limit:
            noun = _NOUN[self.family]
            raise self._refuse(
                f"{noun} of {self.declared} bytes is over the limit of {self.limit} bytes"
            )

    async def receive(self) -> Message:
        """The next message of the body, counted; 413 at the first piece that passes the limit
        (or at once when the declared length is over it), and nothing more is read."""
        self._check_declared()
        message = await self._receive()
        if message["type"] == "http.request":
            self.seen += len(message.get("body", b""))
            if self.seen > self.limit:
                raise self._refuse(f"{_NOUN[self.family]} is over the limit of {self.limit} bytes")
        return message


class BodyLimitMiddleware:
    """Meter every request body (see the module notes); answer 413 whenever the meter refused
    the body, even where the framework's own body parsing turned the refusal into a 400."""

    def __init__(self, app: ASGIApp, limits: BodyLimitSettings) -> None:
        self.app = app
        self.limits = _limits_of(limits)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in _NO_BODY:
            await self.app(scope, receive, send)
            return
        meter = BodyMeter(receive, _declared_length(scope), self.limits)
        scope[_SCOPE_KEY] = meter
        replaced = False

        async def checked_send(message: Message) -> None:
            nonlocal replaced
            if replaced:
                return  # the original answer's body: dropped, the 413 went out instead
            refusal = meter.refusal
            if (
                message["type"] == "http.response.start"
                and refusal is not None
                and message["status"] != 413
            ):
                replaced = True
                answer = error_response(413, refusal.code, refusal.message, refusal.details)
                await answer(scope, receive, send)
                return
            await send(message)

        await self.app(scope, meter.receive, checked_send)


def limited(request: Request, family: Family) -> Request:
    """``request`` with its body held to ``family``'s limit (413 beyond).

    Under :class:`BodyLimitMiddleware` this raises the request's meter to the family's limit;
    without it (an app built otherwise) the request is given a meter of its own.
    """
    meter = request.scope.get(_SCOPE_KEY)
    if isinstance(meter, BodyMeter):
        meter.use(family)
        return request
    limits: BodyLimitSettings = request.app.state.settings.body_limits
    meter = BodyMeter(request.receive, _declared_length(request.scope), limits)
    meter.use(family)
    return Request(request.scope, meter.receive)


async def _locate(request: Request) -> Request:
    return limited(request, "locate")


async def _intake(request: Request) -> Request:
    return limited(request, "intake")


async def _bulk(request: Request) -> Request:
    return limited(request, "bulk")


async def _upload(request: Request) -> Request:
    return limited(request, "upload")


LocateRequest = Annotated[Request, Depends(_locate)]
"""The request of ``POST /v1/locate``, its body held to ``GEO_BODY_LIMIT_LOCATE``."""
IntakeRequest = Annotated[Request, Depends(_intake)]
"""The request filing one report, its body held to ``GEO_BODY_LIMIT_INTAKE``."""
BulkRequest = Annotated[Request, Depends(_bulk)]
"""The request filing reports in bulk, its body held to ``GEO_BODY_LIMIT_BULK``."""
UploadRequest = Annotated[Request, Depends(_upload)]
"""The request uploading a layout file, its body held to ``GEO_BODY_LIMIT_UPLOAD``."""
