"""The one filter every analysis takes (time window, category, channel, status, area, bbox).

Endpoints, vector tiles and map pages build an :class:`AnalysisFilter` with :func:`make_filter`
and hand it to the analysis functions, so a layer means the same thing wherever it is drawn;
``geo_service.store.rollups`` turns it into SQL, :func:`in_view` trims a finished layer.
Times without a zone are Beijing time (the service's users think in it); a report counts in
``[since, until)`` by ``reported_at``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final
from zoneinfo import ZoneInfo

import shapely

from geo_service.boundaries.codes import CODE_LENGTH, level_of
from geo_service.db.schema import AREA_LEVELS
from geo_service.errors import InvalidInput
from geo_service.reports.queries import CLOSED_STATUSES, OPEN_STATUSES, STATUSES, parse_bbox
from geo_service.reports.taxonomy import CATEGORY_BY_CODE, CHANNELS

if TYPE_CHECKING:
    import geopandas as gpd

LOCAL_TZ: Final = ZoneInfo("Asia/Shanghai")
# shorthands accepted in ``status=``
STATUS_ALIASES: Final = {"open": OPEN_STATUSES, "closed": CLOSED_STATUSES}


@dataclass(frozen=True)
class AnalysisFilter:
    """Which reports an analysis counts (empty tuples and None mean "all")."""

    since: dt.datetime | None = None
    until: dt.datetime | None = None
    categories: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    area: str | None = None  # an area code of any level: reports located in it
    bbox: tuple[float, float, float, float] | None = None  # lon/lat; cells by centre

    def window(self) -> tuple[dt.datetime | None, dt.datetime | None]:
        """``since`` and ``until`` as aware datetimes (naive ones read as Beijing time)."""
        return _aware(self.since), _aware(self.until)


def _aware(t: dt.datetime | None) -> dt.datetime | None:
    if t is None or t.tzinfo is not None:
        return t
    return t.replace(tzinfo=LOCAL_TZ)


def _split(value: str | Iterable[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    parts = value.split(",") if isinstance(value, str) else list(value)
    return tuple(dict.fromkeys(p.strip() for p in parts if p and p.strip()))


def _checked(values: tuple[str, ...], known: Iterable[str], what: str) -> tuple[str, ...]:
    allowed = tuple(known)
    bad = [v for v in values if v not in allowed]
    if bad:
        raise InvalidInput(f"unknown {what} {', '.join(map(repr, bad))}: use {', '.join(allowed)}")
    return values


def make_filter(
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    category: str | Iterable[str] | None = None,
    channel: str | Iterable[str] | None = None,
    status: str | Iterable[str] | None = None,
    area: str | None = None,
    bbox: str | tuple[float, float, float, float] | None = None,
) -> AnalysisFilter:
    """A validated filter from query-string style values (comma lists), 4xx naming a bad one."""
    statuses: list[str] = []
    for s in _split(status):
        statuses.extend(STATUS_ALIASES.get(s, (s,)))
    start, end = _aware(since), _aware(until)
    if start is not None and end is not None and start >= end:
        raise InvalidInput("the time window is empty: 'from' must be before 'to'")
    if area is not None and level_of(area) is None:
        raise InvalidInput(f"not an area code: {area!r}")
    return AnalysisFilter(
        since=since,
        until=until,
        categories=_checked(_split(category), CATEGORY_BY_CODE, "category"),
        channels=_checked(_split(channel), CHANNELS, "channel"),
        statuses=_checked(tuple(dict.fromkeys(statuses)), STATUSES, "status"),
        area=area,
        bbox=parse_bbox(bbox) if isinstance(bbox, str) else bbox,
    )


def level_length(level: str) -> int:
    """Digits of an area code at ``level`` (4xx naming the levels for an unknown one)."""
    if level not in CODE_LENGTH:
        raise InvalidInput(f"unknown level {level!r}: use one of {', '.join(AREA_LEVELS)}")
    return CODE_LENGTH[level]


def in_view(frame: gpd.GeoDataFrame, f: AnalysisFilter) -> gpd.GeoDataFrame:
    """The features of an analysis the filter's area and bbox show: areas inside the area
    filter or above it (codes are prefixes of the codes below them), features meeting the
    bbox. Frames without codes (H3 cells) are filtered by the bbox only."""
    if f.area and "code" in frame:
        area = f.area
        frame = frame[frame["code"].map(lambda c: c.startswith(area) or area.startswith(c))]
    if f.bbox is not None:
        frame = frame[frame.intersects(shapely.box(*f.bbox))]
    return frame.reset_index(drop=True)
