"""Responsible units and routing: (category, handling level) → unit, with the territorial
fallback (属地兜底) when no rule names a unit or the named unit does not exist for the area."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text

from geo_service.reports.taxonomy import (
    AREA_LEVEL_OF,
    CATEGORIES,
    TERRITORIAL,
    UNIT_LEVEL,
    UNIT_TYPES,
)

# which unit types every area of a level gets when a boundary version is stored
UNITS_FOR_LEVEL = {
    level: tuple(t for t, lvl in UNIT_LEVEL.items() if lvl == level)
    for level in ("grid", "community", "town", "district")
}


def seed_reference_data(conn: Connection) -> None:
    """Write the taxonomy's categories and rules (idempotent: the taxonomy module wins)."""
    for c in CATEGORIES:
        conn.execute(
            text(
                "INSERT INTO categories (code, name, name_en, level, sla_hours) "
                "VALUES (:code, :name, :name_en, :level, :sla) ON CONFLICT (code) DO UPDATE "
                "SET name = EXCLUDED.name, name_en = EXCLUDED.name_en, "
                "level = EXCLUDED.level, sla_hours = EXCLUDED.sla_hours"
            ),
            {
                "code": c.code,
                "name": c.name,
                "name_en": c.name_en,
                "level": c.level,
                "sla": c.sla_hours,
            },
        )
        conn.execute(text("DELETE FROM routing_rules WHERE category_code = :c"), {"c": c.code})
        for level, unit_type in c.rules.items():
            conn.execute(
                text(
                    "INSERT INTO routing_rules (category_code, level, unit_type) "
                    "VALUES (:c, :l, :t)"
                ),
                {"c": c.code, "l": level, "t": unit_type},
            )


def seed_units(conn: Connection, version_id: int) -> int:
    """Create the standing units of every area in a version (existing ones are kept)."""
    created = 0
    for level, types in UNITS_FOR_LEVEL.items():
        for unit_type in types:
            result = conn.execute(
                text(
                    "INSERT INTO units (code, name, unit_type, level, area_code) "
                    "SELECT CAST(:t AS text) || ':' || a.code, a.name || CAST(:suffix AS text), "
                "CAST(:t AS text), CAST(:lvl AS text), a.code "
                    "FROM version_areas va JOIN areas a ON a.id = va.area_id "
                    "WHERE va.version_id = :v AND va.level = CAST(:lvl AS text) "
                    "ON CONFLICT (unit_type, area_code) DO NOTHING"
                ),
                {"t": unit_type, "suffix": UNIT_TYPES[unit_type], "lvl": level, "v": version_id},
            )
            created += result.rowcount or 0
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
        rows = conn.execute(
            text("SELECT id, code, name, unit_type, area_code FROM units WHERE active")
        ).all()
        units = {(r.unit_type, r.area_code): r.id for r in rows}
        info: dict[int, dict[str, str | int]] = {
            r.id: {"id": r.id, "code": r.code, "name": r.name, "type": r.unit_type} for r in rows
        }
        rules = {
            (r.category_code, r.level): r.unit_type
            for r in conn.execute(text("SELECT category_code, level, unit_type FROM routing_rules"))
        }
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
