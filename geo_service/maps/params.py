"""The filters of a map page, read from its URL (comma lists or repeated keys) and written back
into its form and links; validated by the analyses' own :func:`make_filter`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlencode

from geo_service.analytics.filters import LOCAL_TZ, AnalysisFilter, make_filter
from geo_service.errors import InvalidInput


def parse_time(value: str | None, name: str) -> dt.datetime | None:
    """An ISO date or date-time (a form's ``datetime-local`` value); empty means none."""
    if value is None or not value.strip():
        return None
    try:
        return dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(
            f"{name!r} is not an ISO date-time (like 2025-01-31T08:00): {value!r}"
        ) from None


def split_values(values: Iterable[str] | None) -> tuple[str, ...]:
    """Repeated keys and comma lists as one tuple, blanks dropped, first occurrence kept."""
    parts = (p.strip() for v in values or () for p in v.split(","))
    return tuple(dict.fromkeys(p for p in parts if p))


def form_time(t: dt.datetime | None) -> str:
    """``t`` as a ``datetime-local`` value in Beijing time (empty for none)."""
    if t is None:
        return ""
    local = t.astimezone(LOCAL_TZ) if t.tzinfo is not None else t
    return local.strftime("%Y-%m-%dT%H:%M")


@dataclass(frozen=True)
class MapQuery:
    """What a page was asked to draw: filters, H3 resolution, suppression k (when given)."""

    since: dt.datetime | None = None
    until: dt.datetime | None = None
    categories: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    area: str | None = None
    res: int | None = None
    k: int | None = None
    analysis_filter: AnalysisFilter = field(default_factory=AnalysisFilter)

    @classmethod
    def parse(
        cls,
        since: str | None = None,
        until: str | None = None,
        category: Iterable[str] | None = None,
        channel: Iterable[str] | None = None,
        status: Iterable[str] | None = None,
        area: str | None = None,
        res: int | None = None,
        k: int | None = None,
    ) -> MapQuery:
        """Parse and validate (4xx naming a bad value)."""
        start, end = parse_time(since, "from"), parse_time(until, "to")
        cats, chans, stats = split_values(category), split_values(channel), split_values(status)
        area = area.strip() if area and area.strip() else None
        f = make_filter(start, end, cats, chans, stats, area)
        return cls(start, end, cats, chans, stats, area, res, k, f)

    def params(self, *, with_res: bool = True) -> list[tuple[str, str]]:
        """The query parameters that reproduce this query."""
        out: list[tuple[str, str]] = []
        if self.since is not None:
            out.append(("from", self.since.isoformat()))
        if self.until is not None:
            out.append(("to", self.until.isoformat()))
        for name, values in (
            ("category", self.categories),
            ("channel", self.channels),
            ("status", self.statuses),
        ):
            if values:
                out.append((name, ",".join(values)))
        if self.area:
            out.append(("area", self.area))
        if with_res and self.res is not None:
            out.append(("res", str(self.res)))
        if self.k is not None:
            out.append(("k", str(self.k)))
        return out

    def query_string(self, *, with_res: bool = True) -> str:
        """``?…`` for links to another page with the same filters (empty when none)."""
        params = self.params(with_res=with_res)
        return "?" + urlencode(params) if params else ""
