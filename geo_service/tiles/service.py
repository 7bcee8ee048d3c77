"""The tile service of one worker process: generations, the tile cache, rendering in threads."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Hashable
from dataclasses import dataclass

from sqlalchemy import Engine

from geo_service.locator.registry import VersionRegistry
from geo_service.settings import TilesSettings
from geo_service.tiles.address import Tile
from geo_service.tiles.cache import CachedTile, TileCache
from geo_service.tiles.features import AnalysisCache
from geo_service.tiles.generations import Generation, GenerationWatcher
from geo_service.tiles.layers import LayerSpec
from geo_service.tiles.prepared import PreparedVersions
from geo_service.tiles.query import TileQuery
from geo_service.tiles.render import RenderContext, render, today

OVERDUE_BUCKET_S = 60  # single reports carry "overdue", which turns with the clock
KEY_TTL_S = 10.0  # how long a parsed request is reused (a keyed one only while the key store
# vouches for its key: geo_service.tiles.fastpath)
MAX_REMEMBERED = 50_000
MAX_REMEMBERED_BYTES = 32 * 1024 * 1024  # the requests' own bytes, plus an entry's cost
_REMEMBERED_ENTRY = 600  # a ParsedRequest, its key tuple and the dict slot
RequestKey = tuple[str, bytes, bytes | None]  # path, query string, Authorization header


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    """How the route understood a tile request, reusable until ``expires`` (monotonic)."""

    spec: LayerSpec
    tile: Tile
    query: TileQuery
    private: bool
    expires: float


class TileService:
    """Answers tiles from the cache, or renders them once (in a worker thread) and caches."""

    def __init__(self, engine: Engine, settings: TilesSettings, registry: VersionRegistry) -> None:
        self.engine = engine
        self.settings = settings
        self.watcher = GenerationWatcher(engine, settings.generation_poll_s)
        self.cache = TileCache(int(settings.cache_mb * 1024 * 1024))
        self.analyses = AnalysisCache(int(settings.analysis_cache_mb * 1024 * 1024))
        self.prepared = PreparedVersions(engine, registry)
        self._parsed: dict[RequestKey, ParsedRequest] = {}
        self._parsed_bytes = 0

    def remember(
        self, request: RequestKey, spec: LayerSpec, tile: Tile, q: TileQuery, private: bool
    ) -> None:
        """Keep how a request was understood, for the fast path (bounded in entries and
        bytes, long query strings included; wiped when full)."""
        cost = len(request[0]) + len(request[1]) + len(request[2] or b"") + _REMEMBERED_ENTRY
        if len(self._parsed) >= MAX_REMEMBERED or self._parsed_bytes + cost > MAX_REMEMBERED_BYTES:
            self._parsed.clear()
            self._parsed_bytes = 0
        self._parsed_bytes += cost
        self._parsed[request] = ParsedRequest(spec, tile, q, private, time.monotonic() + KEY_TTL_S)

    def hit(self, request: RequestKey) -> tuple[CachedTile, bool] | None:
        """The cached tile of an already-understood request under a fresh generation (and
        whether it is private), or None: then the route answers."""
        parsed = self._parsed.get(request)
        if parsed is None or parsed.expires < time.monotonic():
            return None
        gen = self.watcher.fresh()
        if gen is None:
            return None
        tile = self.cache.get(self.key(parsed.spec, parsed.tile, parsed.query, gen))
        return None if tile is None else (tile, parsed.private)

    def key(self, spec: LayerSpec, tile: Tile, q: TileQuery, gen: Generation) -> Hashable:
        """Everything the tile's bytes depend on."""
        parts: list[Hashable] = [spec.name, tile.z, tile.x, tile.y, q]
        if "boundaries" in spec.sources:
            parts += [gen.boundaries, q.as_of or today()]
        if "reports" in spec.sources:
            parts.append(gen.reports)
        if q.staff and tile.z >= self.settings.points_min_zoom:
            parts.append(int(time.time() // OVERDUE_BUCKET_S))
        return tuple(parts)

    async def tile(self, spec: LayerSpec, tile: Tile, q: TileQuery) -> tuple[CachedTile, bool]:
        """The tile and whether it came from the cache."""
        gen = await self.watcher.current()
        key = self.key(spec, tile, q, gen)
        hit = self.cache.get(key)
        if hit is not None:
            return hit, True
        ctx = RenderContext(gen, self.analyses, self.prepared, self.settings.points_min_zoom)

        async def build() -> CachedTile:
            return await asyncio.to_thread(self._render, spec, tile, q, ctx)

        return await self.cache.get_or_build(key, build)

    def _render(self, spec: LayerSpec, tile: Tile, q: TileQuery, ctx: RenderContext) -> CachedTile:
        with self.engine.connect() as conn:  # a read: every writer stored its reports' cells
            return render(conn, spec.name, tile, q, ctx)
