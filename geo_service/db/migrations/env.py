"""Alembic environment: the URL comes from the Config (set by geo_service.db.migrate); the
target is ``geo_service.db.schema.metadata``, the one declaration of the schema."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from geo_service.db.engine import sqlalchemy_url
from geo_service.db.migrate import include_object
from geo_service.db.schema import metadata

target_metadata = metadata


def run_migrations_online() -> None:
    """Run the migrations on a connection of their own, comparing against :data:`metadata`."""
    url = context.config.get_main_option("sqlalchemy.url")
    assert url, "geo_service.db.migrate sets sqlalchemy.url"
    engine = create_engine(sqlalchemy_url(url))
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            include_object=include_object,
            compare_type=True,
            compare_server_default=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
