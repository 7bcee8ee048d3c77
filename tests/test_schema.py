"""``geo_service.db.schema`` declares exactly what the migrations build: a freshly migrated
database and ``schema.metadata`` agree on every table, column, type, nullability, server
default, index, unique constraint and foreign key, and no table exists only in the database."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, Engine, text

from geo_service.db import schema
from geo_service.db.engine import make_engine
from geo_service.db.migrate import EXTENSION_TABLES, include_object, upgrade


@pytest.fixture(scope="module")
def migrated(new_database) -> Iterator[Engine]:  # type: ignore[no-untyped-def]
    """A fresh database brought to the head revision (no demo data: only the schema)."""
    url = str(new_database("geo_schema"))
    upgrade(url)
    eng = make_engine(url, pool_size=1)
    yield eng
    eng.dispose()


def _drift(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "compare_server_default": True,
                "include_object": include_object,
            },
        )
        return list(compare_metadata(ctx, schema.metadata))


def test_migrated_database_matches_schema_declaration(migrated: Engine) -> None:
    assert _drift(migrated) == []


def test_every_table_in_the_database_is_declared(migrated: Engine) -> None:
    with migrated.connect() as conn:
        tables = set(
            conn.execute(
                text(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
                )
            ).scalars()
        )
    ours = tables - EXTENSION_TABLES - {"alembic_version"}
    assert ours == set(schema.metadata.tables)


def test_comparison_detects_a_column_the_declaration_lacks(migrated: Engine) -> None:
    """The no-drift test can fail: a column added behind the declaration's back is reported."""
    with migrated.begin() as conn:
        conn.execute(text("ALTER TABLE units ADD COLUMN phone text"))
    try:
        diffs = _drift(migrated)
    finally:
        with migrated.begin() as conn:
            conn.execute(text("ALTER TABLE units DROP COLUMN phone"))
    assert [(d[0], d[2], d[3].name) for d in diffs] == [("remove_column", "units", "phone")]


_CATALOG = {
    "constraints": (
        "SELECT c.relname, k.conname, k.contype::text, pg_get_constraintdef(k.oid) "
        "FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid "
        "WHERE k.connamespace = CAST(:ns AS regnamespace)"
    ),
    "indexes": (
        "SELECT tablename, indexname, replace(indexdef, :ns || '.', '') FROM pg_indexes "
        "WHERE schemaname = :ns"
    ),
    "columns": (
        "SELECT table_name, column_name, ordinal_position, udt_name, character_maximum_length, "
        "is_nullable, column_default FROM information_schema.columns WHERE table_schema = :ns"
    ),
}


def _catalog(conn: Connection, namespace: str) -> dict[str, set[tuple[Any, ...]]]:
    """Definitions as PostgreSQL prints them with ``namespace`` first on the search path (so its
    own names print unqualified, as the migrated ones do under ``public``)."""
    path = f"{namespace}, public"
    conn.execute(text("SELECT set_config('search_path', :path, true)"), {"path": path})
    out = {}
    for what, sql in _CATALOG.items():
        rows = conn.execute(text(sql), {"ns": namespace}).all()
        out[what] = {tuple(r) for r in rows if r[0] in schema.metadata.tables}
    return out


def test_declaration_builds_the_same_catalog_as_the_migrations(migrated: Engine) -> None:
    """What alembic does not compare (CHECK texts, index methods and predicates, ON DELETE):
    ``schema.metadata`` created in a scratch namespace yields PostgreSQL's own definitions of
    every constraint, index and column identical to the migrated ones."""
    with migrated.connect() as conn:
        scratch = conn.begin()
        try:
            conn.execute(text("CREATE SCHEMA schema_probe"))
            schema.metadata.create_all(
                conn.execution_options(schema_translate_map={None: "schema_probe"})
            )
            declared = _catalog(conn, "schema_probe")
            built = _catalog(conn, "public")
        finally:
            scratch.rollback()  # the scratch namespace never outlives the test
    for what in _CATALOG:
        assert declared[what] == built[what], what
    assert len(built["constraints"]) > len(schema.metadata.tables)  # the probe saw something


def test_check_constraints_are_written_from_the_vocabularies(migrated: Engine) -> None:
    """Each CHECK in the database allows exactly the values of its vocabulary in ``schema``."""
    vocabularies = {
        "ck_areas_level": schema.AREA_LEVELS,
        "ck_boundary_versions_status": schema.VERSION_STATUSES,
        "ck_api_keys_role": schema.ROLES,
        "ck_categories_level": schema.HANDLING_LEVELS,
        "ck_reports_channel": schema.CHANNELS,
        "ck_reports_level": schema.HANDLING_LEVELS,
    }
    with migrated.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE contype = 'c' AND conname = ANY(:names)"
            ),
            {"names": list(vocabularies)},
        ).all()
    found = {name: definition for name, definition in rows}
    assert set(found) == set(vocabularies)
    for name, values in vocabularies.items():
        assert tuple(re.findall(r"'([^']*)'::character varying", found[name])) == values, name

