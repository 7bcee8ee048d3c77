"""A world of its own for the planning tests that publish: demo boundaries, a synthetic year of
reports and API keys in a database made from ``new_database``, cloned (``CREATE DATABASE ...
TEMPLATE``) for each test that changes it, and served by a real uvicorn when asked."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

import geopandas as gpd
import psycopg
from psycopg import sql
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from geo_service.auth import create_key
from geo_service.boundaries import versions
from geo_service.db.cluster import drop_database
from geo_service.db.engine import make_engine
from geo_service.demo.year import synthesize_year
from geo_service.locator import Locator
from geo_service.planning.layout_store import store_layout
from geo_service.planning.report_points import read_report_points
from geo_service.planning.suggest import Plan, plan_edits
from geo_service.reports.importer import import_history
from geo_service.routing import RoutingTable
from geo_service.settings import PlanningSettings
from tests.support import load_demo, serve  # noqa: F401  (serve: used by the planning tests)

ROLES = ("reporter", "operator", "planner", "admin")


@dataclass(frozen=True)
class World:
    """A database holding the demo (published from 2025-01-01), reports and one key per role."""

    url: str
    keys: dict[str, str]
    demo_id: int

    def engine(self) -> Engine:
        return make_engine(self.url, pool_size=2)


def build_world(new_database: Callable[[str], str], reports: int = 4000) -> World:
    """Migrate a new database, publish the demo, store ``reports`` synthetic reports."""
    url = load_demo(new_database("geo_plan"))
    engine = make_engine(url, pool_size=2)
    try:
        locator = Locator.from_database(url)
        with engine.begin() as conn:
            routing = RoutingTable.load(conn)
            keys = {role: create_key(conn, role, label=f"planning {role}") for role in ROLES}
        frame = synthesize_year(locator, n=reports, seed=20261130)
        import_history(engine, frame, locator, routing, workers=1)
    finally:
        engine.dispose()
    assert locator.version.id is not None
    return World(url, keys, locator.version.id)


def _admin(url: str) -> str:
    return make_url(url).set(database="postgres").render_as_string(hide_password=False)


def clone(world: World) -> World:
    """A copy of the world's database (its engines must be disposed: a template has no users)."""
    name = f"geo_plan_{uuid.uuid4().hex[:10]}"
    source = make_url(world.url).database
    assert source is not None
    with psycopg.connect(_admin(world.url), autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(source)
            )
        )
    url = make_url(world.url).set(database=name).render_as_string(hide_password=False)
    return World(url, world.keys, world.demo_id)


def drop(world: World) -> None:
    drop_database(_admin(world.url), str(make_url(world.url).database))


def plan(
    world: World, split: dict[str, int], merge: list[list[str]], base: int | None = None
) -> Plan:
    """The demo (or version ``base``) with these grids split and merged."""
    engine = world.engine()
    try:
        with engine.connect() as conn:
            info = versions.get_version(conn, base or world.demo_id)
            areas = versions.load_areas(conn, info.id)
            points = read_report_points(conn)
    finally:
        engine.dispose()
    locator = Locator.from_frame(areas, info)
    return plan_edits(areas, locator, points, split, merge, PlanningSettings())


def store_draft(world: World, frame: gpd.GeoDataFrame, label: str) -> int:
    """Store a layout frame as a draft (with its units) and return its id."""
    engine = world.engine()
    try:
        with engine.begin() as conn:
            return store_layout(conn, frame, label, "test")
    finally:
        engine.dispose()


def busiest_grids(world: World, n: int) -> list[str]:
    """The ``n`` grid codes with the most stored reports (ties: lowest code)."""
    engine = world.engine()
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT grid_code FROM reports WHERE grid_code IS NOT NULL GROUP BY grid_code "
                    "ORDER BY count(*) DESC, grid_code LIMIT :n"
                ),
                {"n": n},
            ).scalars()
            return list(rows)
    finally:
        engine.dispose()
