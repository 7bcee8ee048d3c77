"""The one filter every analysis takes (time window, category, channel, status, area, bbox).

Endpoints, vector tiles and map pages build an :class:`AnalysisFilter` with :func:`make_filter`
and hand it to the analysis functions, so a layer means the same thing wherever it is drawn.
Times without a zone are Beijing time (the service's users think in it); a report counts in
``[since, until)`` by ``reported_at``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy import Date, String, and_, column, table, true
from sqlalchemy.sql.elements import ColumnElement

from geo_service.boundaries.codes import CODE_LENGTH, level_of
from geo_service.errors import InvalidInput
from geo_service.reports.queries import CLOSED_STATUSES, OPEN_STATUSES, STATUSES, parse_bbox
from geo_service.reports.taxonomy import CATEGORY_BY_CODE, CHANNELS

LOCAL_TZ: Final = ZoneInfo("Asia/Shanghai")
# shorthands accepted in ``status=``
STATUS_ALIASES: Final = {"open": OPEN_STATUSES, "closed": CLOSED_STATUSES}
AREA_LEVELS: Final = tuple(CODE_LENGTH)  # district, town, community, grid

heat_rollup = table(
    "heat_rollup",
    column("day", Date),
    column("h3_9"),
    column("grid_code", String),
    column("category", String),
    column("channel", String),
    column("status", String),
    column("n"),
)


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


def attribute_conditions(f: AnalysisFilter, t: Any) -> list[ColumnElement[bool]]:
    """Category, channel, status and area conditions on a table with those columns
    (``reports`` or ``heat_rollup``); the time window is the caller's (days or instants)."""
    conds: list[ColumnElement[bool]] = []
    if f.categories:
        conds.append(t.c.category.in_(f.categories))
    if f.channels:
        conds.append(t.c.channel.in_(f.channels))
    if f.statuses:
        conds.append(t.c.status.in_(f.statuses))
    if f.area:
        # area codes are prefixes of the codes below them (geo_service.boundaries.codes)
        conds.append(t.c.grid_code.startswith(f.area, autoescape=True))
    return conds


def window_conditions(
    t: Any, since: dt.datetime | None, until: dt.datetime | None
) -> list[ColumnElement[bool]]:
    """``reported_at`` in ``[since, until)`` on the reports table."""
    conds: list[ColumnElement[bool]] = []
    if since is not None:
        conds.append(t.c.reported_at >= since)
    if until is not None:
        conds.append(t.c.reported_at < until)
    return conds


def day_conditions(first: dt.date | None, stop: dt.date | None) -> ColumnElement[bool]:
    """Roll-up days in ``[first, stop)``."""
    conds = []
    if first is not None:
        conds.append(heat_rollup.c.day >= first)
    if stop is not None:
        conds.append(heat_rollup.c.day < stop)
    return and_(*conds) if conds else true()


def level_length(level: str) -> int:
    """Digits of an area code at ``level`` (4xx naming the levels for an unknown one)."""
    if level not in CODE_LENGTH:
        raise InvalidInput(f"unknown level {level!r}: use one of {', '.join(AREA_LEVELS)}")
    return CODE_LENGTH[level]


reports = table(
    "reports",
    column("id"),
    column("reported_at"),
    column("category", String),
    column("channel", String),
    column("status", String),
    column("grid_code", String),
    column("h3_11"),
    column("geom"),
    column("due_at"),
    column("supervised"),
)
