"""Fixtures: a throw-away database on a real PostGIS (DATABASE_URL's server, or the private
cluster), migrated once per session, with the Xiuzhou demo boundaries published."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from geo_service.app import create_app
from geo_service.db.cluster import PrivateCluster, drop_database, ensure_database
from geo_service.db.engine import libpq_url, make_engine
from geo_service.locator import Locator
from geo_service.settings import PROJECT_ROOT, DatabaseSettings, Settings
from tests.browser_support import chromium
from tests.support import DEMO_FROM, DEMO_LABEL, DEMO_LAYOUT, load_demo, serve

__all__ = ["DEMO_FROM", "DEMO_LABEL", "DEMO_LAYOUT", "auth"]

# one test client address makes thousands of requests: rate limits are off in the suite but
# where a test turns them on (tests/test_rate_limits.py); subprocesses inherit this
os.environ.setdefault("GEO_RATE_ENABLED", "false")


def _server_admin_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if url:
        return libpq_url(make_url(url).set(database="postgres").render_as_string(False))
    return PrivateCluster(PROJECT_ROOT / ".data" / "pg").url("postgres")


@pytest.fixture(scope="session")
def new_database() -> Iterator[object]:
    """Factory of empty databases on the test server, dropped at the end of the session."""
    admin = _server_admin_url()
    made: list[str] = []

    def make(prefix: str = "geo_test") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        ensure_database(admin, name)
        made.append(name)
        return make_url(admin).set(database=name).render_as_string(hide_password=False)

    yield make
    for name in made:
        drop_database(admin, name)


@pytest.fixture(scope="session")
def database_url(new_database) -> str:  # type: ignore[no-untyped-def]
    """A migrated database holding the demo boundaries, published from 2025-01-01."""
    return load_demo(str(new_database()))


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    eng = make_engine(database_url)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def demo_locator(database_url: str) -> Locator:
    return Locator.from_database(database_url)


@pytest.fixture(scope="session")
def client(database_url: str) -> Iterator[TestClient]:
    settings = Settings(database=DatabaseSettings(url=database_url))
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture
def tmp_layout(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Write a layout frame to a file in ``tmp_path`` and return the path."""

    def write(frame, name: str = "layout.geojson", driver: str | None = None) -> Path:  # type: ignore[no-untyped-def]
        path = tmp_path / name
        frame.to_file(path, driver=driver)
        return path

    return write


@pytest.fixture(scope="session")
def keys(database_url: str, demo_locator: Locator) -> dict[str, str]:
    """One API key per role; the grid worker covers the first demo community."""
    from geo_service.auth import create_key

    community = demo_locator.grids["community_code"].iloc[0]
    eng = make_engine(database_url, pool_size=1)
    with eng.begin() as conn:
        out = {role: create_key(conn, role, label=f"test {role}",
                                scope=community if role == "grid_worker" else None)
               for role in ("reporter", "grid_worker", "operator", "planner", "admin")}
        out["reporter2"] = create_key(conn, "reporter", label="another reporter")
    eng.dispose()
    return out


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="session")
def live_server(database_url: str) -> Iterator[str]:
    """The app served by a real uvicorn on a free loopback port (for concurrency tests)."""
    with serve(database_url) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium, one per test module (skips when it is not installed)."""
    with chromium() as b:
        yield b
