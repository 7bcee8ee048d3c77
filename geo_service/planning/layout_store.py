"""Store a layout made from a stored version as a new draft, sharing the rows it keeps.

A frame from :func:`versions.load_areas` carries each area's row id (``area_id``). Rows the
new layout keeps as they are are linked again by that id; new or changed areas (``area_id``
missing) go through :func:`geo_service.store.versions.add_areas` like any other, which finds
an identical row by fingerprint or inserts one with its subdivided parts. Linking by id
matters: the importer fingerprints a Polygon before PostGIS makes it a MultiPolygon, so a
reloaded geometry would not find its own row by fingerprint and would be copied.
"""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
from sqlalchemy import Connection

from geo_service.auth import Principal
from geo_service.boundaries.importer import new_draft
from geo_service.routing import seed_units
from geo_service.store import versions as store


def store_layout(
    conn: Connection,
    frame: gpd.GeoDataFrame,
    label: str,
    source: str,
    *,
    principal: Principal | None = None,
) -> int:
    """Insert a draft version holding ``frame`` (with its standing units); return its id;
    audited as made by ``principal`` (None: the local account).

    A row whose content the caller changed must have its ``area_id`` cleared.
    """
    vid = new_draft(conn, label, source, principal=principal)
    if "area_id" in frame:
        ids = pd.to_numeric(frame["area_id"], errors="coerce")
        kept = [None if pd.isna(i) else int(i) for i in ids]
        layout = frame.drop(columns="area_id")
    else:
        kept, layout = [None] * len(frame), frame
    store.add_areas(conn, vid, layout, area_ids=kept)
    seed_units(conn, vid, principal=principal)
    return vid
