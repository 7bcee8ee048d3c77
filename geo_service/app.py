"""``create_app(settings)``: engine and version registry set up in the lifespan, routers, error
table."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from geo_service import __version__
from geo_service.api.deps import storable_url
from geo_service.api.failsafe import KeepAlive, allowed_methods
from geo_service.api.limits import BodyLimitMiddleware
from geo_service.api.locate_fastpath import LocateFastPath
from geo_service.api.openapi import install as install_openapi
from geo_service.api.origin import OriginMiddleware
from geo_service.api.ratelimit import RateLimitMiddleware, install_statement_timeouts
from geo_service.api.responses import JSONBytes, error_response
from geo_service.api.routes import analytics, boundaries, health, locate, open311, reports, workflow
from geo_service.api.routes import audit as audit_routes
from geo_service.api.routes import console as console_routes
from geo_service.api.routes import docs as docs_routes
from geo_service.api.routes import login as login_routes
from geo_service.api.routes import maps as map_routes
from geo_service.api.routes import ogc as ogc_routes
from geo_service.api.routes import planner as planner_routes
from geo_service.api.routes import planning as planning_routes
from geo_service.api.routes import planning_publish as publish_routes
from geo_service.api.routes import stats as stats_routes
from geo_service.api.routes import tiles as tile_routes
from geo_service.api.routing_cache import RoutingCache
from geo_service.api.session import install as install_sessions
from geo_service.auth import KeyStore
from geo_service.db.engine import make_engine, resolve_database_url
from geo_service.errors import GeoServiceError, from_driver_error, http_status
from geo_service.locator.registry import process_registry
from geo_service.maps.assets import STATIC_DIR, STATIC_URL
from geo_service.settings import Settings
from geo_service.tiles.fastpath import TileHitMiddleware
from geo_service.tiles.service import TileService


def create_app(settings: Settings | None = None) -> FastAPI:
    """The HTTP service for ``settings`` (read from the environment when None)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url = resolve_database_url(settings.database)
        engine = make_engine(url, pool_size=settings.database.pool_size)
        install_statement_timeouts(engine)  # each caller's role's, GEO_STATEMENT_TIMEOUT_MS_*
        app.state.settings = settings
        app.state.engine = engine
        registry = app.state.registry = process_registry(
            max_bytes=int(settings.locate.registry_mb * 1024 * 1024),
            recheck_s=settings.locate.version_recheck_s,
        )  # everything derived from a boundary version (see geo_service.locator.registry)
        app.state.routing = RoutingCache(engine, registry)  # units: reread after a publish
        app.state.keys = KeyStore(  # GEO_AUTH_*: revocation reaches every worker within 1 s
            engine, settings.auth.key_recheck_s, settings.auth.key_cache_entries
        )
        app.state.tiles = TileService(engine, settings.tiles, registry)
        try:
            yield
        finally:
            engine.dispose()

    app = FastAPI(
        title="geo_service",
        version=__version__,
        description="Grid-governance spatial core: locate a point to its grid and unit.",
        lifespan=lifespan,
        default_response_class=JSONBytes,
        dependencies=[Depends(storable_url)],  # no NUL in any path or query string
        docs_url=None,  # /docs from the vendored Swagger UI (api/routes/docs.py)
        redoc_url=None,
    )
    install_sessions(app)  # page_role: 303 to /login, 403 page (geo_service.api.session)
    install_openapi(app)  # the document as the service behaves (geo_service.api.openapi)
    build_stack = app.build_middleware_stack
    app.build_middleware_stack = lambda: KeepAlive(build_stack())  # type: ignore[method-assign]

    @app.exception_handler(GeoServiceError)
    async def domain_error(_: Request, exc: GeoServiceError) -> JSONBytes:
        answer = error_response(http_status(exc), exc.code, exc.message, exc.details)
        if exc.retry_after_s is not None:
            answer.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
        return answer

    @app.exception_handler(DBAPIError)
    async def driver_error(request: Request, exc: DBAPIError) -> JSONBytes:
        """Driver errors that are the caller's doing (a statement timeout…) answer through the
        error table (``errors.DRIVER_ERRORS``); any other is a server fault."""
        domain = from_driver_error(exc)
        if domain is None:
            raise exc
        return await domain_error(request, domain)

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> JSONBytes:
        """Whatever escaped the routes and middleware: an outage is a 503 (Retry-After), the
        rest a JSON 500; the connection stays open (``geo_service.api.failsafe``)."""
        domain = from_driver_error(exc)
        if domain is not None:
            return await domain_error(request, domain)
        return error_response(500, "internal_error", "internal server error")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONBytes:
        """Routing's own answers (no such path, a method the path does not take) in the
        service's error body; a 405 lists every method the path takes."""
        headers = dict(exc.headers or {})
        status = 422 if exc.status_code == 400 else exc.status_code  # a body that will not parse
        if status == 405:
            headers["Allow"] = ", ".join(sorted(allowed_methods(request.app, request.scope)))
        code = {404: "not_found", 405: "method_not_allowed", 422: "invalid_input"}
        answer = error_response(status, code.get(status, "http_error"), str(exc.detail))
        answer.headers.update(headers)
        return answer

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONBytes:
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in exc.errors()]
        names = ", ".join(
            ".".join(str(p) for p in e["loc"]) + f": {e['msg']}" + _given(raw.get("input"))
            for e, raw in zip(errors, exc.errors(), strict=True)
        )
        return error_response(422, "invalid_input", f"invalid request: {names}", errors)

    app.include_router(health.router)
    app.include_router(locate.router)
    app.include_router(boundaries.router)
    app.include_router(reports.router)
    app.include_router(open311.router)
    app.include_router(workflow.router)
    app.include_router(analytics.router)
    app.include_router(stats_routes.router)
    app.include_router(planning_routes.router)
    app.include_router(publish_routes.router)
    app.include_router(tile_routes.router)
    app.include_router(ogc_routes.router)
    app.include_router(audit_routes.router)
    app.include_router(login_routes.router)  # /login, /logout (browser sessions)
    app.include_router(docs_routes.router)  # /docs, assets local
    app.include_router(planner_routes.router)  # /planner, the planner's workbench
    app.add_middleware(OriginMiddleware)  # innermost: the client address for the audit log
    app.add_middleware(TileHitMiddleware)  # cached tiles answered before routing
    app.add_middleware(LocateFastPath)  # plain GET /v1/locate answered before routing
    app.add_middleware(BodyLimitMiddleware, limits=settings.body_limits)  # GEO_BODY_LIMIT_*
    app.add_middleware(  # outermost of ours: GEO_RATE_*, GEO_STATEMENT_TIMEOUT_MS_*
        RateLimitMiddleware, rates=settings.rate_limits, timeouts=settings.statement_timeouts
    )
    app.include_router(map_routes.router)
    app.include_router(console_routes.router)  # /console and /v1/console (the wall screen)
    app.mount(STATIC_URL, StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> dict[str, Any]:
        return {
            "service": "geo_service",
            "version": __version__,
            "links": {
                "docs": "/docs",
                "health": "/health",
                "locate": "/v1/locate",
                "versions": "/v1/boundaries/versions",
            },
        }

    return app


def _given(value: object) -> str:
    """The rejected value as the caller sent it, when it is a short scalar (a name or a date
    written wrong is easier to fix when the answer quotes it); nothing for objects or lists."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return ""
    text = value if isinstance(value, str) else str(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f" (got {text!r})"
