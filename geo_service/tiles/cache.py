"""An in-process LRU of tile bytes, bounded by size, that builds each missing tile once.

Keys carry everything a tile depends on (layer, z/x/y, normalised query, audience, the day
and the layer generations), so entries are never invalidated in place: a change moves the
key, and stale entries age out of the LRU. Concurrent requests for a missing key share one
build. ETags are a hash of the bytes: equal tiles keep their ETag across generations.

The bound is on the memory an entry holds, not only its tile: the bytes, the key (a long
query string makes a long key: counted by :func:`~geo_service.locator.registry.estimate_bytes`)
and a fixed cost per entry, so many empty tiles under long queries cannot grow it either.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Final

from geo_service.locator.registry import estimate_bytes

ENTRY_BYTES: Final = 300  # an entry's own cost: the OrderedDict slot, the CachedTile, its ETag


@dataclass(frozen=True, slots=True)
class CachedTile:
    """A tile's bytes (empty for an empty tile), its strong ETag and an optional note."""

    body: bytes
    etag: str
    note: str | None = None

    @classmethod
    def of(cls, body: bytes, note: str | None = None) -> CachedTile:
        """Wrap ``body`` with the ETag of its content."""
        return cls(body, '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"', note)


class TileCache:
    """LRU of :class:`CachedTile` by the bytes entries hold (``max_bytes`` 0 keeps nothing)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[Hashable, CachedTile] = OrderedDict()
        self._costs: dict[Hashable, int] = {}
        self._building: dict[Hashable, asyncio.Future[CachedTile]] = {}

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Hashable) -> CachedTile | None:
        """The cached tile of ``key``, marked recently used, or None."""
        tile = self._items.get(key)
        if tile is not None:
            self._items.move_to_end(key)
            self.hits += 1
        return tile

    @staticmethod
    def cost(key: Hashable, tile: CachedTile) -> int:
        """The bytes an entry holds: its tile, its note, its key and the entry itself."""
        note = len(tile.note) if tile.note else 0
        return len(tile.body) + note + estimate_bytes(key) + ENTRY_BYTES

    def put(self, key: Hashable, tile: CachedTile) -> None:
        """Store ``tile``, evicting the least recently used beyond ``max_bytes``."""
        cost = self.cost(key, tile)
        if cost > self.max_bytes:
            return
        if self._items.pop(key, None) is not None:
            self.size -= self._costs.pop(key)
        self._items[key] = tile
        self._costs[key] = cost
        self.size += cost
        while self.size > self.max_bytes and self._items:
            dropped, _ = self._items.popitem(last=False)
            self.size -= self._costs.pop(dropped)

    def clear(self) -> None:
        """Forget every tile."""
        self._items.clear()
        self._costs.clear()
        self.size = 0

    async def get_or_build(
        self, key: Hashable, build: Callable[[], Awaitable[CachedTile]]
    ) -> tuple[CachedTile, bool]:
        """The tile of ``key`` and whether it came from the cache; one build per missing key
        however many requests wait for it (a failed build fails them all, caches nothing)."""
        tile = self.get(key)
        if tile is not None:
            return tile, True
        pending = self._building.get(key)
        if pending is not None:
            return await asyncio.shield(pending), False
        self.misses += 1
        future: asyncio.Future[CachedTile] = asyncio.get_running_loop().create_future()
        self._building[key] = future
        try:
            tile = await build()
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
                future.exception()  # mark retrieved: waiters re-raise it, nobody else must
            raise
        finally:
            self._building.pop(key, None)
        self.put(key, tile)
        future.set_result(tile)
        return tile, False
