"""``create_app(settings)``: engine and Locators built in the lifespan, routers, error table."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles

from geo_service import __version__
from geo_service.api.locators import LocatorCache
from geo_service.api.responses import JSONBytes
from geo_service.api.routes import analytics, boundaries, health, locate, open311, reports, workflow
from geo_service.api.routes import maps as map_routes
from geo_service.api.routes import ogc as ogc_routes
from geo_service.api.routes import planning as planning_routes
from geo_service.api.routes import planning_publish as publish_routes
from geo_service.api.routes import tiles as tile_routes
from geo_service.api.routing_cache import RoutingCache
from geo_service.auth import KeyStore
from geo_service.db.engine import make_engine, resolve_database_url
from geo_service.errors import GeoServiceError, http_status
from geo_service.maps.assets import STATIC_DIR, STATIC_URL
from geo_service.settings import Settings
from geo_service.tiles.fastpath import TileHitMiddleware
from geo_service.tiles.service import TileService


def _error(status: int, code: str, message: str, details: Any = None) -> JSONBytes:
    return JSONBytes({"error": code, "message": message, "details": details}, status_code=status)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The HTTP service for ``settings`` (read from the environment when None)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url = resolve_database_url(settings.database)
        engine = make_engine(url, pool_size=settings.database.pool_size)
        app.state.settings = settings
        app.state.engine = engine
        app.state.locators = LocatorCache(engine, size=settings.locate.locator_cache_versions)
        app.state.routing = RoutingCache(engine)
        app.state.keys = KeyStore(engine)
        app.state.tiles = TileService(engine, settings.tiles)
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
    )

    @app.exception_handler(GeoServiceError)
    async def domain_error(_: Request, exc: GeoServiceError) -> JSONBytes:
        return _error(http_status(exc), exc.code, exc.message, exc.details)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONBytes:
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in exc.errors()]
        names = ", ".join(".".join(str(p) for p in e["loc"]) + f": {e['msg']}" for e in errors)
        return _error(422, "invalid_input", f"invalid request: {names}", errors)

    app.include_router(health.router)
    app.include_router(locate.router)
    app.include_router(boundaries.router)
    app.include_router(reports.router)
    app.include_router(open311.router)
    app.include_router(workflow.router)
    app.include_router(analytics.router)
    app.include_router(planning_routes.router)
    app.include_router(publish_routes.router)
    app.include_router(tile_routes.router)
    app.include_router(ogc_routes.router)
    app.add_middleware(TileHitMiddleware)  # cached tiles answered before routing
    app.include_router(map_routes.router)
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
