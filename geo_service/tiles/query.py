"""A tile request's query string, checked and normalised into a hashable cache-key part."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from geo_service.analytics.filters import AnalysisFilter, make_filter
from geo_service.boundaries.versions import parse_date
from geo_service.errors import InvalidInput
from geo_service.protocols.open311 import parse_datetime
from geo_service.tiles.layers import AREA_LEVELS, DEFAULT_AREA_LEVEL, LayerSpec


@dataclass(frozen=True, slots=True)
class TileQuery:
    """What a layer's tiles are drawn for (everything but z/x/y and the generations)."""

    filter: AnalysisFilter | None = None
    as_of: dt.date | None = None
    level: str | None = None
    k: int = 0
    staff: bool = False  # operator, planner or admin: may see single reports
    max_res: int = 15  # the finest H3 cells drawn (the public resolution for non-staff)


def _collect(spec: LayerSpec, items: Iterable[tuple[str, str]]) -> dict[str, str]:
    values: dict[str, list[str]] = {}
    for name, value in items:
        values.setdefault(name, []).append(value)
    unknown = sorted(set(values) - spec.params)
    if unknown:
        accepted = ", ".join(sorted(spec.params)) or "none"
        raise InvalidInput(
            f"layer {spec.name!r} does not take {', '.join(map(repr, unknown))}: "
            f"it takes {accepted}"
        )
    return {name: ",".join(v) for name, v in values.items()}


def _k(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9:
        raise InvalidInput(f"k must be a non-negative integer, not {raw!r}")
    return int(raw)


def _level(spec: LayerSpec, raw: str | None) -> str | None:
    if raw is None or raw == "":
        return DEFAULT_AREA_LEVEL if spec.name == "areas" else None
    if raw not in AREA_LEVELS:
        raise InvalidInput(f"unknown level {raw!r}: use one of {', '.join(AREA_LEVELS)}")
    return raw


def parse_query(
    spec: LayerSpec,
    items: Iterable[tuple[str, str]],
    *,
    threshold: Callable[[int | None], int],
    staff: bool,
    max_res: int = 15,
) -> TileQuery:
    """The normalised query of one tile request; unknown parameters and bad values are a
    4xx naming them. ``threshold`` turns the asked ``k`` into the one to apply (or refuses);
    ``max_res`` is the finest H3 resolution the caller may see (layers of report cells)."""
    q = _collect(spec, items)
    f = None
    if "from" in spec.params:
        f = make_filter(
            parse_datetime("from", q.get("from")),
            parse_datetime("to", q.get("to")),
            q.get("category"),
            q.get("channel"),
            q.get("status"),
            q.get("area") or None,
        )
    return TileQuery(
        filter=f,
        as_of=parse_date(q.get("as_of") or None),
        level=_level(spec, q.get("level")),
        k=threshold(_k(q.get("k"))) if spec.suppressed else 0,
        staff=staff and spec.name == "reports",  # only the reports layer differs by role
        max_res=max_res if spec.suppressed else 15,
    )
