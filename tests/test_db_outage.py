"""A database outage under a running service: every route that needs the database answers 503
with ``Retry-After`` and a JSON body (in Open311's and OGC API's formats on theirs), and when
PostgreSQL is back the service answers again by itself: no restart, the pool's dead
connections are replaced (``pool_pre_ping``).

The outage is real: the test stops and starts a private PostgreSQL cluster of its own (its
own folder, so the suite's cluster and the other tests are not disturbed).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from geo_service.auth import create_key
from geo_service.db.cluster import PrivateCluster
from geo_service.db.engine import make_engine
from geo_service.settings import DatabaseSettings, Settings
from tests.support import load_demo, serve

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivateCluster]:
    """A private cluster in a folder of its own, removed afterwards. The folder is made under
    the system's temporary folder and opened to others: under root, PostgreSQL runs as
    ``postgres``, which must reach it (pytest's own temporary folders are root's only)."""
    root = Path(tempfile.mkdtemp(prefix="geo-outage-"))
    root.chmod(0o755)
    pg = PrivateCluster(root / "pg")
    try:
        pg.start()
        yield pg
    finally:
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def service(cluster: PrivateCluster) -> Iterator[tuple[str, str]]:
    """The service on the cluster's demo database (uvicorn), and an operator key."""
    url = load_demo(cluster.url("geo_outage"))
    engine = make_engine(url, pool_size=1)
    with engine.begin() as conn:
        key = create_key(conn, "operator", label="outage test")
    engine.dispose()
    settings = Settings(database=DatabaseSettings(url=url, pool_size=4))
    with serve(url, settings) as base:
        yield base, key


def _until(check, seconds: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    """Wait until ``check()`` is true (fail after ``seconds``)."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_outage_is_503_with_retry_after_and_the_service_recovers(
    cluster: PrivateCluster, service: tuple[str, str]
) -> None:
    base, key = service
    staff = {"Authorization": f"Bearer {key}"}
    report = {
        "channel": "visit", "category": "safety_hazard", "description": "断电时",
        "reported_at": "2025-06-01T09:30:00+08:00", "location": {"lon": 120.70, "lat": 30.78},
    }
    with httpx.Client(base_url=base, timeout=30) as http:
        assert http.get("/health").status_code == 200
        assert http.get("/v1/reports", headers=staff).status_code == 200
        port = cluster.running_port()

        cluster.stop()
        try:
            r = http.get("/health")
            assert r.status_code == 503
            assert int(r.headers["retry-after"]) >= 1
            assert r.json()["error"] == "service_unavailable"
            r = http.get("/v1/reports", headers=staff)
            assert r.status_code == 503 and r.json()["error"] == "service_unavailable"
            r = http.post("/v1/reports", json=report, headers=staff)
            assert r.status_code == 503 and "retry-after" in r.headers
            r = http.get("/open311/v2/requests.json")
            assert r.status_code == 503 and r.json()[0]["code"] == 503
            r = http.get("/ogc/collections")
            assert r.status_code == 503 and r.json()["code"] == "service_unavailable"
            assert "retry-after" in r.headers
        finally:
            cluster.start()
        assert cluster.running_port() == port  # the same address: the service is not told

        _until(lambda: http.get("/health").status_code == 200)
        assert http.get("/v1/reports", headers=staff).status_code == 200
        r = http.post("/v1/reports", json=report, headers=staff)
        assert r.status_code == 201
        assert http.get(f"/v1/reports/{r.json()['id']}", headers=staff).status_code == 200


def test_a_restart_between_requests_costs_no_request(
    cluster: PrivateCluster, service: tuple[str, str]
) -> None:
    """PostgreSQL restarted while the service was idle: the pool's connections all died, and
    the first requests after it get fresh ones (pre-ping) instead of an error."""
    base, key = service
    with httpx.Client(base_url=base, timeout=30) as http:
        for _ in range(8):  # the pool holds connections
            assert http.get("/health").status_code == 200
        cluster.stop()
        cluster.start()
        statuses = [http.get("/v1/reports", headers={"Authorization": f"Bearer {key}"})
                    .status_code for _ in range(8)]
    assert statuses == [200] * 8

