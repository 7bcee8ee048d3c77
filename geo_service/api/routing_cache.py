"""The routing table held by a running service, reloaded every few seconds."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import Engine

from geo_service.routing import RoutingTable


class RoutingCache:
    """Units and rules, re-read from the database at most every ``ttl_s`` seconds."""

    def __init__(self, engine: Engine, ttl_s: float = 30.0) -> None:
        self.engine = engine
        self.ttl_s = ttl_s
        self._table: RoutingTable | None = None
        self._loaded_at = 0.0

    def _load(self) -> RoutingTable:
        with self.engine.connect() as conn:
            return RoutingTable.load(conn)

    async def get(self) -> RoutingTable:
        if self._table is None or time.monotonic() - self._loaded_at > self.ttl_s:
            self._table = await asyncio.to_thread(self._load)
            self._loaded_at = time.monotonic()
        return self._table

    def invalidate(self) -> None:
        self._table = None
