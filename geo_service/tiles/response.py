"""The HTTP face of a tile: status (200, 204 empty, 304 not modified) and caching headers,
the same whether the route or the cache-hit fast path answers."""

from __future__ import annotations

from typing import Final

from geo_service.tiles.cache import CachedTile

MVT: Final = "application/vnd.mapbox-vector-tile"


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header names ``etag`` (weak comparison, or ``*``)."""
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        tag = candidate.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False


def tile_answer(
    tile: CachedTile, hit: bool, if_none_match: str | None, private: bool, max_age: int
) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body of a tile response."""
    headers = [
        ("etag", tile.etag),
        ("cache-control", f"{'private' if private else 'public'}, max-age={max_age}"),
        ("vary", "Authorization"),
        ("x-tile-cache", "hit" if hit else "miss"),
    ]
    if tile.note:
        headers.append(("x-tile-note", tile.note.encode("ascii", "replace").decode()))
    if etag_matches(if_none_match, tile.etag):
        return 304, headers, b""
    if not tile.body:
        return 204, headers, b""
    return 200, [("content-type", MVT), *headers], tile.body
