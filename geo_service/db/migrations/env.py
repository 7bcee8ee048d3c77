"""Alembic environment: the URL comes from the Config (set by geo_service.db.migrate)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from geo_service.db.engine import sqlalchemy_url
from geo_service.db.models import Base

target_metadata = Base.metadata


def run_migrations_online() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url, "geo_service.db.migrate sets sqlalchemy.url"
    engine = create_engine(sqlalchemy_url(url))
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
