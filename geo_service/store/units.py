"""Units, routing rules and categories (``units``, ``routing_rules``, ``categories``).

Routing itself (rule, territorial fallback) is :mod:`geo_service.routing`'s, held in memory;
this module reads what it needs, writes the taxonomy's reference data and creates the standing
units of a boundary version's areas.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Text, delete, literal, select
from sqlalchemy.dialects.postgresql import insert

from geo_service.db.schema import areas, categories, routing_rules, units, version_areas


def upsert_categories(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert or update categories (``code``, ``name``, ``name_en``, ``level``)."""
    if not rows:
        return
    stmt = insert(categories)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[categories.c.code],
            set_={c: stmt.excluded[c] for c in ("name", "name_en", "level")},
        ),
        list(rows),
    )


def replace_rules(
    conn: Connection, category_codes: Sequence[str], rules: Iterable[tuple[str, str, str]]
) -> None:
    """The routing rules of these categories become exactly ``rules`` (category, level,
    unit type)."""
    conn.execute(delete(routing_rules).where(routing_rules.c.category_code.in_(category_codes)))
    values = [{"category_code": c, "level": lvl, "unit_type": t} for c, lvl, t in rules]
    if values:
        conn.execute(insert(routing_rules), values)


def create_area_units(
    conn: Connection, version_id: int, level: str, unit_type: str, name_suffix: str
) -> int:
    """A unit of ``unit_type`` (code ``<type>:<area code>``, named after the area) for every
    area of ``level`` in a version that has none yet; how many were created."""
    source = (
        select(
            literal(unit_type, Text) + ":" + areas.c.code,
            areas.c.name + literal(name_suffix, Text),
            literal(unit_type, Text),
            literal(level, Text),
            areas.c.code,
        )
        .select_from(version_areas.join(areas, areas.c.id == version_areas.c.area_id))
        .where(version_areas.c.version_id == version_id, version_areas.c.level == level)
    )
    created = conn.execute(
        insert(units)
        .from_select(["code", "name", "unit_type", "level", "area_code"], source)
        .on_conflict_do_nothing(index_elements=[units.c.unit_type, units.c.area_code])
        .returning(units.c.id)  # the driver's rowcount is -1 for this statement
    ).all()
    return len(created)


def active_units(conn: Connection) -> Sequence[Any]:
    """Every active unit: ``id``, ``code``, ``name``, ``unit_type``, ``area_code``."""
    return conn.execute(
        select(units.c.id, units.c.code, units.c.name, units.c.unit_type, units.c.area_code).where(
            units.c.active
        )
    ).all()


def active_unit(conn: Connection, code: str) -> Any | None:
    """The active unit of a code (``id``, ``unit_type``), or None."""
    return conn.execute(
        select(units.c.id, units.c.unit_type).where(units.c.code == code, units.c.active)
    ).one_or_none()


def rules(conn: Connection) -> Sequence[Any]:
    """Every routing rule: ``category_code``, ``level``, ``unit_type``."""
    return conn.execute(
        select(routing_rules.c.category_code, routing_rules.c.level, routing_rules.c.unit_type)
    ).all()
