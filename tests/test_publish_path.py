"""One publish path: ``geo-service boundaries publish``, ``boundaries import --publish`` and
``POST …/publish`` refuse the same drafts with the same message, seed the same units and move
the same open cases with the same events (``geo_service.boundaries.publish``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
import shapely
from fastapi.testclient import TestClient
from sqlalchemy import text
from typer.testing import CliRunner

from geo_service.app import create_app
from geo_service.auth import create_key
from geo_service.boundaries import versions
from geo_service.boundaries.importer import new_draft
from geo_service.cli import app
from geo_service.db.engine import make_engine
from geo_service.db.migrate import upgrade
from geo_service.routing import UNITS_FOR_LEVEL
from geo_service.settings import DatabaseSettings, Settings
from geo_service.store import versions as store
from tests.conftest import auth
from tests.layouts import small_layout
from tests.planning_world import World, clone, drop

runner = CliRunner()
TODAY = dt.date.today()
KEPT, MERGED_AWAY, NEW = "330411100001001", "330411100001002", "330411100001005"
UNCHANGED = "330411100001003"
IN_MERGED_AWAY = [(120.707, 30.747), (120.708, 30.748), (120.706, 30.746)]
IN_UNCHANGED = (120.702, 30.742)
SNAPSHOT = text(
    "SELECT id, status, grid_code, community_code, town_code, boundary_version_id, unit_id, "
    "routed_by FROM reports ORDER BY id"
)
RELOCATIONS = text(
    "SELECT report_id, from_status, to_status, unit_id, actor, note FROM report_events "
    "WHERE action = 'relocate' ORDER BY report_id"
)


def _event(e: Any) -> tuple[Any, ...]:
    """A relocation without its actor (the command runs as ``system``, HTTP as the caller)."""
    return (e.report_id, e.from_status, e.to_status, e.unit_id, e.note)


def cli(*args: str) -> str:
    """Run a command that must succeed; its output."""
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def rows(url: str, query: Any, **params: Any) -> list[Any]:
    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            return list(conn.execute(query, params).all())
    finally:
        engine.dispose()


def merged_layout() -> gpd.GeoDataFrame:
    """The small layout with grids 001 and 002 of the first community merged into a new 005."""
    frame = small_layout()
    pair = frame["code"].isin([KEPT, MERGED_AWAY])
    merged = {
        "code": NEW,
        "name": "合并网格",
        "level": "grid",
        "parent_code": KEPT[:12],
        "households": int(frame.loc[pair, "households"].sum()),
        "geometry": shapely.union_all(frame.loc[pair, "geometry"].to_numpy()),
    }
    rest = frame.loc[~pair]
    return gpd.GeoDataFrame([*rest.to_dict("records"), merged], geometry="geometry", crs=4326)


def crowded_layout() -> gpd.GeoDataFrame:
    """The small layout with two grids over the 1,000-household limit (a draft may hold them,
    publishing may not when the policy makes size limits errors)."""
    frame = small_layout()
    frame.loc[frame["code"] == KEPT, "households"] = 1500
    frame.loc[frame["code"] == UNCHANGED, "households"] = 2500
    return frame


def write(frame: gpd.GeoDataFrame, folder: Path, name: str) -> str:
    path = folder / f"{name}.geojson"
    frame.to_file(path)
    return str(path)


@pytest.fixture
def db(new_database, monkeypatch) -> str:  # type: ignore[no-untyped-def]
    """An empty migrated database that the commands (``DATABASE_URL``) work on."""
    url = str(new_database("geo_publish"))
    upgrade(url)
    monkeypatch.setenv("DATABASE_URL", url)
    return url


@dataclass(frozen=True)
class Cases:
    """The small layout in force since 2025, cases filed into it (two open and one rejected in
    the grid a merge takes away, one open elsewhere), and the merged layout's file."""

    url: str
    keys: dict[str, str]
    open_merged_away: list[int]
    rejected: int
    open_unchanged: int
    merged_path: str


@pytest.fixture
def cases(db: str, tmp_path: Path) -> Cases:
    cli("boundaries", "import", write(small_layout(), tmp_path, "small"), "--version", "v1",
        "--crs", "wgs84", "--effective-from", "2025-01-01", "--publish")  # fmt: skip
    engine = make_engine(db, pool_size=1)
    with engine.begin() as conn:
        keys = {r: create_key(conn, r, label=f"publish {r}") for r in ("reporter", "operator",
                                                                      "planner")}  # fmt: skip
    engine.dispose()

    def file(client: TestClient, lon: float, lat: float) -> int:
        body = {"channel": "grid_app", "category": "sanitation", "description": "垃圾未清运",
                "reported_at": "2025-06-01T09:30:00+08:00",
                "location": {"lon": lon, "lat": lat, "crs": "wgs84"}}  # fmt: skip
        r = client.post("/v1/reports", json=body, headers=auth(keys["reporter"]))
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    with TestClient(create_app(Settings(database=DatabaseSettings(url=db)))) as client:
        ids = [file(client, *p) for p in IN_MERGED_AWAY]
        unchanged = file(client, *IN_UNCHANGED)
        r = client.post(f"/v1/reports/{ids[-1]}/transitions", json={"to": "rejected",
                        "note": "重复"}, headers=auth(keys["operator"]))  # fmt: skip
        assert r.status_code == 200, r.text
    merged = write(merged_layout(), tmp_path, "merged")
    return Cases(db, keys, ids[:-1], ids[-1], unchanged, merged)


def test_the_cli_refuses_a_draft_with_validation_errors_naming_each_as_http_does(
    db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GEO_PLANNING_SIZE_LIMITS_BLOCK", "true")  # household limits block
    cli("boundaries", "import", write(small_layout(), tmp_path, "small"), "--version", "v1",
        "--crs", "wgs84", "--effective-from", "2025-01-01", "--publish")  # fmt: skip
    crowded = write(crowded_layout(), tmp_path, "crowded")
    cli("boundaries", "import", crowded, "--version", "crowded", "--crs", "wgs84")  # a draft
    refused = runner.invoke(app, ["boundaries", "publish", "crowded", "--effective-from",
                                  TODAY.isoformat()])  # fmt: skip
    assert refused.exit_code != 0
    said = " ".join(refused.output.split())
    assert "boundary_validation_failed" in said
    assert f"grid '{KEPT}' holds 1500 households" in said
    assert f"grid '{UNCHANGED}' holds 2500 households" in said
    (in_force,) = rows(db, text("SELECT label FROM boundary_versions WHERE status = 'published'"))
    assert in_force.label == "v1"
    engine = make_engine(db, pool_size=1)
    with engine.connect() as conn:
        draft = versions.get_version(conn, "crowded")
    engine.dispose()
    assert draft.status == "draft" and draft.effective_from is None
    with TestClient(create_app(Settings(database=DatabaseSettings(url=db)))) as client:
        engine = make_engine(db, pool_size=1)
        with engine.begin() as conn:
            planner = create_key(conn, "planner", label="publish planner")
        engine.dispose()
        r = client.post(
            f"/v1/boundaries/versions/{draft.id}/publish",
            json={"effective_from": TODAY.isoformat()},
            headers=auth(planner),
        )
    assert r.status_code == 422
    assert " ".join(r.json()["message"].split()) in said  # the same refusal, word for word
    before = rows(db, text("SELECT count(*) AS n FROM boundary_versions"))
    again = runner.invoke(app, ["boundaries", "import", crowded, "--version", "crowded-2",
                                "--crs", "wgs84", "--publish"])  # fmt: skip
    assert again.exit_code != 0 and "too_many_households" in again.output
    assert rows(db, text("SELECT count(*) AS n FROM boundary_versions")) == before


def test_the_cli_publish_of_a_merge_moves_open_cases_exactly_as_http_does(cases: Cases) -> None:
    cli("boundaries", "import", cases.merged_path, "--version", "merged", "--crs", "wgs84")
    twin = clone(World(cases.url, cases.keys, 0))  # the same draft, for the HTTP publish
    try:
        (draft,) = rows(cases.url, text("SELECT id FROM boundary_versions WHERE label = 'merged'"))
        before = {r.id: r for r in rows(cases.url, SNAPSHOT)}

        said = cli("boundaries", "publish", "merged", "--effective-from", TODAY.isoformat())
        assert "2 moved to another grid" in " ".join(said.split())
        with TestClient(create_app(Settings(database=DatabaseSettings(url=twin.url)))) as client:
            r = client.post(f"/v1/boundaries/versions/{draft.id}/publish",
                            json={"effective_from": TODAY.isoformat()},
                            headers=auth(cases.keys["planner"]))  # fmt: skip
        assert r.status_code == 200, r.text
        assert r.json()["open_cases"]["moved"] == 2

        after = {r.id: r for r in rows(cases.url, SNAPSHOT)}
        for i in cases.open_merged_away:
            assert before[i].grid_code == MERGED_AWAY
            assert after[i].grid_code == NEW and after[i].boundary_version_id == draft.id
        assert after[cases.rejected] == before[cases.rejected]  # closed: keeps its grid
        assert after[cases.open_unchanged] == before[cases.open_unchanged]  # grid unchanged
        events = rows(cases.url, RELOCATIONS)
        assert [e.report_id for e in events] == cases.open_merged_away
        assert all(e.actor == "system" and f"{MERGED_AWAY} → {NEW}" in e.note for e in events)
        # exactly what the HTTP publish did on the twin database
        assert rows(twin.url, SNAPSHOT) == list(after.values())
        http_events = rows(twin.url, RELOCATIONS)
        assert [e.actor for e in http_events] == ["planner"] * 2
        assert [_event(e) for e in http_events] == [_event(e) for e in events]
    finally:
        drop(twin)


def test_import_publish_moves_open_cases_and_seeds_units(cases: Cases) -> None:
    said = cli("boundaries", "import", cases.merged_path, "--version", "merged", "--crs",
               "wgs84", "--effective-from", TODAY.isoformat(), "--publish")  # fmt: skip
    assert "2 moved to another grid" in " ".join(said.split())
    moved = {r.id: r.grid_code for r in rows(cases.url, SNAPSHOT)}
    assert [moved[i] for i in cases.open_merged_away] == [NEW, NEW]
    missing = rows(cases.url, text(
        "SELECT va.code, t.unit_type FROM version_areas va "
        "JOIN boundary_versions v ON v.id = va.version_id AND v.label = 'merged' "
        "JOIN unnest(CAST(:levels AS text[]), CAST(:types AS text[])) AS t(level, unit_type) "
        "ON t.level = va.level "
        "WHERE NOT EXISTS (SELECT 1 FROM units u WHERE u.area_code = va.code "
        "AND u.unit_type = t.unit_type)"),
        levels=[lvl for lvl, types in UNITS_FOR_LEVEL.items() for _ in types],
        types=[t for types in UNITS_FOR_LEVEL.values() for t in types])  # fmt: skip
    assert missing == []
    new_units = rows(cases.url, text("SELECT unit_type FROM units WHERE area_code = :c"), c=NEW)
    assert {u.unit_type for u in new_units} == set(UNITS_FOR_LEVEL["grid"])


def test_the_cli_publish_seeds_the_units_of_a_draft_written_without_them(
    cases: Cases,
) -> None:
    engine = make_engine(cases.url, pool_size=1)
    with engine.begin() as conn:  # a draft stored by another tool: areas, no units
        vid = new_draft(conn, "bare", "another tool")
        store.add_areas(conn, vid, merged_layout())
    engine.dispose()
    assert rows(cases.url, text("SELECT id FROM units WHERE area_code = :c"), c=NEW) == []
    cli("boundaries", "publish", "bare", "--effective-from", TODAY.isoformat())
    new_units = rows(cases.url, text("SELECT unit_type FROM units WHERE area_code = :c"), c=NEW)
    assert {u.unit_type for u in new_units} == set(UNITS_FOR_LEVEL["grid"])


def test_the_cli_rolls_back_and_open_cases_move_back(cases: Cases) -> None:
    cli("boundaries", "import", cases.merged_path, "--version", "merged", "--crs", "wgs84",
        "--effective-from", TODAY.isoformat(), "--publish")  # fmt: skip
    said = " ".join(cli("boundaries", "rollback", "merged").split())
    assert "merged" in said and "withdrawn" in said and "v1" in said and "2 moved" in said
    back = {r.id: r.grid_code for r in rows(cases.url, SNAPSHOT)}
    assert [back[i] for i in cases.open_merged_away] == [MERGED_AWAY, MERGED_AWAY]
    again = runner.invoke(app, ["boundaries", "rollback", "merged"])
    assert again.exit_code != 0 and "only the latest published version" in again.output
