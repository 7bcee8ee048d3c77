"""TileJSON 3.0.0 documents for the tile layers, with the query carried into the tile URLs."""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

from sqlalchemy import Connection

from geo_service.boundaries.versions import version_in_force
from geo_service.errors import NoBoundaryVersion
from geo_service.store import versions as store
from geo_service.tiles.address import MAX_ZOOM
from geo_service.tiles.layers import LayerSpec

WORLD: Final = (-180.0, -85.0511, 180.0, 85.0511)
EMPTY_TILE: Final = "204 No Content (MapLibre GL JS draws nothing for it)"


def version_bounds(conn: Connection, as_of: dt.date | None) -> tuple[list[float], str | None]:
    """The bounds of the version in force (world and no label when none is)."""
    try:
        version = version_in_force(conn, as_of)
    except NoBoundaryVersion:
        return list(WORLD), None
    assert version.id is not None
    box = store.extent(conn, version.id)
    if box is None:
        return list(WORLD), version.label
    return [round(v, 6) for v in box], version.label


def tilejson(
    spec: LayerSpec,
    tile_url: str,
    bounds: list[float],
    version: str | None,
    k_min: int,
    points_min_zoom: int,
) -> dict[str, Any]:
    """The TileJSON of ``spec`` whose tiles are at ``tile_url`` (a {z}/{x}/{y} template)."""
    centre_zoom = max(spec.minzoom, min(11, spec.maxzoom))
    doc: dict[str, Any] = {
        "tilejson": "3.0.0",
        "name": spec.name,
        "description": spec.description,
        "version": "1.0.0",
        "attribution": "geo_service",
        "scheme": "xyz",
        "tiles": [tile_url],
        "minzoom": spec.minzoom,
        "maxzoom": spec.maxzoom,
        "bounds": bounds,
        "center": [
            round((bounds[0] + bounds[2]) / 2, 6),
            round((bounds[1] + bounds[3]) / 2, 6),
            centre_zoom,
        ],
        "vector_layers": [
            {
                "id": spec.name,
                "description": spec.title,
                "minzoom": spec.minzoom,
                "maxzoom": spec.maxzoom,
                "fields": dict(spec.fields),
            }
        ],
        "geo_service": {
            "query_parameters": sorted(spec.params),
            "boundary_version": version,
            "empty_tile": EMPTY_TILE,
            "zoom_range_served": [0, MAX_ZOOM],
        },
    }
    if spec.suppressed:
        doc["geo_service"]["k_min"] = k_min
    if spec.name == "reports":
        doc["geo_service"]["single_reports_from_zoom"] = points_min_zoom
    if spec.name == "areas":
        doc["geo_service"]["level"] = "?level=district|town|community|grid (default town)"
    return doc
