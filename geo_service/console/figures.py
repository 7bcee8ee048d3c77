"""What the console's JSON calls answer, assembled from the one definition of each figure
(:func:`geo_service.stats.indicators.indicators`) and the areas of the version in force.

Nothing is recomputed here: a period's ``total`` is the district row exactly as
``/v1/stats/indicators?by=area&level=district`` answers it (the cohort's totals when a filter
leaves several districts), and each channel's row is the same call with that channel alone.
"""

from __future__ import annotations

from typing import Any, Final

import shapely
from sqlalchemy import Engine

from geo_service.analytics import areas as area_data
from geo_service.db.schema import CHANNELS
from geo_service.locator.registry import process_registry
from geo_service.settings import StatsSettings
from geo_service.stats.indicators import IndicatorQuery, Period, PeriodKind, indicators

LABEL_LEVELS: Final = ("town", "community")


def _codes(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(dict.fromkeys(p.strip() for p in value.split(",") if p.strip()))


def _district_row(engine: Engine, settings: StatsSettings, q: IndicatorQuery) -> dict[str, Any]:
    table = indicators(engine, q, settings)
    rows = table.rows()
    if len(rows) == 1:
        return rows[0]
    return table.total.to_json()


def period_figures(
    engine: Engine,
    settings: StatsSettings,
    period: PeriodKind | str,
    area: str | None,
    category: str | None,
    channel: str | None,
) -> dict[str, Any]:
    """``{"period", "label", "total", "channels"}`` for the ``period`` holding today (422
    naming a bad parameter, as ``/v1/stats`` does)."""
    p = Period.of(period)
    chosen = _codes(channel)
    base = IndicatorQuery(p, "area", "district", _codes(category), chosen, area or None)
    total = _district_row(engine, settings, base)
    per_channel = {
        c: _district_row(
            engine,
            settings,
            IndicatorQuery(p, "area", "district", base.categories, (c,), base.area),
        )
        for c in (chosen or CHANNELS)
    }
    return {"period": p.to_json(), "label": p.label_zh(), "total": total, "channels": per_channel}


def area_labels(engine: Engine) -> dict[str, Any]:
    """Towns and communities of the version in force (code, name, level, parent, a point
    inside for the name) and the district's extent ``[west, south, east, north]``."""
    registry = process_registry()
    with engine.connect() as conn:
        info = registry.in_force(conn, None)
        frames = {lvl: area_data.areas(conn, lvl) for lvl in LABEL_LEVELS}
        return registry.get(conn, info, ("console-labels",), lambda _: _labels(frames, info.label))


def _labels(frames: dict[str, Any], version: str) -> dict[str, Any]:
    items: list[dict[str, Any]] = []
    bounds = [180.0, 90.0, -180.0, -90.0]
    for level, frame in frames.items():
        points = shapely.point_on_surface(frame.geometry.values)
        west, south, east, north = (float(v) for v in frame.total_bounds)
        bounds = [min(bounds[0], west), min(bounds[1], south),
                  max(bounds[2], east), max(bounds[3], north)]  # fmt: skip
        for row, pt in zip(frame.itertuples(index=False), points, strict=True):
            items.append(
                {
                    "code": row.code,
                    "name": row.name,
                    "level": level,
                    "parent_code": row.parent_code,
                    "lon": round(float(shapely.get_x(pt)), 6),
                    "lat": round(float(shapely.get_y(pt)), 6),
                }
            )
    return {"version": version, "bounds": bounds, "items": items}
