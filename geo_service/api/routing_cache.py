"""The routing table held by a running service: units and rules, reloaded every few seconds.

Not part of the per-version registry (:mod:`geo_service.locator.registry`): units and rules
change without a publish (an operator adds a unit), so the table is re-read every ``ttl_s``.
A publish seeds units for new areas, so the table is also re-read as soon as the registry's
generation for the database moves (at commit in the publishing process, within the
registry's re-check interval elsewhere).
"""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import Engine

from geo_service.locator.registry import VersionRegistry, database_of
from geo_service.routing import RoutingTable


class RoutingCache:
    """Units and rules, re-read at most every ``ttl_s`` seconds and after every publish."""

    def __init__(
        self, engine: Engine, registry: VersionRegistry | None = None, ttl_s: float = 30.0
    ) -> None:
        self.engine = engine
        self.registry = registry
        self.ttl_s = ttl_s
        self._table: RoutingTable | None = None
        self._loaded_at = 0.0
        self._generation: int | None = None  # the registry's, when the table was read

    def _load(self) -> RoutingTable:
        with self.engine.connect() as conn:
            return RoutingTable.load(conn)

    def _registry_generation(self) -> int | None:
        if self.registry is None:
            return None
        return self.registry.known_generation(database_of(self.engine))

    async def get(self) -> RoutingTable:
        """The table, re-read when older than ``ttl_s`` or than the last publish seen."""
        generation = self._registry_generation()
        if (
            self._table is None
            or time.monotonic() - self._loaded_at > self.ttl_s
            or generation != self._generation
        ):
            self._table = await asyncio.to_thread(self._load)
            self._loaded_at = time.monotonic()
            self._generation = generation
        return self._table

    def invalidate(self) -> None:
        """Read the table again on next use."""
        self._table = None
