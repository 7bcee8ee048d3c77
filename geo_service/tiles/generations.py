"""Layer generations (migration 0005): counters that grow with every committed change a map
layer may draw, read by each worker at most once per ``poll_s``.

Staleness bound: a worker keys tiles by the counters it read at time r, and only answers with
values read within the last ``poll_s`` seconds. A change committed at time c is in the counters
every read after c sees, so from c + ``poll_s`` on no request is answered from a tile keyed
before the change. The other way round is safe too: a tile is always built after its key's
counters were read, so it is never older than its key.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from sqlalchemy import Engine

from geo_service.store.tiles import generation_counters


@dataclass(frozen=True, slots=True)
class Generation:
    """The counters of the two sources layers are drawn from."""

    boundaries: int
    reports: int


def read_generation(engine: Engine) -> Generation:
    """The counters as committed now (one small query over 16 rows)."""
    with engine.connect() as conn:
        boundaries, reports = generation_counters(conn)
    return Generation(boundaries, reports)


class GenerationWatcher:
    """The counters as this process last read them, re-read when older than ``poll_s``."""

    def __init__(self, engine: Engine, poll_s: float = 1.0) -> None:
        self.engine = engine
        self.poll_s = poll_s
        self._value: Generation | None = None
        self._read_at = float("-inf")
        self._lock = asyncio.Lock()

    def fresh(self) -> Generation | None:
        """The counters when read less than ``poll_s`` ago, else None (without reading)."""
        if self._value is not None and time.monotonic() - self._read_at < self.poll_s:
            return self._value
        return None

    async def current(self) -> Generation:
        """Counters read no more than ``poll_s`` ago (one reader refreshes, others wait)."""
        if self._value is not None and time.monotonic() - self._read_at < self.poll_s:
            return self._value
        async with self._lock:
            if self._value is None or time.monotonic() - self._read_at >= self.poll_s:
                started = time.monotonic()  # the read sees every commit before this instant
                self._value = await asyncio.to_thread(read_generation, self.engine)
                self._read_at = started
            return self._value
