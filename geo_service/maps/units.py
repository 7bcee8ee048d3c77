"""The responsible unit of each area, for hover details: the standing unit the territory
answers to (a grid's work team, a community's committee, a town's or district's command
centre), taken from the service's in-memory routing table (no query per page)."""

from __future__ import annotations

from collections.abc import Iterable

from geo_service.routing import RoutingTable
from geo_service.tiles.layers import OWN_UNIT


def responsible_units(table: RoutingTable, level: str, codes: Iterable[str]) -> list[str]:
    """``"name (unit code)"`` of each area's standing unit; empty where it has none."""
    unit_type = OWN_UNIT[level]
    out = []
    for code in codes:
        unit = table.units.get((unit_type, code))
        info = table.unit_info.get(unit) if unit is not None else None
        out.append(f"{info['name']} ({info['code']})" if info else "")
    return out
