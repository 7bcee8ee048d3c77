"""Store a layout made from a stored version as a new draft, sharing the rows it keeps.

A frame from :func:`versions.load_areas` carries each area's row id (``area_id``). Rows the
new layout keeps as they are are linked again by that id; new or changed areas (``area_id``
missing) are stored through :func:`geo_service.planning.drafts.store_areas`, which finds an
identical row by fingerprint or inserts one with its subdivided parts. Linking by id matters:
the importer fingerprints a Polygon before PostGIS makes it a MultiPolygon, so a reloaded
geometry would not find its own row by fingerprint and would be copied.
"""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import pandas as pd
from sqlalchemy import Connection, text

from geo_service.boundaries.importer import new_draft
from geo_service.planning.drafts import store_areas
from geo_service.routing import seed_units


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Layout records of rows to store: attributes as keys, missing values left out."""
    out: list[dict[str, Any]] = []
    plain = pd.DataFrame(frame.drop(columns=["area_id", frame.geometry.name])).to_dict("records")
    for rec, geom in zip(plain, frame.geometry, strict=True):
        kept = {str(k): v for k, v in rec.items() if not _missing(v)}
        kept.setdefault("parent_code", "")
        kept["geometry"] = geom
        out.append(kept)
    return out


def store_layout(conn: Connection, frame: gpd.GeoDataFrame, label: str, source: str) -> int:
    """Insert a draft version holding ``frame`` (with its standing units); return its id.

    A row whose content the caller changed must have its ``area_id`` cleared.
    """
    vid = new_draft(conn, label, source)
    ids = pd.to_numeric(frame["area_id"], errors="coerce") if "area_id" in frame else None
    fresh = frame.loc[ids.isna()] if ids is not None else frame
    kept = frame.loc[ids.notna()] if ids is not None else frame.iloc[:0]
    members = [
        {"v": vid, "a": int(a), "code": c, "level": lvl}
        for a, c, lvl in zip(kept["area_id"], kept["code"], kept["level"], strict=True)
    ]
    if len(fresh):
        stored = store_areas(conn, _records(fresh.assign(area_id=None)))
        members += [
            {"v": vid, "a": a, "code": c, "level": lvl}
            for a, c, lvl in zip(stored, fresh["code"], fresh["level"], strict=True)
        ]
    conn.execute(
        text(
            "INSERT INTO version_areas (version_id, area_id, code, level) "
            "VALUES (:v, :a, :code, :level)"
        ),
        members,
    )
    seed_units(conn, vid)
    return int(vid)
