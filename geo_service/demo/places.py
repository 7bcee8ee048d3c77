"""Where synthetic reports fall: the grids (weight, urban or rural), points inside them, and
the hot places' centres over the year (inside coverage, apart from each other)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely

from geo_service.demo.model import HOT_PLACES, HotPlace
from geo_service.errors import InvalidInput
from geo_service.locator import Locator

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
ObjectArray = npt.NDArray[np.object_]

M_PER_DEG_LAT: Final = 110_574.0
M_PER_DEG_LON_EQ: Final = 111_320.0
APART_M: Final = 3500.0  # between the hot places
MOVE_M: Final = (1500.0, 3500.0)  # how far a moving hot place jumps


def metres_to_deg(
    dx: FloatArray, dy: FloatArray, lat: float | FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Offsets in metres → degrees of longitude and latitude near ``lat``."""
    return dx / (M_PER_DEG_LON_EQ * np.cos(np.radians(lat))), dy / M_PER_DEG_LAT


def _distance_m(x0: float, y0: float, x1: FloatArray, y1: FloatArray) -> FloatArray:
    dx = (x1 - x0) * M_PER_DEG_LON_EQ * math.cos(math.radians(y0))
    return np.hypot(dx, (y1 - y0) * M_PER_DEG_LAT)


@dataclass(frozen=True)
class Geography:
    """What the generator needs to know of the grids."""

    locator: Locator
    weight: FloatArray  # households (1 where unknown)
    urban: FloatArray  # density percentile, 0 (sparsest) .. 1 (densest)
    x: FloatArray  # a point inside each grid
    y: FloatArray
    bounds: FloatArray  # (n, 4)
    community: ObjectArray  # names
    town: ObjectArray

    @classmethod
    def of(cls, locator: Locator) -> Geography:
        grids = locator.grids
        if len(grids) == 0:
            raise InvalidInput("the locator has no grids to put reports in")
        geoms = grids.geometry.to_numpy()
        inner = shapely.point_on_surface(geoms)
        x, y = shapely.get_x(inner), shapely.get_y(inner)
        area = shapely.area(geoms) * M_PER_DEG_LAT * M_PER_DEG_LON_EQ * np.cos(np.radians(y))
        households = (
            pd.to_numeric(grids["households"], errors="coerce").fillna(0).to_numpy(float)
            if "households" in grids
            else np.zeros(len(grids))
        )
        weight = np.where(households > 0, households, 1.0)
        density = weight / np.maximum(area, 1.0)
        urban = (np.argsort(np.argsort(density, kind="stable"), kind="stable") + 0.5) / len(grids)

        def names(level: str) -> ObjectArray:
            col = f"{level}_name"
            source = grids[col] if col in grids else grids["name"]
            return source.fillna("").astype(str).to_numpy(dtype=object)

        return cls(
            locator, weight, urban, x, y, shapely.bounds(geoms), names("community"), names("town")
        )

    def grid_of(self, x: FloatArray, y: FloatArray) -> npt.NDArray[np.int32]:
        return self.locator.locate(x, y).grid_index

    def ring_inside(self, x: float, y: float, radius_m: float) -> bool:
        """Whether 16 points ``radius_m`` around (x, y) all lie in some grid."""
        a = np.linspace(0, 2 * math.pi, 16, endpoint=False)
        dx, dy = metres_to_deg(radius_m * np.cos(a), radius_m * np.sin(a), y)
        return bool((self.grid_of(x + dx, y + dy) >= 0).all())

    def points_in(self, rng: np.random.Generator, grid: IntArray) -> tuple[FloatArray, FloatArray]:
        """A uniform random point inside each listed grid (rejection in its bounding box)."""
        x, y = self.x[grid].copy(), self.y[grid].copy()
        todo = np.arange(len(grid))
        for _ in range(60):
            if len(todo) == 0:
                break
            b = self.bounds[grid[todo]]
            px = b[:, 0] + rng.random(len(todo)) * (b[:, 2] - b[:, 0])
            py = b[:, 1] + rng.random(len(todo)) * (b[:, 3] - b[:, 1])
            ok = self.grid_of(px, py) == grid[todo]
            x[todo[ok]], y[todo[ok]] = px[ok], py[ok]
            todo = todo[~ok]
        return x, y  # the very few left keep the grid's inner point


@dataclass(frozen=True)
class Spot:
    """A hot place put on the map: its centre over the year as knots (fraction, lon, lat)."""

    place: HotPlace
    knots: tuple[tuple[float, float, float], ...]
    town: str

    def centre(self, t: FloatArray) -> tuple[FloatArray, FloatArray]:
        kt, kx, ky = (np.array(v) for v in zip(*self.knots, strict=True))
        return np.interp(t, kt, kx), np.interp(t, kt, ky)


class _Picker:
    """Grid inner points for centres: in a pool, inside coverage around, apart from others."""

    def __init__(self, rng: np.random.Generator, geo: Geography) -> None:
        self.rng, self.geo = rng, geo
        self.taken: list[tuple[float, float]] = []

    def pick(self, pool: IntArray, radius_m: float, near: tuple[float, float] | None) -> int:
        geo, fallback = self.geo, int(pool[self.rng.integers(len(pool))])
        tx = np.array([t[0] for t in self.taken])
        ty = np.array([t[1] for t in self.taken])
        for _ in range(300):
            g = int(pool[self.rng.integers(len(pool))])
            x, y = float(geo.x[g]), float(geo.y[g])
            if len(tx) and _distance_m(x, y, tx, ty).min() < APART_M:
                continue
            if near is not None:
                d = float(_distance_m(near[0], near[1], np.array([x]), np.array([y]))[0])
                if not MOVE_M[0] <= d <= MOVE_M[1]:
                    continue
            if geo.ring_inside(x, y, radius_m):
                return g
        return fallback  # a small or odd layout: take what there is

    def drift(self, x: float, y: float, metres: float) -> tuple[float, float]:
        for _ in range(60):
            a = self.rng.random() * 2 * math.pi
            dx, dy = metres_to_deg(
                np.array([metres * math.cos(a)]), np.array([metres * math.sin(a)]), y
            )
            nx, ny = x + float(dx[0]), y + float(dy[0])
            if self.geo.ring_inside(nx, ny, 600.0):
                return nx, ny
        return x, y


def place_spots(rng: np.random.Generator, geo: Geography) -> list[Spot]:
    """Centres for :data:`HOT_PLACES`: urban ones in the densest quarter of grids, rural ones
    in the sparser half; moves jump 1.5-3.5 km, drifts go 2 km while the place is active."""
    picker = _Picker(rng, geo)
    everywhere = np.arange(len(geo.x))
    pools = {
        "urban": np.flatnonzero(geo.urban >= 0.75),
        "rural": np.flatnonzero(geo.urban <= 0.5),
    }
    spots = []
    for place in HOT_PLACES:
        pool = pools[place.setting] if len(pools[place.setting]) else everywhere
        g = picker.pick(pool, max(1200.0, 2.5 * place.sigma_m), None)
        x, y = float(geo.x[g]), float(geo.y[g])
        knots = [(0.0, x, y)]
        for j in range(1, place.moves + 1):
            g2 = picker.pick(pool, 800.0, (x, y))
            at = j / (place.moves + 1)
            x, y = float(geo.x[g2]), float(geo.y[g2])
            knots += [(at - 1e-9, knots[-1][1], knots[-1][2]), (at, x, y)]
        if place.drift_m:
            x, y = picker.drift(x, y, place.drift_m)
            knots.append((0.5, x, y))
        knots.append((1.0, x, y))
        picker.taken += [(k[1], k[2]) for k in knots]
        spots.append(Spot(place, tuple(knots), str(geo.town[g])))
    return spots
