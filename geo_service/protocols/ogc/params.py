"""Query parameters of ``/items``: bbox, datetime, limit, offset and f, checked (a 400 names
a bad or unknown one, as OGC API - Features asks)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from geo_service.errors import InvalidInput
from geo_service.protocols.open311 import parse_datetime
from geo_service.reports.queries import parse_bbox
from geo_service.reports.schemas import CHINA_TZ

ITEM_PARAMS: Final = frozenset({"bbox", "datetime", "limit", "offset", "f"})
DEFAULT_LIMIT: Final = 100
MAX_OFFSET: Final = 2**63 - 1  # PostgreSQL's bigint: OFFSET takes no more
FORMATS: Final = ("json", "geojson")
_DAY: Final = dt.timedelta(days=1)
_TICK: Final = dt.timedelta(microseconds=1)


@dataclass(frozen=True)
class ItemsQuery:
    """One items request: a WGS84 bbox, a closed time window, a page."""

    bbox: tuple[float, float, float, float] | None = None
    start: dt.datetime | None = None  # inclusive
    end: dt.datetime | None = None  # inclusive
    day: dt.date | None = None  # an instant's day (what the boundary collections use)
    interval: bool = False
    limit: int = DEFAULT_LIMIT
    offset: int = 0


def _integer(name: str, raw: str, low: int, high: int | None = None) -> int:
    try:
        value = int(raw)
    except ValueError as exc:
        raise InvalidInput(f"{name} must be an integer, not {raw!r}") from exc
    if value < low:
        raise InvalidInput(f"{name} must be at least {low}, not {value}")
    if high is not None and value > high:
        raise InvalidInput(f"{name} must be at most {high}, not {value}")
    return value


def parse_ogc_bbox(raw: str) -> tuple[float, float, float, float]:
    """``minlon,minlat,maxlon,maxlat`` (or the 6-number 3D form), CRS84."""
    parts = raw.split(",")
    if len(parts) == 6:
        parts = [parts[0], parts[1], parts[3], parts[4]]
    box = parse_bbox(",".join(parts))
    if box is None:
        raise InvalidInput("bbox is empty: give minlon,minlat,maxlon,maxlat")
    if not (-180 <= box[0] <= 180 and -180 <= box[2] <= 180 and -90 <= box[1] <= box[3] <= 90):
        raise InvalidInput(f"bbox is outside longitude -180..180, latitude -90..90: {raw!r}")
    return box


def _bound(raw: str, end: bool) -> dt.datetime | None:
    """One end of a datetime interval: open (``..`` or empty), a day, or an instant."""
    if raw in ("", ".."):
        return None
    if len(raw) == 10:  # a day: from its first to its last instant (China time)
        try:
            day = dt.date.fromisoformat(raw)
        except ValueError as exc:
            raise InvalidInput(f"datetime: not a date (YYYY-MM-DD): {raw!r}") from exc
        start = dt.datetime.combine(day, dt.time(0), tzinfo=CHINA_TZ)
        return start + _DAY - _TICK if end else start
    return parse_datetime("datetime", raw)


def parse_datetime_param(raw: str) -> tuple[dt.datetime | None, dt.datetime | None, bool]:
    """``datetime=``: an instant, a day, or an interval ``a/b`` with ``..`` for an open end;
    answers the closed window and whether it was an interval."""
    if "/" in raw:
        first, _, last = raw.partition("/")
        start, end = _bound(first, False), _bound(last, True)
        if start is None and end is None:
            raise InvalidInput("datetime: an interval needs at least one end")
        if start is not None and end is not None and start > end:
            raise InvalidInput(f"datetime: the interval ends before it starts: {raw!r}")
        return start, end, True
    if raw in ("", ".."):
        raise InvalidInput("datetime: give an instant, a date or an interval a/b")
    return _bound(raw, False), _bound(raw, True), False


def parse_items(items: Iterable[tuple[str, str]], max_limit: int) -> ItemsQuery:
    """The items query; ``limit`` above ``max_limit`` is lowered to it (as the standard says)."""
    q: dict[str, str] = {}
    for name, value in items:
        if name not in ITEM_PARAMS:
            raise InvalidInput(
                f"unknown query parameter {name!r}: items take {', '.join(sorted(ITEM_PARAMS))}"
            )
        if name in q:
            raise InvalidInput(f"query parameter {name!r} is given twice")
        q[name] = value
    fmt = q.get("f", "json")
    if fmt not in FORMATS:
        raise InvalidInput(f"f={fmt!r} is not offered: use f=json")
    start = end = None
    interval = False
    if "datetime" in q:
        start, end, interval = parse_datetime_param(q["datetime"])
    day = start.astimezone(CHINA_TZ).date() if start is not None and not interval else None
    return ItemsQuery(
        bbox=parse_ogc_bbox(q["bbox"]) if "bbox" in q else None,
        start=start,
        end=end,
        day=day,
        interval=interval,
        limit=min(_integer("limit", q.get("limit", str(DEFAULT_LIMIT)), 1), max_limit),
        offset=_integer("offset", q.get("offset", "0"), 0, MAX_OFFSET),
    )


def check_plain(items: Iterable[tuple[str, str]]) -> None:
    """Documents other than items take only ``f=json``."""
    for name, value in items:
        if name != "f":
            raise InvalidInput(f"unknown query parameter {name!r}: this resource takes only f")
        if value not in FORMATS:
            raise InvalidInput(f"f={value!r} is not offered: use f=json")
