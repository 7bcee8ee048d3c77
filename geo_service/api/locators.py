"""Locators held by a running service: the version in force now, and recent ``as_of`` ones.

The version in force is re-checked in the database at most every ``recheck_s`` seconds, so a
publish (here or on another replica) is picked up without a restart; the swap replaces one
reference, so requests in flight finish on the Locator they started with.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import OrderedDict

from sqlalchemy import Engine

from geo_service.boundaries import versions
from geo_service.locator import Locator


class LocatorCache:
    """Locators by boundary version id, built on first use (LRU of ``size`` versions)."""

    def __init__(self, engine: Engine, size: int = 4, recheck_s: float = 2.0) -> None:
        self.engine = engine
        self.size = size
        self.recheck_s = recheck_s
        self._by_version: OrderedDict[int, Locator] = OrderedDict()
        self._current: tuple[int, dt.date, float] | None = None  # version id, day, checked at
        self._lock = asyncio.Lock()

    def _version_id(self, as_of: dt.date | None) -> int:
        with self.engine.connect() as conn:
            vid = versions.version_in_force(conn, as_of).id
        assert vid is not None
        return vid

    def _build(self, version_id: int) -> Locator:
        with self.engine.connect() as conn:
            return Locator.from_connection(conn, version=version_id)

    async def get(self, as_of: dt.date | None = None) -> Locator:
        """The Locator of the version in force on ``as_of`` (today when None)."""
        now = time.monotonic()
        today = dt.date.today()
        current = self._current
        if (
            (as_of is None or as_of == today)
            and current
            and current[1] == today
            and now - current[2] < self.recheck_s
            and current[0] in self._by_version
        ):
            return self._by_version[current[0]]
        vid = await asyncio.to_thread(self._version_id, as_of)
        if as_of is None or as_of == today:
            self._current = (vid, today, now)
        return await self.get_version(vid)

    def forget(self, version_id: int) -> None:
        """Drop a version's Locator (a rollback that returns a version to draft: it may be
        edited and published again, so its areas can change)."""
        self._by_version.pop(version_id, None)
        if self._current and self._current[0] == version_id:
            self._current = None

    async def get_version(self, version_id: int) -> Locator:
        """The Locator of a version by id, building it once."""
        loc = self._by_version.get(version_id)
        if loc is None:
            async with self._lock:
                loc = self._by_version.get(version_id)
                if loc is None:
                    loc = await asyncio.to_thread(self._build, version_id)
                    self._by_version[version_id] = loc
                    while len(self._by_version) > self.size:
                        self._by_version.popitem(last=False)
        self._by_version.move_to_end(version_id)
        return loc
