"""Tile addresses (z/x/y, XYZ scheme as MapLibre asks) checked at the edge, and their bounds."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from geo_service.errors import InvalidInput

MAX_ZOOM: Final = 24
EXTENT: Final = 4096  # MVT coordinate units per tile side
BUFFER: Final = 64  # units of geometry kept beyond the tile edge, so strokes join cleanly
TILE_SUFFIX: Final = ".mvt"


@dataclass(frozen=True, slots=True)
class Tile:
    """One tile of the Web Mercator pyramid (x to the east, y to the south, from 0)."""

    z: int
    x: int
    y: int

    def lonlat_bounds(self, pad: float = 0.0) -> tuple[float, float, float, float]:
        """West, south, east, north in degrees, widened by ``pad`` tile sides on every side."""
        n = 2.0**self.z
        west = (self.x - pad) / n * 360.0 - 180.0
        east = (self.x + 1 + pad) / n * 360.0 - 180.0
        north = _lat(self.y - pad, n)
        south = _lat(self.y + 1 + pad, n)
        return west, south, east, north


def _lat(row: float, n: float) -> float:
    row = min(max(row, 0.0), n)
    return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * row / n))))


def _integer(name: str, raw: str) -> int:
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9:
        raise InvalidInput(f"tile {name} must be a non-negative integer, not {raw!r}")
    return int(raw)


def parse_tile(z: str, x: str, y_file: str) -> Tile:
    """The tile of path parts ``{z}``, ``{x}`` and ``{y}.mvt``; a 4xx naming a bad part."""
    if not y_file.endswith(TILE_SUFFIX):
        raise InvalidInput(f"tile path must end in {{y}}{TILE_SUFFIX}, not {y_file!r}")
    zoom = _integer("zoom z", z)
    if zoom > MAX_ZOOM:
        raise InvalidInput(f"tile zoom z={zoom} is above the maximum {MAX_ZOOM}")
    col = _integer("column x", x)
    row = _integer("row y", y_file[: -len(TILE_SUFFIX)])
    last = 2**zoom - 1
    if col > last:
        raise InvalidInput(f"tile column x={col} is outside 0..{last} at zoom {zoom}")
    if row > last:
        raise InvalidInput(f"tile row y={row} is outside 0..{last} at zoom {zoom}")
    return Tile(zoom, col, row)
