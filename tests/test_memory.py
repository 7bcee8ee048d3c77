"""Bounded memory: the service's resident memory stays under its documented ceiling through a
fuzz-like load on a real uvicorn process (oversized chunked and declared bodies, a vertex
bomb, 100,000-point batches, random and hostile query strings, analyses and tiles), oversized
bodies are refused while they stream in, and the in-process caches are bounded in bytes,
their keys included."""

from __future__ import annotations

import os
import random
import select
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest

from geo_service.tiles.cache import CachedTile, TileCache
from geo_service.tiles.features import AnalysisCache
from tests.test_upload_safety import _bomb_geojson

# the documented ceiling (README, "Memory"): one worker with the default cache sizes, i.e.
# 768 MiB warmed + registry 512 + tiles 256 + analyses 128 + 384 MiB of requests in flight
RSS_CEILING_MB = 2_048
# what this load may add to the warmed-up service: bodies are cut at their limits, nothing
# the load sends is kept (the caches it fills are a few MB here)
GROWTH_LIMIT_MB = 512
MIB = 1024 * 1024


def _rss_mb(pid: int) -> float:
    """The resident memory of process ``pid`` (VmRSS), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


class Sampler:
    """Reads a process's VmRSS every 50 ms in a thread; ``peak`` is the highest seen."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_mb(self.pid))
            time.sleep(0.05)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture(scope="module")
def server(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, int, subprocess.Popen[bytes]]]:
    """``geo-service serve`` (one worker, httptools, uvloop: as in production) on a free
    port over the test database, rate limits off so the whole load reaches the routes; its
    log goes to a file (a pipe nobody reads would stall it once full)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "DATABASE_URL": database_url, "GEO_RATE_ENABLED": "false"}
    exe = str(Path(sys.executable).with_name("geo-service"))
    log = tmp_path_factory.mktemp("server") / "server.log"
    proc = subprocess.Popen(
        [exe, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=log.open("wb"),
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"the server did not start: {log.read_text()[-2000:]}")
        time.sleep(0.2)
    try:
        yield "127.0.0.1", port, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def stream(
    host: str, port: int, path: str, headers: dict[str, str], head: bytes, total: int
) -> tuple[int | None, int]:
    """POST ``head`` then filler, chunked (no Content-Length), up to ``total`` bytes or until
    the server answers; the status it answered (None if it only closed) and the bytes sent."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", "Transfer-Encoding: chunked",
             *(f"{k}: {v}" for k, v in headers.items()), "", ""]  # fmt: skip
    piece = b"0" * (256 * 1024)
    sent = 0
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall("\r\n".join(lines).encode())
        try:
            for data in [head, *([piece] * ((total - len(head)) // len(piece) + 1))]:
                sock.sendall(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                sent += len(data)
                if select.select([sock], [], [], 0)[0]:
                    break  # the server answered before the end: read it
            else:
                sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # it stopped reading and closed: its answer may still be readable
        try:
            answer = sock.recv(64 * 1024)
        except OSError:
            return None, sent
    status = answer.split(b" ", 2)[1] if answer.startswith(b"HTTP/1.1 ") else None
    return (int(status) if status else None), sent


def declared(host: str, port: int, path: str, headers: dict[str, str], length: int) -> int:
    """POST declaring a ``Content-Length`` of ``length`` and sending 1 kB of it: the status
    the server answers before the rest comes."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {length}",
             *(f"{k}: {v}" for k, v in headers.items()), "", ""]  # fmt: skip
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall("\r\n".join(lines).encode() + b"[" + b" " * 1023)
        answer = sock.recv(64 * 1024)
    return int(answer.split(b" ", 2)[1])


def _fuzz_value(rng: random.Random) -> str:
    return rng.choice([
        "", "%00", "\x00", "9" * 30, "-1", "1e309", "NaN", "[]", "{}", "' OR 1=1 --",
        "x" * rng.choice([10, 1_000, 8_000]), "2025-13-45", "中文" * 50, str(rng.random()),
        str(2**63), str(rng.randint(-10, 10_000)), "../../etc/passwd",
    ])  # fmt: skip


FUZZ_PATHS = [
    "/v1/locate", "/v1/reports", "/v1/reports/{n}", "/v1/reports/{n}/events",
    "/v1/analytics/heat", "/v1/analytics/hotspots", "/v1/analytics/grid-stats",
    "/ogc/collections/grids/items", "/ogc/collections/{s}/items/{s}",
    "/open311/v2/requests.json", "/tiles/grids/{z}/{x}/{y}.mvt", "/tiles/heat/{z}/{x}/{y}.mvt",
    "/v1/boundaries/versions", "/maps/heat", "/v1/stats/indicators",
]  # fmt: skip
PARAMS = ["lon", "lat", "crs", "as_of", "status", "offset", "limit", "bbox", "from", "to",
          "category", "res", "zoom", "k", "page", "level", "datetime"]  # fmt: skip


def _fuzz_get(client: httpx.Client, rng: random.Random, key: str | None) -> int:
    path = rng.choice(FUZZ_PATHS).format(
        n=rng.choice([1, 2**63, 99999999999]), s=rng.choice(["grids", "%00", "x" * 300]),
        z=rng.randint(8, 15), x=rng.randint(0, 30000), y=rng.randint(0, 30000),
    )  # fmt: skip
    query = {p: _fuzz_value(rng) for p in rng.sample(PARAMS, rng.randint(0, 5))}
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    url = path + ("?" + urllib.parse.urlencode(query) if query else "")
    try:
        return client.get(url, headers=headers).status_code
    except httpx.TransportError:  # a connection reset (issue 10, item 1): counted, not ours
        return 0


def test_rss_stays_under_the_ceiling_through_a_hostile_load(
    server: tuple[str, int, subprocess.Popen[bytes]], keys: dict[str, str]
) -> None:
    host, port, proc = server
    base = f"http://{host}:{port}"
    rng = random.Random(20251204)
    lons = np.random.default_rng(1).uniform(120.6, 120.9, 100_000).round(6)
    lats = np.random.default_rng(2).uniform(30.6, 30.9, 100_000).round(6)
    batch = orjson.dumps(
        {"points": np.column_stack([lons, lats])}, option=orjson.OPT_SERIALIZE_NUMPY
    )
    bomb = _bomb_geojson()
    planner = {"Authorization": f"Bearer {keys['planner']}"}
    statuses: Counter[str] = Counter()  # what the load was answered, for the printout

    with httpx.Client(base_url=base, timeout=120) as warm:  # JIT, the Locator, first tiles
        assert warm.post("/v1/locate", content=batch).status_code == 200
        for z, x, y in ((12, 3421, 1677), (13, 6843, 3354)):
            warm.get(f"/tiles/grids/{z}/{x}/{y}.mvt")
        warm.get("/v1/analytics/heat")
    warmed = _rss_mb(proc.pid)

    def work(i: int) -> None:
        kind = i % 10
        if kind == 0:  # 48 MiB chunked to locate: cut at 16 MiB
            status, sent = stream(host, port, "/v1/locate", {"Content-Type": "application/json"},
                                  b'{"points": [', 48 * MIB)  # fmt: skip
            statuses[f"locate chunked {status}"] += 1
            assert status in (413, None) and sent < 40 * MIB
        elif kind == 1:  # 2 GB declared to bulk intake: refused before reading
            status = declared(host, port, "/v1/reports:bulk",
                              {"Authorization": f"Bearer {keys['operator']}",
                               "Content-Type": "application/json"}, 2 * 1024 * MIB)  # fmt: skip
            statuses[f"bulk declared {status}"] += 1
            assert status == 413
        elif kind == 2 and i % 20 == 2:  # the vertex bomb, then an upload streaming past 64 MiB
            r = httpx.post(
                f"{base}/v1/boundaries/versions",
                headers=planner,
                timeout=120,
                files={"file": ("bomb.geojson", bomb)},
                data={"label": f"b{i}"},
            )
            statuses[f"vertex bomb {r.status_code}"] += 1
            assert r.status_code == 413, r.text
        elif kind == 2:
            boundary = "x" * 20
            head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                    f"filename=\"big.geojson\"\r\n\r\n").encode()  # fmt: skip
            form = {**planner, "Content-Type": f"multipart/form-data; boundary={boundary}"}
            status, _ = stream(host, port, "/v1/boundaries/versions", form, head, 80 * MIB)
            statuses[f"upload chunked {status}"] += 1
            assert status in (413, None)
        elif kind == 3:  # 100,000 points, answered in full
            r = httpx.post(f"{base}/v1/locate", content=batch, timeout=120)
            statuses[f"locate batch {r.status_code}"] += 1
            assert r.status_code == 200
        else:  # fuzz-like GETs, some with keys
            with httpx.Client(base_url=base, timeout=120) as client:
                for _ in range(12):
                    key = rng.choice([None, None, keys["operator"], keys["reporter"]])
                    statuses[f"fuzz {_fuzz_get(client, rng, key) // 100}xx"] += 1

    started = time.perf_counter()
    with Sampler(proc.pid) as sampler, ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(80)))
    elapsed = time.perf_counter() - started
    after = _rss_mb(proc.pid)
    assert httpx.get(f"{base}/health", timeout=10).status_code == 200  # alive and answering
    print(f"\nRSS MiB: warmed {warmed:.0f}, peak {sampler.peak:.0f}, after {after:.0f}; "
          f"load {elapsed:.1f} s; {dict(sorted(statuses.items()))}")  # fmt: skip
    assert sampler.peak < RSS_CEILING_MB, sampler.peak
    assert sampler.peak - warmed < GROWTH_LIMIT_MB, (warmed, sampler.peak)


def test_the_tile_cache_counts_keys_so_long_queries_cannot_grow_it() -> None:
    cache = TileCache(max_bytes=1 * MIB)
    empty = CachedTile.of(b"")
    for i in range(5_000):  # empty tiles under 8 kB query keys: 40 MB if keys were free
        cache.put(("heat", 12, i, 0, "q" * 8_000 + str(i)), empty)
    assert cache.size <= cache.max_bytes
    assert len(cache) < 1 * MIB // 8_000
    cache.put(("grids", 1, 1, 1), CachedTile.of(b"x" * (2 * MIB)))  # larger than the bound
    assert cache.get(("grids", 1, 1, 1)) is None and cache.size <= cache.max_bytes


def test_the_analysis_cache_is_bounded_in_bytes() -> None:
    cache = AnalysisCache(max_bytes=10 * MIB, size=100)
    for i in range(8):
        value = cache.get(("heat", i), lambda: np.zeros(MIB // 2))  # 4 MiB each
        assert value.nbytes == 4 * MIB
    assert cache.nbytes <= 10 * MIB
    calls: list[int] = []
    cache.get(("heat", 7), lambda: calls.append(1) or np.zeros(1))  # the newest is kept
    assert calls == []
    cache.get(("heat", 0), lambda: calls.append(1) or np.zeros(1))  # the oldest went
    assert calls == [1]
    huge = cache.get(("huge",), lambda: np.zeros(2 * MIB))  # 16 MiB: answered, not kept
    assert huge.nbytes == 16 * MIB and cache.nbytes <= 10 * MIB
