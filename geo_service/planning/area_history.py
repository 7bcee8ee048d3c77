"""An area's history: every published (or since retired) version, what the code was in each.

Versions come in the order they took effect (those withdrawn on their first day by a rollback,
which have no range, at their publishing day). For each one the area is *appeared* (first
time), *unchanged* (the same stored row), *attributes* (another row, same geometry), *geometry*
(its outline moved: the changed area is given) or *absent* (the code was not in that version
after having been in an earlier one). Drafts are work in progress and are left out.
"""

from __future__ import annotations

from typing import Any

import shapely
from sqlalchemy import Connection

from geo_service.errors import NotFound
from geo_service.metric import lonlat_area_m2 as area_m2
from geo_service.planning.grid_diff import AREA_TOLERANCE_M2
from geo_service.store import versions as store


def _version(row: Any) -> dict[str, Any]:
    def day(v: Any) -> str | None:
        return v.isoformat() if v is not None else None

    return {
        "id": row.id,
        "label": row.label,
        "status": row.status,
        "effective_from": day(row.effective_from),
        "effective_to": day(row.effective_to),
        "rolled_back_at": day(row.rolled_back_at),
    }


def area_history(conn: Connection, code: str) -> dict[str, Any]:
    """The timeline of area ``code`` over the official versions (404 if it was never in one)."""
    official = store.official(conn)
    rows = {r.version_id: r for r in store.areas_of(conn, [v.id for v in official], codes=[code])}
    if not any(v.id in rows for v in official):
        raise NotFound(f"no published or retired boundary version has an area {code!r}")
    timeline: list[dict[str, Any]] = []
    previous: Any = None
    geom_before = None
    for v in official:
        row = rows.get(v.id)
        if row is None:
            if previous is not None:
                timeline.append({"version": _version(v), "change": "absent"})
                previous = geom_before = None
            continue
        geom = shapely.from_wkb(bytes(row.wkb))
        entry: dict[str, Any] = {
            "version": _version(v),
            "area_id": row.area_id,
            "name": row.name,
            "level": row.level,
            "parent_code": row.parent_code,
            "households": row.households,
            "population": row.population,
            "attributes": row.attributes or {},
            "area_m2": round(float(area_m2([geom])[0]), 1),
        }
        if geom_before is None:
            entry["change"] = "appeared" if not timeline else "reappeared"
        elif previous.area_id == row.area_id:
            entry["change"] = "unchanged"
        else:
            moved = float(area_m2([shapely.symmetric_difference(geom, geom_before)])[0])
            entry["change"] = "geometry" if moved > AREA_TOLERANCE_M2 else "attributes"
            entry["area_changed_m2"] = round(moved, 1)
        timeline.append(entry)
        previous, geom_before = row, geom
    return {"code": code, "versions": timeline}
