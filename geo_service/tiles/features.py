"""Analysis results made ready for tiles: feature sets clipped per tile, per-area figures,
and a small thread-safe cache that computes each analysis once per generation."""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import shapely

from geo_service.locator.registry import estimate_bytes

T = TypeVar("T")
Columns = Sequence[tuple[str, str]]
_INTEGER_TYPES = frozenset({"bigint", "int", "integer"})


def column_values(values: Sequence[Any] | npt.NDArray[Any], sql_type: str) -> list[Any]:
    """Plain Python values for a bound array: NaN and missing become None (no attribute)."""
    out: list[Any] = []
    for v in np.asarray(values, dtype=object).tolist():
        if v is None or (isinstance(v, float) and math.isnan(v)):
            out.append(None)
        elif sql_type in _INTEGER_TYPES:
            out.append(int(v))
        elif sql_type == "float8":
            out.append(float(v))
        elif sql_type == "boolean":
            out.append(bool(v))
        else:
            out.append(str(v))
    return out


@dataclass(frozen=True)
class FeatureSet:
    """Features as WGS84 WKB with their bounds and attribute columns; ``note`` says why a
    set is empty when it is for a reason (too few features for Gi*, ...)."""

    wkb: list[bytes]
    bounds: npt.NDArray[np.float64]  # (n, 4): minx, miny, maxx, maxy
    data: dict[str, list[Any]]
    note: str | None = None

    @classmethod
    def from_frame(cls, frame: gpd.GeoDataFrame, columns: Columns) -> FeatureSet:
        """The rows of ``frame`` with ``columns`` (name, SQL type) as attributes."""
        geoms = np.asarray(frame.geometry.values, dtype=object)
        return cls(
            wkb=[bytes(b) for b in shapely.to_wkb(geoms)] if len(geoms) else [],
            bounds=shapely.bounds(geoms).reshape(-1, 4),
            data={name: column_values(frame[name].to_numpy(), t) for name, t in columns},
        )

    @classmethod
    def empty(cls, columns: Columns, note: str | None = None) -> FeatureSet:
        """No feature, and why."""
        return cls([], np.empty((0, 4)), {name: [] for name, _ in columns}, note)

    def within(self, box: tuple[float, float, float, float]) -> FeatureSet:
        """The features whose bounds meet ``box`` (west, south, east, north)."""
        b = self.bounds
        hit = np.flatnonzero(
            (b[:, 0] <= box[2]) & (b[:, 2] >= box[0]) & (b[:, 1] <= box[3]) & (b[:, 3] >= box[1])
        )
        return FeatureSet(
            wkb=[self.wkb[i] for i in hit],
            bounds=b[hit],
            data={k: [v[i] for i in hit] for k, v in self.data.items()},
            note=self.note,
        )


@dataclass(frozen=True)
class AreaFigures:
    """Figures per area code of one level and version, joined to the areas in SQL."""

    version_id: int
    level: str
    data: dict[str, list[Any]]  # "code" plus the figure columns
    note: str | None = None


@dataclass
class _Slot(Generic[T]):
    lock: threading.Lock = field(default_factory=threading.Lock)
    value: T | None = None
    nbytes: int = 0  # counted once filled


class AnalysisCache:
    """LRU of analysis results by key, bounded by the bytes they hold (estimated by
    :func:`~geo_service.locator.registry.estimate_bytes`) and by count; concurrent callers of
    one key compute it once. A result larger than the whole bound is answered, not kept."""

    def __init__(self, max_bytes: int = 128 * 1024 * 1024, size: int = 32) -> None:
        self.max_bytes = max_bytes
        self.size = size
        self.nbytes = 0
        self._slots: OrderedDict[Hashable, _Slot[Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        """The result of ``key``, computing it with ``compute`` when missing."""
        with self._lock:
            slot = self._slots.get(key)
            if slot is None:
                slot = self._slots[key] = _Slot()
                while len(self._slots) > self.size:
                    self.nbytes -= self._slots.popitem(last=False)[1].nbytes
            self._slots.move_to_end(key)
        with slot.lock:
            if slot.value is None:
                slot.value = compute()
                nbytes = estimate_bytes(slot.value)
                with self._lock:
                    if self._slots.get(key) is slot:  # not dropped while it was computed
                        slot.nbytes = nbytes
                        self.nbytes += nbytes
                        self._evict(key)
            value: T = slot.value
            return value

    def _evict(self, newest: Hashable) -> None:
        """Drop least recently used results until within ``max_bytes``, the newest last
        (the caller holds ``_lock``)."""
        for key in [k for k in self._slots if k != newest] + [newest]:
            if self.nbytes <= self.max_bytes:
                return
            self.nbytes -= self._slots.pop(key).nbytes
