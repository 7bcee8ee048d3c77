"""Engines from libpq URLs, and the one place that decides which database to use."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from geo_service.db.cluster import PrivateCluster
from geo_service.settings import DatabaseSettings


def resolve_database_url(settings: DatabaseSettings) -> str:
    """``DATABASE_URL`` when set, else the private cluster (started on demand)."""
    if settings.url:
        return settings.url
    return PrivateCluster(settings.data_dir).url()


def sqlalchemy_url(url: str) -> str:
    """A libpq URL (``postgresql://...``) with our driver, psycopg 3, named for SQLAlchemy."""
    parsed = make_url(url)
    if parsed.get_backend_name() not in {"postgresql", "postgres"}:
        raise ValueError(f"not a PostgreSQL URL: {parsed.render_as_string(hide_password=True)}")
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def libpq_url(url: str) -> str:
    """The plain libpq form of a URL, whichever driver name it carries."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def make_engine(url: str, pool_size: int = 5) -> Engine:
    """A synchronous engine (CLI, migrations, imports)."""
    return create_engine(sqlalchemy_url(url), pool_size=pool_size, pool_pre_ping=True)


def make_async_engine(url: str, pool_size: int = 10) -> AsyncEngine:
    """An asyncio engine for the HTTP service."""
    return create_async_engine(sqlalchemy_url(url), pool_size=pool_size, pool_pre_ping=True)
