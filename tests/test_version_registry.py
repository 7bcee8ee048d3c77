"""The per-version registry (``geo_service.locator.registry``): everything derived from a
boundary version (Locator, areas, analytics frames, the tile copy note) is dropped once when a
publish or rollback commits and rebuilt once on next use; a publish made by another process
shows within the re-check interval (at once for a caller that has seen the new layer
generation); drafts are keyed by their content; the registry is bounded in bytes; the routing
table follows a publish."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Hashable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from geo_service.analytics import areas as area_data
from geo_service.api.routing_cache import RoutingCache
from geo_service.boundaries import publish
from geo_service.boundaries.importer import import_layout
from geo_service.db.engine import make_engine
from geo_service.db.migrate import upgrade
from geo_service.locator.registry import VersionRegistry, database_of
from geo_service.planning.impact import side
from geo_service.store import versions as store
from geo_service.store.tiles import generation_counters
from geo_service.tiles.prepared import PreparedVersions
from tests.layouts import small_layout

TODAY = dt.date.today()
PAST = dt.date(2025, 6, 1)  # in the first version's range before and after any publish
KINDS: frozenset[Hashable] = frozenset(
    {
        "locator",
        "areas",
        ("analytics-areas", "grid"),
        ("analytics-areas", "town"),
        "analytics-coverage",
        "tile-copy",
    }
)


@pytest.fixture
def engine(new_database, tmp_path: Path) -> Iterator[Engine]:  # type: ignore[no-untyped-def]
    """The small layout published from 2025-01-01, and a renamed copy of it as a draft."""
    url = str(new_database("geo_registry"))
    upgrade(url)
    layout = tmp_path / "small.geojson"
    small_layout().to_file(layout)
    renamed = small_layout()
    renamed["name"] = "新" + renamed["name"]
    renamed_path = tmp_path / "renamed.geojson"
    renamed.to_file(renamed_path)
    eng = make_engine(url, pool_size=4)
    scratch = VersionRegistry()  # the set-up's own: the tests' registries start empty
    import_layout(eng, layout, "v1", crs="wgs84", effective_from=dt.date(2025, 1, 1),
                  publish=True, registry=scratch)  # fmt: skip
    import_layout(eng, renamed_path, "v2", crs="wgs84", registry=scratch)
    yield eng
    eng.dispose()


def ids(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        return tuple(store.by_label(conn, label).id for label in ("v1", "v2"))  # type: ignore[union-attr,return-value]


def derive_everything(registry: VersionRegistry, engine: Engine, version_id: int) -> None:
    """Ask for every kind of item of ``version_id`` (in force on :data:`PAST`)."""
    with engine.connect() as conn:
        registry.locator(conn, version_id)
        side(registry, conn, version_id)
        area_data.areas(conn, "grid", PAST, registry)
        area_data.areas(conn, "town", PAST, registry)
        area_data.coverage(conn, None, PAST, registry)
        layer_generation, _ = generation_counters(conn)
        assert PreparedVersions(engine, registry).in_force(conn, PAST, layer_generation) == (
            version_id
        )


def counts(counter: dict[tuple[str, int, Hashable], int], engine: Engine, vid: int) -> dict:
    db = database_of(engine)
    return {kind: counter.get((db, vid, kind), 0) for kind in KINDS}


def test_a_publish_drops_every_item_of_the_old_version_once_and_each_is_rebuilt_once(
    engine: Engine,
) -> None:
    v1, v2 = ids(engine)
    registry = VersionRegistry(recheck_s=0.2)
    db = database_of(engine)
    derive_everything(registry, engine, v1)
    derive_everything(registry, engine, v1)  # held: nothing is built twice
    assert set(registry.held(db)) == {(v1, kind) for kind in KINDS}
    assert counts(registry.builds, engine, v1) == dict.fromkeys(KINDS, 1)

    publish.publish(engine, v2, TODAY, registry=registry)
    assert registry.held(db) == []  # dropped at commit, in the process that published
    assert counts(registry.drops, engine, v1) == dict.fromkeys(KINDS, 1)

    time.sleep(0.3)  # past the re-check: the schedule is read again and found unchanged
    derive_everything(registry, engine, v1)
    derive_everything(registry, engine, v1)
    assert counts(registry.builds, engine, v1) == dict.fromkeys(KINDS, 2)
    assert counts(registry.drops, engine, v1) == dict.fromkeys(KINDS, 1)  # once, not per check
    with engine.connect() as conn:  # why the old version's items had to go
        assert registry.locator(conn, v1).version.effective_to == TODAY
        assert registry.in_force(conn).id == v2


def test_a_rollback_drops_everything_once_too(engine: Engine) -> None:
    v1, v2 = ids(engine)
    registry = VersionRegistry()
    publish.publish(engine, v2, TODAY, registry=registry)
    derive_everything(registry, engine, v1)
    assert asyncio.run(registry.locator_in_force(engine)).version.id == v2
    publish.rollback(engine, v2, registry=registry)
    assert registry.held(database_of(engine)) == []
    assert counts(registry.drops, engine, v1) == dict.fromkeys(KINDS, 1)
    assert registry.drops[(database_of(engine), v2, "locator")] == 1
    assert asyncio.run(registry.locator_in_force(engine)).version.id == v1


def test_a_publish_made_by_another_process_shows_within_the_recheck_interval(
    engine: Engine,
) -> None:
    v1, v2 = ids(engine)
    ours = VersionRegistry(recheck_s=60.0)
    tiles = VersionRegistry(recheck_s=60.0)
    with engine.connect() as conn:
        assert ours.in_force(conn).id == tiles.in_force(conn).id == v1
        ours.locator(conn, v1)
    publish.publish(engine, v2, TODAY, registry=VersionRegistry())  # another process's
    with engine.connect() as conn:
        assert ours.in_force(conn).id == v1  # within the interval: the schedule it read
        layer_generation, _ = generation_counters(conn)
        assert tiles.in_force(conn, layer_generation=layer_generation).id == v2  # at once
    ours.recheck_s = 0.2
    time.sleep(0.3)
    assert asyncio.run(ours.locator_in_force(engine)).version.id == v2
    assert ours.drops[(database_of(engine), v1, "locator")] == 1


def test_an_edited_draft_is_a_new_item_and_its_old_one_is_never_answered(
    engine: Engine,
) -> None:
    _, v2 = ids(engine)
    registry = VersionRegistry()
    with engine.begin() as conn:
        assert len(side(registry, conn, v2).locator) == 16
        grid = store.areas_of(conn, v2, codes=["330411100001001"], geometry=False)[0]
        store.unlink(conn, v2, [grid.area_id])
    with engine.connect() as conn:
        edited = side(registry, conn, v2)
    assert len(edited.locator) == 15 and "330411100001001" not in set(edited.areas["code"])
    assert registry.builds[(database_of(engine), v2, "areas")] == 2


def test_the_registry_is_bounded_in_bytes_and_keeps_the_last_item_used(engine: Engine) -> None:
    v1, v2 = ids(engine)
    registry = VersionRegistry(max_bytes=1)
    with engine.connect() as conn:
        first = registry.locator(conn, v1)
        one = registry.nbytes
        registry.locator(conn, v2)
    assert registry.held(database_of(engine)) == [(v2, "locator")]
    assert one >= first.index.state.nbytes + first.index.xs.nbytes  # an honest estimate
    roomy = VersionRegistry(max_bytes=10 * one)
    with engine.connect() as conn:
        roomy.locator(conn, v1)
        roomy.locator(conn, v2)
    assert set(roomy.held(database_of(engine))) == {(v1, "locator"), (v2, "locator")}


def test_the_routing_table_is_read_again_after_a_publish_not_only_after_its_ttl(
    engine: Engine,
) -> None:
    _, v2 = ids(engine)
    registry = VersionRegistry()
    routing = RoutingCache(engine, registry, ttl_s=3600)
    with engine.connect() as conn:
        registry.in_force(conn)
    first = asyncio.run(routing.get())
    assert asyncio.run(routing.get()) is first  # within its ttl, nothing changed
    publish.publish(engine, v2, TODAY, registry=registry)  # seeds units, so: read again
    assert asyncio.run(routing.get()) is not first
