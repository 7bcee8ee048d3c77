"""Rate limits and statement timeouts per caller: token buckets per key and per client address
(and for the whole public), tighter on costly routes than on cheap ones, set per role; an
empty bucket answers 429 with ``Retry-After`` and the service's JSON error; unknown keys are
charged to their address; each role's ``statement_timeout`` holds its queries, and a query
cancelled by it answers 503, not 500."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from starlette.types import ASGIApp, Receive, Scope, Send

from geo_service.api.ratelimit import (
    STATEMENT_TIMEOUT_MS,
    TokenBuckets,
    client_address,
    install_statement_timeouts,
    route_class,
)
from geo_service.app import create_app
from geo_service.db.engine import make_engine
from geo_service.errors import StatementTimeout, from_driver_error
from geo_service.settings import (
    DatabaseSettings,
    RateLimitSettings,
    Settings,
    StatementTimeoutSettings,
)
from tests.conftest import auth

RATES = RateLimitSettings(
    enabled=True,
    anonymous="cheap=0.01/6,standard=5/4,costly=0.01/2",
    anonymous_all="cheap=1000/1000,standard=100/100,costly=0.01/3",
    reporter="cheap=50/50,standard=5/5,costly=0.01/1",
    grid_worker="cheap=50/50,standard=5/5,costly=0.01/1",
    operator="cheap=50/50,standard=5/5,costly=0.01/5",
    planner="cheap=50/50,standard=5/5,costly=0.01/1",
    admin="cheap=50/50,standard=5/5,costly=0.01/1",
    unknown_keys="0.01/3",
)
TIMEOUTS = StatementTimeoutSettings(anonymous=200, reporter=300, operator=5_000)
HEAT = "/v1/analytics/heat"
POINT = "/v1/locate?lon=120.75&lat=30.75"


class AtAddress:
    """The app seen from the client address named by the test's ``x-test-address`` header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"x-test-address":
                    scope = {**scope, "client": (value.decode(), 40000)}
        await self.app(scope, receive, send)


def _app(database_url: str):  # type: ignore[no-untyped-def]
    app = create_app(
        Settings(
            database=DatabaseSettings(url=database_url),
            rate_limits=RATES,
            statement_timeouts=TIMEOUTS,
        )
    )

    @app.get("/v1/test/statement-timeout")
    async def current_timeout() -> dict[str, str]:
        """What the request's own database connection runs under (test-only route)."""

        def show() -> str:
            with app.state.engine.connect() as conn:
                return str(conn.execute(text("SHOW statement_timeout")).scalar_one())

        return {"statement_timeout": await asyncio.to_thread(show)}

    @app.get("/v1/test/slow-query")
    async def slow_query() -> dict[str, bool]:
        """A query of 1 s (test-only route)."""

        def sleep() -> None:
            with app.state.engine.connect() as conn:
                conn.execute(text("SELECT pg_sleep(1)"))

        await asyncio.to_thread(sleep)
        return {"slept": True}

    return app


@pytest.fixture
def limited(database_url: str) -> Iterator[TestClient]:
    """A fresh app (fresh buckets) with the tiny rates of :data:`RATES`."""
    with TestClient(AtAddress(_app(database_url))) as c:
        yield c


def _at(address: str, key: str | None = None) -> dict[str, str]:
    return {"x-test-address": address, **(auth(key) if key else {})}


# ------------------------------------------------------------------------------ the classes


@pytest.mark.parametrize(
    ("method", "path", "cls"),
    [
        ("GET", "/v1/locate", "cheap"),
        ("POST", "/v1/locate", "standard"),
        ("GET", "/tiles/grids/12/3421/1677.mvt", "cheap"),
        ("GET", "/static/maplibre-gl.js", "cheap"),
        ("GET", "/health", "cheap"),
        ("GET", "/v1/analytics/hotspots", "costly"),
        ("GET", "/maps/heat", "costly"),
        ("GET", "/maps/versions/7/diff", "costly"),
        ("POST", "/v1/boundaries/versions", "costly"),
        ("GET", "/v1/boundaries/versions", "standard"),
        ("GET", "/v1/boundaries/versions/7/impact", "costly"),
        ("GET", "/v1/boundaries/versions/7/validation", "costly"),
        ("POST", "/v1/boundaries/versions/current/suggestions", "costly"),
        ("GET", "/v1/stats/indicators", "costly"),
        ("GET", "/v1/reports/export.xlsx", "costly"),
        ("POST", "/v1/reports", "standard"),
        ("GET", "/ogc/collections/grids/items", "standard"),
        ("GET", "/open311/v2/requests.json", "standard"),
    ],
)
def test_routes_fall_in_cheap_standard_and_costly_classes(method: str, path: str, cls: str) -> None:
    assert route_class(method, path) == cls


def test_the_default_rates_are_tighter_on_costly_routes_for_every_caller() -> None:
    for who, rates in RateLimitSettings().table().items():
        assert rates["cheap"][0] > rates["standard"][0] > rates["costly"][0], who
        assert rates["cheap"][1] > rates["standard"][1] > rates["costly"][1], who


def test_rates_are_read_from_the_environment_and_checked(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("GEO_RATE_ANONYMOUS", "cheap=7/9, standard=1.5/3, costly=0.2/1")
    assert RateLimitSettings().table()["anonymous"] == {
        "cheap": (7.0, 9), "standard": (1.5, 3), "costly": (0.2, 1)
    }  # fmt: skip
    monkeypatch.setenv("GEO_RATE_ANONYMOUS", "cheap=7/9,standard=1/3")
    with pytest.raises(ValueError, match="no rate for costly"):
        RateLimitSettings()
    monkeypatch.setenv("GEO_STATEMENT_TIMEOUT_MS_REPORTER", "1234")
    assert StatementTimeoutSettings().of("reporter") == 1234


# ------------------------------------------------------------------------- the token bucket


def test_a_bucket_serves_its_burst_then_refills_at_its_rate() -> None:
    buckets = TokenBuckets(rate=2.0, burst=3, max_buckets=10)
    assert [buckets.take("k", now=100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("k", now=100.0) == pytest.approx(0.5)  # 1 token at 2/s
    assert buckets.take("k", now=100.25) == pytest.approx(0.25)  # half refilled
    assert buckets.take("k", now=100.5) == 0.0
    assert buckets.wait("k", now=100.5) == pytest.approx(0.5)
    assert buckets.take("k", now=1000.0) == 0.0  # a long pause refills to the burst, no more
    assert [buckets.take("k", now=1000.0) for _ in range(2)] == [0.0, 0.0]
    assert buckets.take("k", now=1000.0) > 0
    assert buckets.take("other", now=1000.0) == 0.0  # each key its own bucket


def test_buckets_are_bounded_and_forget_the_least_recently_used() -> None:
    buckets = TokenBuckets(rate=1.0, burst=1, max_buckets=3)
    for key in ("a", "b", "c"):
        buckets.take(key, now=0.0)
    buckets.take("a", now=0.0)  # "a" is used again: "b" is now the oldest
    buckets.take("d", now=0.0)
    assert len(buckets) == 3
    assert buckets.wait("b", now=0.0) == 0.0  # forgotten: a full bucket again
    assert buckets.wait("a", now=0.0) > 0 and buckets.wait("c", now=0.0) > 0


def test_ipv6_clients_are_counted_per_64_and_ipv4_per_address() -> None:
    scope = {"client": ("2001:db8:1:2:aaaa::1", 1)}
    other = {"client": ("2001:db8:1:2:bbbb::9", 1)}
    assert client_address(scope) == client_address(other) == "2001:db8:1:2::/64"
    assert client_address({"client": ("2001:db8:1:3::1", 1)}) != client_address(scope)
    assert client_address({"client": ("10.1.2.3", 1)}) == "10.1.2.3"
    assert client_address({"client": None}) == "unknown"


# ------------------------------------------------------------------------------- over HTTP


def test_an_empty_bucket_answers_429_with_retry_after_and_the_error_body(
    limited: TestClient,
) -> None:
    for _ in range(2):  # the public's costly burst per address
        assert limited.get(HEAT, headers=_at("10.0.0.1")).status_code == 200
    r = limited.get(HEAT, headers=_at("10.0.0.1"))
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) >= 1
    body = r.json()
    assert body["error"] == "rate_limited"
    assert body["details"]["class"] == "costly" and body["details"]["burst"] == 2
    assert "costly request(s) a second" in body["message"]
    assert limited.get(POINT, headers=_at("10.0.0.1")).status_code == 200  # cheap: its own


def test_cheap_routes_allow_far_more_than_costly_ones(limited: TestClient) -> None:
    cheap = [limited.get(POINT, headers=_at("10.0.0.2")).status_code for _ in range(8)]
    costly = [limited.get(HEAT, headers=_at("10.0.0.3")).status_code for _ in range(4)]
    assert cheap == [200] * 6 + [429, 429]  # the cheap burst is 6, the costly one 2
    assert costly == [200, 200, 429, 429]


def test_each_address_has_its_own_bucket_and_the_public_shares_one_more(
    limited: TestClient,
) -> None:
    assert limited.get(HEAT, headers=_at("10.0.1.1")).status_code == 200
    assert limited.get(HEAT, headers=_at("10.0.1.2")).status_code == 200
    assert limited.get(HEAT, headers=_at("10.0.1.3")).status_code == 200
    r = limited.get(HEAT, headers=_at("10.0.1.4"))  # a fresh address, but the public's 3 went
    assert r.status_code == 429 and "all addresses" in r.json()["message"]


def test_a_key_has_its_own_buckets_at_its_roles_rates(
    limited: TestClient, keys: dict[str, str]
) -> None:
    for _ in range(3):
        limited.get(HEAT, headers=_at("10.0.2.1"))
    assert limited.get(HEAT, headers=_at("10.0.2.1")).status_code == 429  # the public is out
    operator = [limited.get(HEAT, headers=_at("10.0.2.1", keys["operator"])).status_code
                for _ in range(6)]  # fmt: skip
    assert operator == [200] * 5 + [429]  # the operator's costly burst is 5
    reporter = [limited.get(HEAT, headers=_at("10.0.2.1", keys["reporter"])).status_code
                for _ in range(2)]  # fmt: skip
    assert reporter == [200, 429]  # the reporter's is 1


def test_unknown_keys_are_charged_to_their_address_and_then_refused_unread(
    limited: TestClient, keys: dict[str, str]
) -> None:
    mine = "/v1/reports"  # a route that reads the caller
    answers = [
        limited.get(mine, headers=_at("10.0.3.1", f"gs_guess{i}")).status_code for i in range(5)
    ]
    assert answers[:3] == [401, 401, 401]  # looked up, unknown
    assert answers[3:] == [429, 429]  # the address's unknown-key burst (3) is spent
    r = limited.get(POINT, headers=_at("10.0.3.1", "gs_guess9"))
    assert r.status_code == 429 and "unknown or revoked API keys" in r.json()["message"]
    # another address, and a known key, are not held back by it
    assert limited.get(mine, headers=_at("10.0.3.2", "gs_guess0")).status_code == 401
    assert limited.get(mine, headers=_at("10.0.3.3", keys["operator"])).status_code == 200


def test_rate_limits_can_be_turned_off(database_url: str) -> None:
    app = create_app(Settings(database=DatabaseSettings(url=database_url),
                              rate_limits=RATES.model_copy(update={"enabled": False})))  # fmt: skip
    with TestClient(app) as c:
        assert {c.get(HEAT).status_code for _ in range(5)} == {200}


# ------------------------------------------------------------------------ statement timeouts


def test_each_role_runs_under_its_own_statement_timeout(
    limited: TestClient, keys: dict[str, str]
) -> None:
    def shown(key: str | None) -> str:
        r = limited.get("/v1/test/statement-timeout", headers=_at("10.0.4.1", key))
        assert r.status_code == 200, r.text
        return str(r.json()["statement_timeout"])

    # the same pooled connections switch back and forth between callers
    assert [shown(None), shown(keys["reporter"]), shown(keys["operator"]), shown(None)] == [
        "200ms", "300ms", "5s", "200ms"
    ]  # fmt: skip
    assert shown(keys["planner"]) == "5min"  # the default of GEO_STATEMENT_TIMEOUT_MS_PLANNER


def test_a_query_past_the_timeout_answers_503_not_500(
    limited: TestClient, keys: dict[str, str]
) -> None:
    started = time.perf_counter()
    r = limited.get("/v1/test/slow-query", headers=_at("10.0.5.1"))
    assert r.status_code == 503, r.text
    assert time.perf_counter() - started < 0.9  # cancelled at 200 ms, not after the 1 s query
    assert r.json()["error"] == "statement_timeout"
    assert "statement timeout" in r.json()["message"]
    assert int(r.headers["retry-after"]) >= 1
    ok = limited.get("/v1/test/slow-query", headers=_at("10.0.5.1", keys["operator"]))
    assert ok.status_code == 200 and ok.json() == {"slept": True}  # 5 s for operators


def test_outside_requests_connections_keep_the_servers_default(database_url: str) -> None:
    engine: Engine = make_engine(database_url, pool_size=1)
    install_statement_timeouts(engine)
    try:
        with engine.connect() as conn:
            default = conn.execute(text("SHOW statement_timeout")).scalar_one()
        token = STATEMENT_TIMEOUT_MS.set(1234)
        try:
            with engine.connect() as conn:
                assert conn.execute(text("SHOW statement_timeout")).scalar_one() == "1234ms"
                conn.rollback()  # a rolled-back transaction does not undo the setting
            with engine.connect() as conn:
                assert conn.execute(text("SHOW statement_timeout")).scalar_one() == "1234ms"
        finally:
            STATEMENT_TIMEOUT_MS.reset(token)
        with engine.connect() as conn:
            assert conn.execute(text("SHOW statement_timeout")).scalar_one() == default
    finally:
        engine.dispose()


def test_the_error_table_maps_a_cancelled_query_and_nothing_else(database_url: str) -> None:
    engine = make_engine(database_url, pool_size=1)
    try:
        with engine.connect() as conn:
            conn.execute(text("SET statement_timeout = 50"))
            with pytest.raises(Exception) as caught:
                conn.execute(text("SELECT pg_sleep(1)"))
        assert isinstance(from_driver_error(caught.value), StatementTimeout)
        with engine.connect() as conn, pytest.raises(Exception) as other:
            conn.execute(text("SELECT 1/0"))
        assert from_driver_error(other.value) is None
    finally:
        engine.dispose()
