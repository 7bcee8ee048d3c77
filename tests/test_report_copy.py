"""Bulk loads go through one staging table per kind and session: a table reused by the next
transaction on the same connection, emptied at each commit and before each load, so a second
load in one transaction (a bulk split in two, an atomic import of several chunks) stores each
row once and nothing staged outlives its transaction. A database of its own keeps the shared
test database's counts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import numpy as np
import pytest
from sqlalchemy import Engine, text

from geo_service.db.engine import make_engine
from geo_service.demo.year import synthesize_year
from geo_service.locator import Locator
from geo_service.reports.importer import import_history
from geo_service.reports.intake import ingest
from geo_service.reports.schemas import ReportIn
from geo_service.routing import RoutingTable
from tests.support import load_demo


@pytest.fixture(scope="module")
def url(new_database) -> str:  # type: ignore[no-untyped-def]
    return load_demo(str(new_database("geo_copy")))


@pytest.fixture(scope="module")
def engine(url: str) -> Iterator[Engine]:
    eng = make_engine(url, pool_size=1)
    yield eng
    eng.dispose()


@pytest.fixture(scope="module")
def locator(url: str) -> Locator:
    return Locator.from_database(url)


@pytest.fixture(scope="module")
def routing(engine: Engine) -> RoutingTable:
    with engine.connect() as conn:
        return RoutingTable.load(conn)


def reports(locator: Locator, n: int, seed: int) -> list[ReportIn]:
    """``n`` reports at random points of the demo grids, filed an hour ago."""
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = locator.grids.total_bounds
    at = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    return [
        ReportIn.model_validate(
            {
                "channel": "grid_app",
                "category": "facility_damage",
                "description": f"report {seed}-{i}",
                "reported_at": at,
                "location": {"lon": rng.uniform(minx, maxx), "lat": rng.uniform(miny, maxy)},
            }
        )
        for i in range(n)
    ]


def count(engine: Engine, sql: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())


def test_two_bulks_in_one_transaction_are_each_stored_once(
    engine: Engine, locator: Locator, routing: RoutingTable
) -> None:
    before = count(engine, "SELECT count(*) FROM reports")
    first, second = reports(locator, 40, 1), reports(locator, 25, 2)
    with engine.begin() as conn:
        a = ingest(conn, first, [None] * len(first), locator, routing)
        b = ingest(conn, second, [None] * len(second), locator, routing)
    assert [o.status for o in a + b] == ["stored"] * 65
    assert count(engine, "SELECT count(*) FROM reports") == before + 65
    ids = [o.report["id"] for o in a + b if o.report is not None]
    assert len(set(ids)) == 65 and ids == sorted(ids)


def test_nothing_staged_outlives_its_transaction(
    engine: Engine, locator: Locator, routing: RoutingTable
) -> None:
    batch = reports(locator, 30, 3)
    with engine.connect() as conn:
        with conn.begin():
            ingest(conn, batch, [None] * len(batch), locator, routing)
            assert conn.execute(text("SELECT count(*) FROM intake_staging")).scalar_one() == 30
        # the same session keeps its staging table, empty, for the next request
        assert conn.execute(text("SELECT count(*) FROM intake_staging")).scalar_one() == 0


def test_an_atomic_import_of_several_chunks_stores_each_report_and_event_once(
    engine: Engine, locator: Locator, routing: RoutingTable
) -> None:
    year = synthesize_year(locator, n=900, seed=11, end=dt.date(2025, 6, 30), prefix="copy")
    before = count(engine, "SELECT count(*) FROM report_events")
    stats = import_history(engine, year, locator, routing, chunk=250, atomic=True)
    assert (stats.stored, stats.skipped, stats.refused) == (900, 0, [])
    assert (
        count(engine, "SELECT count(*) FROM reports WHERE idempotency_key LIKE 'import:copy-%'")
        == 900
    )
    assert count(engine, "SELECT count(*) FROM report_events") - before == stats.events
    again = import_history(engine, year, locator, routing, chunk=250, atomic=True)
    assert (again.stored, again.skipped, again.events) == (0, 900, 0)
