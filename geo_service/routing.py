"""Responsible units and routing: (category, handling level) → unit, with the territorial
fallback (属地兜底) when no rule names a unit or the named unit does not exist for the area."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

from geo_service import audit
from geo_service.auth import Principal
from geo_service.reports.taxonomy import (
    AREA_LEVEL_OF,
    CATEGORIES,
    TERRITORIAL,
    UNIT_LEVEL,
    UNIT_TYPES,
)
from geo_service.store import units as store_units

# which unit types every area of a level gets when a boundary version is stored
UNITS_FOR_LEVEL = {
    level: tuple(t for t, lvl in UNIT_LEVEL.items() if lvl == level)
    for level in ("grid", "community", "town", "district")
}


def seed_reference_data(conn: Connection) -> None:
    """Write the taxonomy's categories and rules (idempotent: the taxonomy module wins)."""
    store_units.upsert_categories(
        conn,
        [
            {
                "code": c.code,
                "name": c.name,
                "name_en": c.name_en,
                "level": c.level,
            }
            for c in CATEGORIES
        ],
    )
    store_units.replace_rules(
        conn,
        [c.code for c in CATEGORIES],
        [(c.code, level, unit_type) for c in CATEGORIES for level, unit_type in c.rules.items()],
    )


def seed_units(conn: Connection, version_id: int, *, principal: Principal | None = None) -> int:
    """Create the standing units of every area in a version (existing ones are kept); how many
    were created, audited as done by ``principal`` (None: the local account)."""
    created = sum(
        store_units.create_area_units(conn, version_id, level, unit_type, UNIT_TYPES[unit_type])
        for level, types in UNITS_FOR_LEVEL.items()
        for unit_type in types
    )
    if created:
        what = {"version_id": version_id, "created": created}
        audit.record(conn, "unit.seed", "unit", f"version:{version_id}", principal, what)
    return created


@dataclass(frozen=True)
class Route:
    """Where a case goes: the unit, and whether a rule or the territorial fallback chose it."""

    unit_id: int | None
    unit_type: str | None
    routed_by: str  # "rule", "territorial", "outside_coverage", "unrouted"


class RoutingTable:
    """Units and rules held in memory, so routing a batch costs dictionary look-ups."""

    def __init__(
        self,
        units: dict[tuple[str, str], int],
        rules: dict[tuple[str, str], str],
        unit_info: dict[int, dict[str, str | int]],
        default_district: str | None,
    ) -> None:
        self.units = units
        self.rules = rules
        self.unit_info = unit_info
        self.default_district = default_district

    @classmethod
    def load(cls, conn: Connection) -> RoutingTable:
        """The active units and every rule, as stored now."""
        rows = store_units.active_units(conn)
        units = {(r.unit_type, r.area_code): r.id for r in rows}
        info: dict[int, dict[str, str | int]] = {
            r.id: {"id": r.id, "code": r.code, "name": r.name, "type": r.unit_type} for r in rows
        }
        rules = {(r.category_code, r.level): r.unit_type for r in store_units.rules(conn)}
        districts = sorted(code for t, code in units if t == "district_centre")
        return cls(units, rules, info, districts[0] if districts else None)

    def route(self, category: str, level: str, chain: dict[str, str] | None) -> Route:
        """The unit answering ``category`` at ``level`` for an area chain (level → code).

        ``chain`` is None outside coverage: the district command centre takes the case.
        """
        if not chain:
            unit = self.units.get(("district_centre", self.default_district or ""))
            return Route(unit, "district_centre" if unit else None, "outside_coverage")
        unit_type = self.rules.get((category, level))
        if unit_type:
            unit = self.units.get((unit_type, chain.get(UNIT_LEVEL[unit_type], "")))
            if unit is not None:
                return Route(unit, unit_type, "rule")
        fallback = TERRITORIAL[level]
        unit = self.units.get((fallback, chain.get(AREA_LEVEL_OF[level], "")))
        if unit is not None:
            return Route(unit, fallback, "territorial")
        unit = self.units.get(("district_centre", chain.get("district", "")))
        return Route(
            unit, "district_centre" if unit else None, "territorial" if unit else "unrouted"
        )
