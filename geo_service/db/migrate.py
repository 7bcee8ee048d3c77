"""Bring a database to the schema with alembic (the only source of the schema)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


EXTENSION_TABLES = frozenset({"spatial_ref_sys"})
"""Tables an extension (PostGIS) creates: not ours, so alembic neither compares nor drops them."""


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """Alembic's filter: leave the extensions' own tables out of autogenerate comparisons."""
    return not (type_ == "table" and reflected and compare_to is None and name in EXTENSION_TABLES)


def alembic_config(url: str) -> Config:
    """An alembic Config for ``url`` that needs no alembic.ini."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Apply every migration up to ``revision``, then write the reference taxonomy."""
    command.upgrade(alembic_config(url), revision)
    if revision == "head":
        from geo_service.db.engine import make_engine
        from geo_service.routing import seed_reference_data

        engine = make_engine(url, pool_size=1)
        try:
            with engine.begin() as conn:
                seed_reference_data(conn)
        finally:
            engine.dispose()


def current_revision(url: str) -> str | None:
    """The revision the database is at, or None before the first migration."""
    from sqlalchemy import create_engine, text

    from geo_service.db.engine import sqlalchemy_url

    engine = create_engine(sqlalchemy_url(url))
    try:
        with engine.connect() as conn:
            exists = conn.execute(text("SELECT to_regclass('alembic_version')")).scalar()
            if not exists:
                return None
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()


def head_revision() -> str:
    """The newest revision the migration scripts define (what ``upgrade`` brings a database to)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config("postgresql://")).get_current_head()
    assert head is not None, "no migration scripts"
    return head
