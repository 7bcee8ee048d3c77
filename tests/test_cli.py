"""``geo-service`` commands: migrate any database, import boundaries, locate from the shell."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from geo_service.cli import app
from geo_service.db.engine import sqlalchemy_url
from geo_service.db.migrate import current_revision, head_revision
from tests.layouts import small_layout

runner = CliRunner()


@pytest.fixture(scope="module")
def empty_url(new_database) -> str:  # type: ignore[no-untyped-def]
    return str(new_database("geo_cli"))


def test_migrate_brings_an_empty_database_to_the_schema_and_is_idempotent(
    empty_url: str, monkeypatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", empty_url)
    assert current_revision(empty_url) is None
    for _ in range(2):
        result = runner.invoke(app, ["migrate"])
        assert result.exit_code == 0, result.output
    assert current_revision(empty_url) == head_revision()
    eng = create_engine(sqlalchemy_url(empty_url))
    with eng.connect() as conn:
        tables = set(
            conn.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            ).scalars()
        )
        gist = conn.execute(
            text("SELECT count(*) FROM pg_indexes WHERE indexdef LIKE '%USING gist%'")
        ).scalar_one()
    eng.dispose()
    assert {"boundary_versions", "areas", "version_areas", "area_parts"} <= tables
    assert gist >= 2


def test_import_publish_list_and_locate(empty_url: str, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("DATABASE_URL", empty_url)
    runner.invoke(app, ["migrate"])
    path = tmp_path / "small.geojson"
    small_layout().to_file(path)
    result = runner.invoke(
        app,
        [
            "boundaries",
            "import",
            str(path),
            "--version",
            "cli-v1",
            "--crs",
            "wgs84",
            "--effective-from",
            "2025-02-01",
            "--publish",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "cli-v1" in result.output and "published" in result.output
    listing = runner.invoke(app, ["boundaries", "list"])
    assert "cli-v1" in listing.output
    located = runner.invoke(app, ["locate", "120.7025", "30.7475"])
    assert located.exit_code == 0, located.output
    out = json.loads(located.output)
    assert out["grid"][-1]["code"] == "330411100001001"
    assert out["version"]["label"] == "cli-v1"
    swept = runner.invoke(app, ["boundaries", "reroute-open-cases"])
    assert swept.exit_code == 0, swept.output
    assert "0 open case(s) checked, 0 moved" in swept.output


def test_refused_import_exits_non_zero_listing_problems(
    empty_url: str, monkeypatch, tmp_path
) -> None:
    monkeypatch.setenv("DATABASE_URL", empty_url)
    frame = small_layout()
    frame.loc[frame["code"] == "330411100001001", "parent_code"] = "330411100009"
    path = tmp_path / "bad.geojson"
    frame.to_file(path)
    result = runner.invoke(app, ["boundaries", "import", str(path), "--version", "bad"])
    assert result.exit_code == 2
    assert "boundary_validation_failed" in result.output
    assert "330411100009" in result.output
    validate = runner.invoke(app, ["boundaries", "validate", str(path)])
    assert validate.exit_code == 1 and "unknown_parent" in validate.output
