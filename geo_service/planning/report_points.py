"""Every stored report as numpy columns, read as a few binary arrays (a million in about a second).

Impact and suggestions re-locate all past reports under another boundary version; a Python
object per row would cost more than the locating itself. So the database aggregates the
columns into arrays and sends them by binary COPY, which numpy views directly
(:func:`geo_service.store.report_copy.point_arrays`). Category and handling level are only
needed to route open cases, so they are read for those alone.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection

from geo_service.reports.schemas import CHINA_TZ
from geo_service.reports.taxonomy import CATEGORIES, HANDLING_LEVELS
from geo_service.store import report_copy

CATEGORY_CODES: Final = tuple(c.code for c in CATEGORIES)
# beyond about 89 M reports (one aggregated field is at most 1 GB), re-location belongs on
# Dask partitions (DESIGN §6)

IntArray = npt.NDArray[np.int16]


@dataclass(frozen=True)
class ReportPoints:
    """WGS84 points of reports, whether each is an open case, its category and handling level.

    ``category`` indexes :data:`CATEGORY_CODES` and ``level`` indexes ``HANDLING_LEVELS``
    (both 1-based; 0 = closed case, or not in the taxonomy).
    """

    lon: npt.NDArray[np.float64]
    lat: npt.NDArray[np.float64]
    open: npt.NDArray[np.bool_]
    category: IntArray
    level: IntArray

    def __len__(self) -> int:
        return len(self.lon)

    @classmethod
    def empty(cls) -> ReportPoints:
        """No reports at all."""
        z = np.zeros(0, dtype=np.int16)
        return cls(np.zeros(0), np.zeros(0), np.zeros(0, dtype=bool), z, z)


def read_report_points(conn: Connection, since: dt.date | None = None) -> ReportPoints:
    """Every stored report, or those reported since a date (Beijing midnight)."""
    start = None if since is None else dt.datetime.combine(since, dt.time(0), CHINA_TZ)
    cols = report_copy.point_arrays(conn, CATEGORY_CODES, HANDLING_LEVELS, start)
    if not cols["lon"]:
        return ReportPoints.empty()
    is_open = np.concatenate(cols["open"]).astype(bool)
    category = np.zeros(len(is_open), dtype=np.int16)
    level = np.zeros(len(is_open), dtype=np.int16)
    category[is_open] = np.concatenate(cols["category"])
    level[is_open] = np.concatenate(cols["level"])
    return ReportPoints(
        np.concatenate(cols["lon"]).astype(np.float64),
        np.concatenate(cols["lat"]).astype(np.float64),
        is_open,
        category,
        level,
    )
