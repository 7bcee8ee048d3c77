"""``geo-service keys revoke``: a revoked key is refused on every worker within a second.

Workers cache key look-ups under the key generation counter (migration 0011) and re-read it
every ``GEO_AUTH_KEY_RECHECK_S`` (0.5 s); the measurement here revokes keys while two separate
``geo-service serve`` processes are being polled with them (an API route and a cached tile, the
tile fast path included) and times how long each process still accepted them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from geo_service.auth import KeyStore, create_key, revoke_key
from geo_service.cli import app
from geo_service.errors import Conflict, NotFound
from tests.conftest import auth

runner = CliRunner()
BOUND_S = 1.0  # the bound: revoked everywhere within a second
TRIALS = 4


def _new_key(engine: Engine, role: str = "operator", label: str | None = None) -> tuple[int, str]:
    with engine.begin() as conn:
        key = create_key(conn, role, label=label)
        key_id = conn.execute(
            text("SELECT id FROM api_keys WHERE prefix = :p"), {"p": key[:10]}
        ).scalar_one()
    return int(key_id), key


def _revoked_at(engine: Engine, key_id: int) -> object:
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT revoked_at FROM api_keys WHERE id = :i"), {"i": key_id}
        ).scalar_one()


# --------------------------------------------------------------------------- the command


def test_revoke_by_id_prefix_or_label(engine: Engine, database_url: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DATABASE_URL", database_url)
    by_id, _ = _new_key(engine)
    by_prefix, key = _new_key(engine)
    by_label, _ = _new_key(engine, label="revoke-me-by-label")
    for ref, key_id in ((str(by_id), by_id), (key[:10], by_prefix),
                        ("revoke-me-by-label", by_label)):  # fmt: skip
        result = runner.invoke(app, ["keys", "revoke", ref])
        assert result.exit_code == 0, result.output
        assert f"key {key_id} " in result.output and "revoked" in result.output
        assert _revoked_at(engine, key_id) is not None
    again = runner.invoke(app, ["keys", "revoke", str(by_id)])
    assert again.exit_code == 2 and "revoked already" in again.output
    unknown = runner.invoke(app, ["keys", "revoke", "no-such-label"])
    assert unknown.exit_code == 2 and "no API key" in unknown.output
    listed = runner.invoke(app, ["keys", "list"])
    assert listed.exit_code == 0, listed.output
    assert f"\n│ {by_prefix} " in listed.output.replace("┃", "│")  # its row (rich's table)
    assert key not in listed.output and key[10:30] not in listed.output  # never the key


def test_a_scope_is_for_grid_workers_only(database_url: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Only grid workers are narrowed to an area: a scope on another role would promise a
    narrowing nothing applies, so it is refused, and a grid worker's is required."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    scoped = runner.invoke(app, ["keys", "create", "--role", "operator", "--scope", "330411"])
    assert scoped.exit_code == 2 and "narrows grid workers only" in scoped.output
    bare = runner.invoke(app, ["keys", "create", "--role", "grid_worker"])
    assert bare.exit_code == 2 and "needs the area code" in bare.output


def test_an_ambiguous_label_revokes_nothing(engine: Engine) -> None:
    first, _ = _new_key(engine, label="shared-label")
    second, _ = _new_key(engine, label="shared-label")
    with engine.begin() as conn, pytest.raises(Conflict, match=f"ids {first}, {second}"):
        revoke_key(conn, "shared-label")
    assert _revoked_at(engine, first) is None and _revoked_at(engine, second) is None
    with engine.begin() as conn, pytest.raises(NotFound):
        revoke_key(conn, "gs_nothere")


def test_the_key_store_drops_a_revoked_key_within_its_recheck(engine: Engine) -> None:
    key_id, key = _new_key(engine)
    store = KeyStore(engine, recheck_s=0.2)
    principal = store.lookup(key)
    assert principal is not None and principal.key_id == key_id
    assert store.known(key) == principal  # cached, vouched for without a query
    with engine.begin() as conn:
        revoke_key(conn, str(key_id))
    assert store.lookup(key) == principal  # within the recheck the cache still answers
    time.sleep(0.25)
    assert store.known(key) is None  # the counter is stale: no vouching without a query
    assert store.lookup(key) is None  # re-read: the generation moved, the cache is gone
    assert store.known(key) is None


def test_unknown_keys_do_not_grow_the_cache_without_bound(engine: Engine) -> None:
    store = KeyStore(engine, max_entries=50)
    for i in range(500):
        assert store.lookup(f"gs_random-{i}") is None
    assert len(store._cache) <= 50


# --------------------------------------------------------------------------- two processes


def _serve(database_url: str) -> tuple[str, subprocess.Popen[bytes]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "DATABASE_URL": database_url, "GEO_RATE_ENABLED": "false"}
    exe = str(Path(sys.executable).with_name("geo-service"))
    proc = subprocess.Popen(
        [exe, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    return f"http://127.0.0.1:{port}", proc


def _wait_up(base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"the server did not start: {proc.stderr.read()[-2000:]!r}")  # type: ignore[union-attr]
        time.sleep(0.2)


@pytest.fixture(scope="module")
def servers(database_url: str) -> Iterator[list[str]]:
    """Two ``geo-service serve`` processes on the test database."""
    started = [_serve(database_url) for _ in range(2)]
    try:
        for base, proc in started:
            _wait_up(base, proc)
        yield [base for base, _ in started]
    finally:
        for _, proc in started:
            proc.terminate()
        for _, proc in started:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


TILE = "/tiles/grids/14/13685/6720.mvt"  # a cached keyed tile: the tile fast path answers it


def _accepts_until_refused(base: str, path: str, key: str, out: dict[str, float]) -> None:
    """Poll ``path`` with ``key`` every 10 ms; the monotonic time of its first 401."""
    with httpx.Client(base_url=base, headers=auth(key), timeout=5) as http:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            r = http.get(path)
            if r.status_code == 401:
                out[f"{base}{path}"] = time.monotonic()
                return
            assert r.status_code in (200, 204), r.text
            time.sleep(0.01)


def _measure(engine: Engine, servers: list[str], revoke: object) -> list[float]:
    """Warm every server with a new key, revoke it (``revoke(key_id)``), and the seconds each
    server and path still accepted it after the revoking commit."""
    key_id, key = _new_key(engine)
    paths = ("/v1/reports?limit=1", TILE)
    for base in servers:
        for path in paths:
            for _ in range(3):  # looked up, cached; the tile remembered by the fast path
                assert httpx.get(f"{base}{path}", headers=auth(key), timeout=10).status_code in (
                    200,
                    204,
                )
    refused: dict[str, float] = {}
    pollers = [
        threading.Thread(target=_accepts_until_refused, args=(base, path, key, refused))
        for base in servers
        for path in paths
    ]
    for t in pollers:
        t.start()
    time.sleep(0.3)
    committed = revoke(key_id)  # type: ignore[operator]
    for t in pollers:
        t.join()
    assert len(refused) == len(pollers), refused
    return [max(0.0, at - committed) for at in refused.values()]


def test_a_revoked_key_is_refused_by_every_process_within_a_second(
    engine: Engine, servers: list[str]
) -> None:
    def in_process(key_id: int) -> float:
        with engine.begin() as conn:
            revoke_key(conn, str(key_id))
        return time.monotonic()  # the commit has returned

    latencies: list[float] = []
    for _ in range(TRIALS):
        latencies += _measure(engine, servers, in_process)
    worst = max(latencies)
    mean = sum(latencies) / len(latencies)
    print(f"\nrevocation latency over {len(latencies)} (process, path) pairs: "
          f"max {worst * 1000:.0f} ms, mean {mean * 1000:.0f} ms")  # fmt: skip
    assert worst < BOUND_S


def test_the_cli_revocation_reaches_both_processes(
    engine: Engine, servers: list[str], database_url: str
) -> None:
    exe = str(Path(sys.executable).with_name("geo-service"))

    def by_command(key_id: int) -> float:
        env = {**os.environ, "DATABASE_URL": database_url}
        done = subprocess.run(
            [exe, "keys", "revoke", str(key_id)], env=env, capture_output=True, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return time.monotonic()  # the command (and its commit) is over

    assert max(_measure(engine, servers, by_command)) < BOUND_S
