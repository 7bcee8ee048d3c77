"""A small HTTP/1.1 keep-alive client on uvloop, lean enough not to be what a benchmark measures.

Two ways to drive a server: :func:`closed_loop` (N connections, each sending its next request
as soon as the answer is in: the most a server answers) and :func:`open_loop` (requests
started at a fixed rate whatever the server does, latency counted from the moment a request
was due, so a stalled server shows as latency instead of fewer requests). Requests are bytes
made once up front (:func:`get`, :func:`post`); answers are parsed for their status and
length only (``Content-Length`` or chunked). Its own ceiling is measured against
:func:`serve_canned`, a server that answers every request with the same bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import uvloop

HOST = "127.0.0.1"


def get(path: str, headers: dict[str, str] | None = None) -> bytes:
    """A GET request's bytes."""
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    return f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n{extra}\r\n".encode()


def post(path: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    """A POST request's bytes (JSON unless ``headers`` says otherwise)."""
    fields = {"Content-Type": "application/json", **(headers or {})}
    extra = "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    head = f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body


class ResponseParser:
    """Splits a connection's bytes into answers: (status, body length) each."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self._need = -1  # bytes of the current answer once its head is read (-2: chunked)
        self._status = 0

    def feed(self, data: bytes) -> list[tuple[int, int]]:
        """Answers completed by ``data``."""
        self.buf += data
        done: list[tuple[int, int]] = []
        while True:
            if self._need == -1:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    return done
                head = bytes(self.buf[:end]).lower()
                self._status = int(head[9:12])
                del self.buf[: end + 4]
                at = head.find(b"\r\ncontent-length:")
                if at >= 0:
                    stop = head.find(b"\r\n", at + 2)
                    self._need = int(head[at + 17 : stop if stop > 0 else None])
                elif b"\r\ntransfer-encoding: chunked" in head:
                    self._need = -2
                else:  # 204, 304: no body
                    self._need = 0
            if self._need == -2:
                size = self._chunked_size()
                if size < 0:
                    return done
                done.append((self._status, size))
                self._need = -1
                continue
            if len(self.buf) < self._need:
                return done
            done.append((self._status, self._need))
            del self.buf[: self._need]
            self._need = -1

    def _chunked_size(self) -> int:
        """Consume a whole chunked body if it is all here: its size, else -1."""
        pos, total = 0, 0
        while True:
            eol = self.buf.find(b"\r\n", pos)
            if eol < 0:
                return -1
            size = int(bytes(self.buf[pos:eol]).split(b";")[0], 16)
            if size == 0:
                end = self.buf.find(b"\r\n\r\n", eol)
                if end < 0:
                    return -1
                del self.buf[: end + 4]
                return total
            if len(self.buf) < eol + 2 + size + 2:
                return -1
            total += size
            pos = eol + 2 + size + 2


@dataclass
class Outcome:
    """What a run got: answers by status, latencies, transport errors, wall time."""

    seconds: float
    latencies_ms: np.ndarray
    statuses: Counter[int] = field(default_factory=Counter)
    transport_errors: int = 0

    @property
    def answered(self) -> int:
        return int(sum(self.statuses.values()))

    @property
    def rate(self) -> float:
        return self.answered / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if len(self.latencies_ms) else np.nan

    @property
    def errors(self) -> int:
        """Answers that are not 2xx/3xx, and transport errors."""
        bad = sum(n for status, n in self.statuses.items() if status >= 400)
        return bad + self.transport_errors


class _Closed(asyncio.Protocol):
    """One connection of a closed loop: the next request goes out when an answer is in."""

    def __init__(self, run: _ClosedRun, requests: Sequence[bytes]) -> None:
        self.run = run
        self.requests = requests
        self.i = 0
        self.parser = ResponseParser()
        self.sent_at = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's: not a subclass
        self._send()

    def _send(self) -> None:
        assert self.transport is not None
        self.sent_at = time.perf_counter_ns()
        self.transport.write(self.requests[self.i % len(self.requests)])
        self.i += 1

    def data_received(self, data: bytes) -> None:
        for status, _ in self.parser.feed(data):
            now = time.perf_counter_ns()
            self.run.record(status, now - self.sent_at, now)
            if now >= self.run.stop_at:
                assert self.transport is not None
                self.transport.close()
                return
            self._send()

    def connection_lost(self, exc: Exception | None) -> None:
        self.run.closed(self, exc)


@dataclass
class _ClosedRun:
    stop_at: int
    count_from: int
    latencies: list[int] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    open: int = 0
    transport_errors: int = 0
    done: asyncio.Future[None] | None = None

    def record(self, status: int, latency_ns: int, now: int) -> None:
        if now >= self.count_from:  # after the warm-up
            self.latencies.append(latency_ns)
            self.statuses[status] += 1

    def closed(self, conn: _Closed, exc: Exception | None) -> None:
        if exc is not None or time.perf_counter_ns() < self.stop_at:
            self.transport_errors += 1
        self.open -= 1
        if self.open == 0 and self.done is not None and not self.done.done():
            self.done.set_result(None)


async def _closed_loop(
    port: int, requests: Sequence[bytes], connections: int, seconds: float, warmup_s: float
) -> Outcome:
    loop = asyncio.get_running_loop()
    start = time.perf_counter_ns()
    run = _ClosedRun(
        stop_at=start + int((warmup_s + seconds) * 1e9), count_from=start + int(warmup_s * 1e9)
    )
    run.done = loop.create_future()
    run.open = connections
    for c in range(connections):
        mine = list(requests[c::connections]) or list(requests)
        await loop.create_connection(lambda mine=mine: _Closed(run, mine), HOST, port)
    await run.done
    elapsed = (time.perf_counter_ns() - run.count_from) / 1e9
    latencies = np.asarray(run.latencies, dtype=np.float64) / 1e6
    return Outcome(elapsed, latencies, run.statuses, run.transport_errors)


def closed_loop(
    port: int,
    requests: Sequence[bytes],
    connections: int = 1,
    seconds: float = 5.0,
    warmup_s: float = 1.0,
) -> Outcome:
    """Keep ``connections`` connections busy for ``warmup_s`` + ``seconds``, cycling through
    ``requests``; answers after the warm-up are counted."""
    return uvloop.run(_closed_loop(port, requests, connections, seconds, warmup_s))


# --- open loop ------------------------------------------------------------------------------


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> int:
    """Send one request on a connection and read its answer; its status."""
    writer.write(request)
    parser = ResponseParser()
    while True:
        data = await reader.read(1 << 16)
        if not data:
            raise ConnectionError("the server closed the connection")
        answers = parser.feed(data)
        if answers:
            return answers[0][0]


async def open_loop(
    port: int,
    request: Callable[[int], bytes],
    rate: float,
    seconds: float,
    connections: int = 8,
    timeout_s: float = 10.0,
) -> Outcome:
    """Start request ``request(i)`` at ``i / rate`` seconds for ``seconds`` seconds over a pool
    of ``connections`` keep-alive connections (a request waits for a free one); latency runs
    from the moment it was due. A broken connection is an error and is opened again."""
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter] | None] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(None)  # opened on first use
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors = [0]

    async def one(i: int, due: float) -> None:
        conn = await pool.get()
        try:
            if conn is None:
                conn = await asyncio.open_connection(HOST, port)
            status = await asyncio.wait_for(_exchange(*conn, request(i)), timeout_s)
        except (OSError, ConnectionError, TimeoutError, ValueError):
            errors[0] += 1
            if conn is not None:
                conn[1].close()
            pool.put_nowait(None)
            return
        latencies.append((time.perf_counter() - due) * 1e3)
        statuses[status] += 1
        pool.put_nowait(conn)

    start = time.perf_counter()
    tasks = []
    for i in range(int(rate * seconds)):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(i, due)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    while not pool.empty():
        conn = pool.get_nowait()
        if conn is not None:
            conn[1].close()
            with contextlib.suppress(OSError, ConnectionError):
                await conn[1].wait_closed()
    return Outcome(elapsed, np.asarray(latencies), statuses, errors[0])


# --- the client's own ceiling -----------------------------------------------------------------

CANNED = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"


class _Canned(asyncio.Protocol):
    """Answers every request (up to its blank line) with :data:`CANNED`."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's: not a subclass
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while (end := self.buf.find(b"\r\n\r\n")) >= 0:
            self.buf = self.buf[end + 4 :]
            self.transport.write(CANNED)


def serve_canned(port: int) -> None:
    """Serve :data:`CANNED` on ``port`` until killed (run it in its own process)."""

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(_Canned, HOST, port)
        await server.serve_forever()

    uvloop.run(main())
