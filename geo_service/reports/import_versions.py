"""Which boundary version places each history row: the one in force on its Beijing day.

A year of history may straddle a re-gridding: a report of last March belongs to the grid of
last March's boundaries, as intake placed it then. :class:`BoundaryTimeline` holds the
published and retired versions with their effective dates (the same rule as
``versions.version_in_force``) and builds each version's Locator once, on first use.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd
from sqlalchemy import Engine

from geo_service.boundaries import versions
from geo_service.locator import Locator
from geo_service.locator.locator import VersionInfo
from geo_service.reports import placement
from geo_service.reports.schemas import CHINA_TZ
from geo_service.routing import RoutingTable
from geo_service.store.versions import scheduled

IntArray = npt.NDArray[np.int64]
NONE: int = -1  # no version in force


@dataclass
class BoundaryTimeline:
    """Versions in the order ``version_in_force`` prefers them, and their Locators.

    ``fixed`` places every row with the one version given, whatever its date (a caller that
    chose the version, or a Locator read from a file).
    """

    versions: list[VersionInfo]
    build: Callable[[VersionInfo], Locator]
    fixed: bool = False
    _locators: dict[int, Locator] = field(default_factory=dict)

    @classmethod
    def from_database(cls, engine: Engine) -> BoundaryTimeline:
        """Every published or retired version of the database, built lazily from it."""
        with engine.connect() as conn:
            infos = scheduled(conn)

        def build(info: VersionInfo) -> Locator:
            with engine.connect() as conn:
                return Locator.from_frame(versions.load_areas(conn, info.id), info)

        return cls(infos, build)

    @classmethod
    def of(cls, locator: Locator) -> BoundaryTimeline:
        """Every row placed with ``locator``'s version."""
        timeline = cls([locator.version], lambda _info: locator, fixed=True)
        timeline._locators[0] = locator
        return timeline

    def in_force(self, reported_at: pd.Series) -> IntArray:
        """Position in :attr:`versions` of the version in force on each time's Beijing day,
        :data:`NONE` where none was."""
        n = len(reported_at)
        if self.fixed:
            return np.zeros(n, dtype=np.int64)
        days = _beijing_days(reported_at)
        out = np.full(n, NONE, dtype=np.int64)
        for pos, info in enumerate(self.versions):
            assert info.effective_from is not None  # selected so
            start = np.datetime64(info.effective_from, "D")
            holds = (out == NONE) & (days >= start)
            if info.effective_to is not None:
                holds &= days < np.datetime64(info.effective_to, "D")
            out[holds] = pos
        return out

    def locator(self, pos: int) -> Locator:
        """The Locator of the version at ``pos``, built on first use."""
        loc = self._locators.get(pos)
        if loc is None:
            loc = self._locators[pos] = self.build(self.versions[pos])
        return loc

    def place(
        self, pos: IntArray, lon: npt.ArrayLike, lat: npt.ArrayLike, routing: RoutingTable
    ) -> placement.Placement:
        """Grid and code chain of each WGS84 point in the version at its ``pos`` (none -1)."""
        x = np.asarray(lon, dtype=np.float64)
        y = np.asarray(lat, dtype=np.float64)
        n = len(x)
        grid_index = np.full(n, -1, dtype=np.int32)
        columns = [np.full(n, None, dtype=object) for _ in range(5)]
        for p in np.unique(pos).tolist():
            if p == NONE:
                continue
            rows = np.flatnonzero(pos == p)
            part = placement.locate(self.locator(p), routing, x[rows], y[rows])
            grid_index[rows] = part.grid_index
            for col, values in zip(columns, _object_columns(part), strict=True):
                col[rows] = values
        return placement.Placement(grid_index, *columns)

    def version_ids(self, pos: IntArray) -> pd.Series:
        """Database ids of the versions at ``pos`` (missing for :data:`NONE` or a file's)."""
        ids = [v.id for v in self.versions]
        values = [ids[p] if p != NONE else None for p in pos.tolist()]
        return pd.Series(pd.array(values, dtype="Int64"))

    def counts(self, pos: IntArray) -> dict[str, int]:
        """Rows per version label, in timeline order."""
        found = np.bincount(pos[pos != NONE], minlength=len(self.versions))
        return {v.label: int(k) for v, k in zip(self.versions, found, strict=True) if k}

    def first_day(self) -> dt.date | None:
        """The earliest day any version is in force from (None when none ever was)."""
        days = [v.effective_from for v in self.versions if v.effective_from is not None]
        return min(days) if days else None


def _beijing_days(times: pd.Series) -> npt.NDArray[np.datetime64]:
    local = pd.to_datetime(times, utc=True).dt.tz_convert(CHINA_TZ).dt.tz_localize(None)
    return local.to_numpy(dtype="datetime64[ns]").astype("datetime64[D]")


def _object_columns(p: placement.Placement) -> tuple[npt.NDArray[np.object_], ...]:
    return (p.grid_code, p.grid_name, p.community_code, p.town_code, p.district_code)
