"""Typed dependencies shared by the routers: settings, engine, caches, and the caller.

The caller is worked out here and nowhere else: :data:`CallerDep` is the principal of
``Authorization: Bearer <key>``, else of the ``gs_session`` cookie (a signed-in page), or None
for the public (401 for a malformed header or an
unknown or revoked key); :data:`PrincipalDep` demands a key; :func:`require_role` demands one
of some roles (403 otherwise). Body limits live beside this, in :mod:`geo_service.api.limits`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Annotated, Final

from fastapi import Depends, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from starlette.convertors import StringConvertor, register_url_convertor

from geo_service.analytics.privacy import STAFF_ROLES
from geo_service.api.routing_cache import RoutingCache
from geo_service.api.session import cookie_caller
from geo_service.auth import KeyStore, Principal, require
from geo_service.errors import Forbidden, InvalidInput, Unauthorized, unstorable
from geo_service.locator import Locator
from geo_service.locator.registry import VersionRegistry
from geo_service.settings import Settings

# who may file reports (POST /v1/reports, …:bulk, Open311 POST requests)
FILERS: Final[tuple[str, ...]] = ("reporter", "grid_worker", "operator", "admin")


def get_settings(request: Request) -> Settings:
    """The service's settings, as ``create_app`` was given them."""
    settings: Settings = request.app.state.settings
    return settings


def get_engine(request: Request) -> Engine:
    """The service's SQLAlchemy engine, built in the lifespan."""
    engine: Engine = request.app.state.engine
    return engine


def get_registry(request: Request) -> VersionRegistry:
    """The per-version registry (Locators and everything else derived from a version)."""
    registry: VersionRegistry = request.app.state.registry
    return registry


class Locators:
    """The Locators of this service's database, from the per-version registry."""

    def __init__(self, registry: VersionRegistry, engine: Engine) -> None:
        self.registry = registry
        self.engine = engine

    async def get(self, as_of: dt.date | None = None) -> Locator:
        """The Locator of the version in force on ``as_of`` (today when None)."""
        return await self.registry.locator_in_force(self.engine, as_of)


def get_locators(request: Request) -> Locators:
    """The Locators of the version in force, for the routes that locate."""
    return Locators(request.app.state.registry, request.app.state.engine)


def get_routing(request: Request) -> RoutingCache:
    """The cached routing table (units and rules)."""
    cache: RoutingCache = request.app.state.routing
    return cache


# --- parameters: bounded and typed at the edge, so no value a caller sends reaches a query
# the database cannot run (an id past BIGINT, an offset past it, a NUL in a filter) ----------

BIGINT_MAX: Final = 2**63 - 1  # PostgreSQL bigint: report ids, event ids, offsets
INT_MAX: Final = 2**31 - 1  # PostgreSQL integer: boundary version ids, unit ids

ReportId = Annotated[int, Path(ge=1, le=BIGINT_MAX, description="a report's id")]
VersionId = Annotated[int, Path(ge=1, le=INT_MAX, description="a boundary version's id")]
Offset = Annotated[int, Query(ge=0, le=BIGINT_MAX, description="how many items to skip")]
AreaCode = Annotated[
    str, Path(pattern=r"^[0-9]{1,32}$", description="an area code: digits, at most 32")
]


class _Digits(StringConvertor):
    """A path segment of digits only (``{code:digits}``): an area code, so that a literal
    segment beside it (``grids/merge``) never matches the code's route."""

    regex = "[0-9]+"


register_url_convertor("digits", _Digits())


def storable_url(request: Request) -> None:
    """Refuse a path or query string holding text the database cannot store (a NUL, a lone
    surrogate), naming the parameter: a dependency of every route (``create_app``), so each
    answers it in its own error format (422; 400 in Open311 and OGC API)."""
    problem = unstorable(request.scope["path"])
    if problem is not None:
        raise InvalidInput(f"the path {problem}")
    for name, value in request.query_params.multi_items():
        problem = unstorable(name) or unstorable(value)
        if problem is not None:
            raise InvalidInput(f"query parameter {name!r} {problem}")


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
RegistryDep = Annotated[VersionRegistry, Depends(get_registry)]
LocatorsDep = Annotated[Locators, Depends(get_locators)]
RoutingDep = Annotated[RoutingCache, Depends(get_routing)]

# --- the caller ------------------------------------------------------------------------------

_BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="api_key",
    description="An API key (`geo-service keys create --role …`) as `Authorization: Bearer <key>`.",
)


_KEY_MEMO: Final = "geo_service.key_owner"  # (key, principal) of this request, in its scope


async def key_owner(request: Request, key: str) -> Principal | None:
    """The principal an API key belongs to, None when it is unknown or revoked (the one key
    lookup of the HTTP edge: once per request, so the rate limiter's answer is reused; cached
    while the key generation stands still, else the database in a worker thread: a revoked
    key is refused within ``GEO_AUTH_KEY_RECHECK_S``, see :mod:`geo_service.auth`)."""
    memo = request.scope.get(_KEY_MEMO)
    if memo is not None and memo[0] == key:
        known: Principal | None = memo[1]
        return known
    keys: KeyStore = request.app.state.keys
    principal = await asyncio.to_thread(keys.lookup, key.strip())
    request.scope[_KEY_MEMO] = (key, principal)
    return principal


async def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
) -> Principal | None:
    """Who is calling: the principal of ``Authorization: Bearer <key>`` (401 for any other
    header or an unknown or revoked key); without the header, the signed-in user of the
    ``gs_session`` cookie (403 for an unsafe method without its ``X-CSRF-Token``, see
    :mod:`geo_service.api.session`); else None, the public."""
    if credentials is None:
        if request.headers.get("authorization"):
            raise Unauthorized("Authorization must be 'Bearer <api key>'")
        return await cookie_caller(request)
    principal = await key_owner(request, credentials.credentials)
    if principal is None:
        raise Unauthorized("unknown or revoked API key")
    return principal


CallerDep = Annotated[Principal | None, Depends(caller)]


async def signed_in(who: CallerDep) -> Principal:
    """The caller, who must have sent a key (401 otherwise)."""
    if who is None:
        raise Unauthorized("missing Authorization header: use 'Bearer <api key>'")
    return who


PrincipalDep = Annotated[Principal, Depends(signed_in)]


def require_role(*roles: str) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency answering the caller when their role is one of ``roles`` (401 without a
    key, 403 naming the roles needed otherwise); use as ``Annotated[Principal, Depends(…)]``."""

    async def with_role(principal: PrincipalDep) -> Principal:
        require(principal, *roles)
        return principal

    return with_role


FilerDep = Annotated[Principal, Depends(require_role(*FILERS))]

# --- small-count suppression: who may lower k ----------------------------------------------


K_MAX: Final = 1_000_000  # a k above any count: everything suppressed, and k fits any query


def k_threshold(k: int | None, who: Principal | None, k_min: int) -> int:
    """The suppression threshold: ``k_min`` unless asked; anyone may raise it, only staff
    keys (operator, planner, admin) may lower it (401 without a key, 403 for other roles)."""
    if k is None:
        return k_min
    if not 0 <= k <= K_MAX:
        raise InvalidInput(f"k must be between 0 and {K_MAX}, not {k}")
    if k < k_min:
        if who is None:
            raise Unauthorized(f"k below {k_min} needs an operator, planner or admin key")
        if who.role not in STAFF_ROLES:
            raise Forbidden(
                f"role {who.role!r} may not lower k below {k_min} "
                "(needs operator, planner or admin)"
            )
    return k


async def suppression_k(
    settings: SettingsDep,
    who: CallerDep,
    k: Annotated[
        int | None,
        Query(ge=0, le=K_MAX, description="suppress features of 1..k-1 reports; default the "
              "configured minimum, below it only for operator, planner and admin keys"),
    ] = None,
) -> int:
    """The k this request's layer is suppressed with (401/403 when the caller may not ask)."""
    return k_threshold(k, who, settings.analytics.k_min)


KDep = Annotated[int, Depends(suppression_k)]
