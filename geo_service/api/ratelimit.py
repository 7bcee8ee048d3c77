"""Per-caller limits at the HTTP edge: request rates (token buckets) and the database
``statement_timeout`` of the caller's role.

:class:`RateLimitMiddleware` (pure ASGI, the outermost of ours) sorts each request into a
route class, ``cheap`` (one-point locate, tiles, static files, health), ``costly`` (analytics,
maps and the diff map, uploads, impact, validation, suggestions, statistics, exports) or
``standard``, and charges one token to the caller's bucket of that class
(:class:`~geo_service.settings.RateLimitSettings`, ``GEO_RATE_*``):

* a key (``Authorization: Bearer``) has its own buckets at its role's rates; the key is
  looked up once per request (:func:`geo_service.api.deps.key_owner` reuses the answer);
* a signed-in page (the ``gs_session`` cookie, no key) has its session's own buckets at its
  user's role's rates and its role's timeout: a wall of four screens signed in as one duty
  account is four callers, as four browsers are (a second session costs a password, and
  sign-ins are slowed); the session is looked up once per request
  (:func:`geo_service.api.session.current_session` reuses the answer), never for ``/static``;
* the public is counted per client address (an IPv6 address per /64) at ``anonymous`` rates,
  and all of the public together at ``anonymous_all``, so many addresses cannot starve staff;
* an unknown or revoked key is charged to its address like the public, and to the address's
  ``unknown_keys`` bucket: past that, the address is answered 429 before any lookup.

An empty bucket answers **429** with ``Retry-After`` (whole seconds) and the service's JSON
error body. Buckets live in memory, per worker process, at most ``max_buckets`` in each set
(a class of the public, of a role, the unknown keys; least recently used dropped: a dropped
bucket is a full one). With N workers a client can get up to N× the configured rates, since
its connections may land on any worker: size the settings as the wanted limit ÷ N. The client
address is the ASGI ``client``: behind a reverse proxy, run uvicorn with
``--forwarded-allow-ips`` so it is the real client's.

The same middleware sets the caller's role's ``statement_timeout``
(:class:`~geo_service.settings.StatementTimeoutSettings`) for the request: a context variable
read by a pool ``checkout`` listener (:func:`install_statement_timeouts`), which sets it on the
connection only when it differs from what that connection has. A query cancelled by it answers
503 ``statement_timeout`` (:data:`geo_service.errors.DRIVER_ERRORS`).
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Hashable
from contextvars import ContextVar
from typing import Any, Final, Literal

from sqlalchemy import Engine, event
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from geo_service.accounts import SESSION_COOKIE, Session
from geo_service.api.deps import key_owner
from geo_service.api.responses import error_response
from geo_service.api.session import current_session
from geo_service.auth import Principal
from geo_service.db.schema import ROLES
from geo_service.errors import RateLimited
from geo_service.settings import RATE_CLASSES, RateLimitSettings, StatementTimeoutSettings
from geo_service.store.session import set_statement_timeout

RouteClass = Literal["cheap", "standard", "costly"]

_CHEAP_PREFIXES: Final = ("/tiles/", "/static/")
_CHEAP_PATHS: Final = frozenset({"/health", "/"})
_COSTLY_PREFIXES: Final = ("/v1/analytics/", "/maps/", "/v1/stats", "/v1/exports")
_COSTLY_SUFFIXES: Final = ("/impact", "/diff", "/validation", "/suggestions")
_UPLOADS: Final = frozenset({"/v1/boundaries/versions", "/v1/boundaries/versions/"})
_TIMEOUT_INFO: Final = "geo_service.statement_timeout_ms"

STATEMENT_TIMEOUT_MS: ContextVar[int | None] = ContextVar("statement_timeout_ms", default=None)
"""The ``statement_timeout`` (ms) of the current request's caller; None outside requests."""

_COOKIE_NAME: Final = SESSION_COOKIE.encode() + b"="


def route_class(method: str, path: str) -> RouteClass:
    """Which rate class a request is counted in (see the module notes)."""
    if path == "/v1/locate":
        return "cheap" if method == "GET" else "standard"  # POST: up to 100,000 points
    if path.startswith(_CHEAP_PREFIXES) or path in _CHEAP_PATHS:
        return "cheap"
    if (
        path.startswith(_COSTLY_PREFIXES)
        or path.endswith(_COSTLY_SUFFIXES)
        or "export" in path
        or (method == "POST" and path in _UPLOADS)
    ):
        return "costly"
    return "standard"


def client_address(scope: Scope) -> str:
    """The caller's address as counted: the ASGI client host, an IPv6 one cut to its /64."""
    client = scope.get("client")
    host: str = client[0] if client else "unknown"
    if ":" in host:
        try:
            return str(ipaddress.IPv6Network(f"{host}/64", strict=False))
        except ValueError:
            return host
    return host


def take_token(bucket: list[float], rate: float, burst: int, now: float) -> float:
    """Take one token from ``bucket`` ([tokens, last refill]), refilled at ``rate`` a second
    up to ``burst``: 0 when taken, else the seconds until one is there."""
    tokens = bucket[0] + (now - bucket[1]) * rate
    if tokens > burst:
        tokens = burst
    bucket[1] = now
    if tokens >= 1.0:
        bucket[0] = tokens - 1.0
        return 0.0
    bucket[0] = tokens
    return (1.0 - tokens) / rate


class TokenBuckets:
    """Token buckets of one rate and burst by key, at most ``max_buckets`` of them (least
    recently used dropped: a dropped bucket is a full one)."""

    def __init__(self, rate: float, burst: int, max_buckets: int) -> None:
        self.rate = rate
        self.burst = burst
        self.max_buckets = max_buckets
        self._buckets: OrderedDict[Hashable, list[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def wait(self, key: Hashable, now: float) -> float:
        """Seconds until ``key``'s bucket holds a token (0 when it holds one now)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return 0.0
        tokens = min(float(self.burst), bucket[0] + (now - bucket[1]) * self.rate)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def take(self, key: Hashable, now: float) -> float:
        """Take one token from ``key``'s bucket: 0 when taken, else the seconds to wait."""
        buckets = self._buckets
        bucket = buckets.get(key)
        if bucket is None:
            if len(buckets) >= self.max_buckets:
                buckets.popitem(last=False)
            buckets[key] = [self.burst - 1.0, now]
            return 0.0
        buckets.move_to_end(key)
        return take_token(bucket, self.rate, self.burst, now)

    def give_back(self, key: Hashable) -> None:
        """Return the token just taken from ``key``'s bucket (another bucket refused)."""
        bucket = self._buckets.get(key)
        if bucket is not None:
            bucket[0] += 1.0


def _bearer(value: bytes) -> str | None:
    """The key of an ``Authorization`` header value, None unless it is ``Bearer <key>``."""
    scheme, _, key = value.decode("latin-1").partition(" ")
    key = key.strip()
    return key if scheme.lower() == "bearer" and key else None


_UNRESOLVED: Final = object()  # the key lookup failed: the route's own lookup answers


class RateLimitMiddleware:
    """Charge each request to its caller's token bucket (429 when empty) and run it under the
    caller's role's ``statement_timeout`` (see the module notes)."""

    def __init__(
        self, app: ASGIApp, rates: RateLimitSettings, timeouts: StatementTimeoutSettings
    ) -> None:
        self.app = app
        self.enabled = rates.enabled
        self.rates = rates.table()
        self.unknown = rates.unknown_key_rate()
        self.timeouts: dict[str, int] = {role: timeouts.of(role) for role in ROLES}
        self.timeouts[""] = timeouts.of(None)  # the public, and unknown keys
        size = rates.max_buckets
        # the public per address, and all of it, per class; each role's keys per class
        self.public = {c: TokenBuckets(*self.rates["anonymous"][c], size) for c in RATE_CLASSES}
        self.public_all = {c: [float(self.rates["anonymous_all"][c][1]), 0.0] for c in RATE_CLASSES}
        self.keyed: dict[tuple[str, str], TokenBuckets] = {
            (role, c): TokenBuckets(*self.rates[role][c], size)
            for role in ROLES
            for c in RATE_CLASSES
        }
        self.unknown_keys = TokenBuckets(*self.unknown, size)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                header = value
                break
        role = ""
        refusal: RateLimited | None = None
        if header is None:
            signed_in = await self._signed_in(scope)
            if signed_in is not None:  # a page's session: its user's role, its own buckets
                who = signed_in.principal
                role = who.role
                refusal = self._charge_principal(scope, who, f"s{signed_in.session_id}")
            elif self.enabled:
                refusal = self._charge_public(scope, time.monotonic())
        else:
            role, refusal = await self._charge_keyed(scope, header)
        if refusal is not None:
            await self._refuse(scope, receive, send, refusal)
            return
        # each request runs in its own task (a copy of the context): set, never reset
        timeout = self.timeouts[role]
        if STATEMENT_TIMEOUT_MS.get() != timeout:
            STATEMENT_TIMEOUT_MS.set(timeout)
        await self.app(scope, receive, send)

    def _charge_public(self, scope: Scope, now: float) -> RateLimited | None:
        """Charge a request of the public: its address's bucket and the public's."""
        cls = route_class(scope["method"], scope["path"])
        mine = self.public[cls]
        address = client_address(scope)
        wait = mine.take(address, now)
        if wait:
            return _limited("the public (per address)", cls, mine.rate, mine.burst, wait)
        rate, burst = self.rates["anonymous_all"][cls]
        wait = take_token(self.public_all[cls], rate, burst, now)
        if wait:
            mine.give_back(address)
            return _limited("the public (all addresses)", cls, rate, burst, wait)
        return None

    async def _charge_keyed(self, scope: Scope, header: bytes) -> tuple[str, RateLimited | None]:
        """The role of a request carrying a key, and its refusal if a bucket is empty."""
        now = time.monotonic()
        address = client_address(scope)
        failures = self.unknown_keys
        if self.enabled and (wait := failures.wait(address, now)):
            return "", RateLimited(
                f"too many unknown or revoked API keys from this address: retry after "
                f"{math.ceil(wait)} s",
                retry_after_s=wait,
                details={
                    "limit_per_s": failures.rate,
                    "burst": failures.burst,
                    "retry_after_s": round(wait, 3),
                },
            )
        principal = await self._principal(scope, header)
        if isinstance(principal, Principal):
            return principal.role, self._charge_principal(scope, principal)
        if not self.enabled:
            return "", None
        if principal is None:  # unknown, revoked or malformed: the route answers 401
            failures.take(address, now)
        return "", self._charge_public(scope, now)

    def _charge_principal(
        self, scope: Scope, principal: Principal, bucket: str | None = None
    ) -> RateLimited | None:
        """Charge a key's (or a session's: ``bucket``) own bucket for the route's class."""
        if not self.enabled:
            return None
        cls = route_class(scope["method"], scope["path"])
        buckets = self.keyed[principal.role, cls]
        wait = buckets.take(bucket or principal.ref, time.monotonic())
        if wait:
            who = f"role {principal.role}"
            return _limited(who, cls, buckets.rate, buckets.burst, wait)
        return None

    @staticmethod
    async def _signed_in(scope: Scope) -> Session | None:
        """The live session of the request's cookie, None without one (or when the lookup
        failed: the route's own lookup then answers); looked up once per request."""
        app: Any = scope.get("app")
        if app is None or getattr(app.state, "engine", None) is None:
            return None
        if scope["path"].startswith("/static/") or not any(
            name == b"cookie" and _COOKIE_NAME in value for name, value in scope["headers"]
        ):  # the hot path (no cookie) parses nothing
            return None
        request = Request(scope)
        if SESSION_COOKIE not in request.cookies:
            return None
        try:
            return await current_session(request)
        except Exception:  # a database fault: answered by the route, through the error table
            return None

    async def _principal(self, scope: Scope, header: bytes) -> Principal | object | None:
        """The principal of the request's key, None for an unknown, revoked or malformed one,
        :data:`_UNRESOLVED` when the lookup failed (the route's own lookup then answers)."""
        key = _bearer(header)
        if key is None:
            return None
        app: Any = scope.get("app")
        if app is None or getattr(app.state, "keys", None) is None:
            return _UNRESOLVED
        try:
            return await key_owner(Request(scope), key)
        except Exception:  # a database fault: answered by the route, through the error table
            return _UNRESOLVED

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, refusal: RateLimited) -> None:
        answer = error_response(429, refusal.code, refusal.message, refusal.details)
        answer.headers["Retry-After"] = str(max(1, math.ceil(refusal.retry_after_s or 1)))
        await answer(scope, receive, send)


def _limited(who: str, cls: RouteClass, rate: float, burst: int, wait: float) -> RateLimited:
    """The refusal of a request over ``who``'s rate for ``cls`` routes."""
    return RateLimited(
        f"too many requests: {who} may make {rate:g} {cls} request(s) a second (bursts of "
        f"{burst}); retry after {math.ceil(wait)} s",
        retry_after_s=wait,
        details={
            "class": cls,
            "limit_per_s": rate,
            "burst": burst,
            "retry_after_s": round(wait, 3),
        },
    )


def install_statement_timeouts(engine: Engine) -> None:
    """Give every connection checked out of ``engine`` the current caller's
    ``statement_timeout`` (:data:`STATEMENT_TIMEOUT_MS`; the server's default outside a
    request), set only when the connection holds another value."""

    @event.listens_for(engine, "checkout")
    def _apply(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        ms = STATEMENT_TIMEOUT_MS.get()
        if record.info.get(_TIMEOUT_INFO) != ms:
            set_statement_timeout(dbapi_connection, ms)
            record.info[_TIMEOUT_INFO] = ms
