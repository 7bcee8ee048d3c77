"""Analyses served as map layers: heat, hot spots (Gi*), emerging hot spots, case stages.

Every layer function takes a SQLAlchemy ``Connection`` and an :class:`AnalysisFilter` (build it
with :func:`make_filter`) and returns a GeoDataFrame in WGS84 whose ``attrs`` describe the
analysis; :func:`suppress` and :func:`feature_collection` turn it into a public GeoJSON layer.

==========================  ==============================================================
``heat.heat``               per H3 cell (res/zoom) or per area (level), per household
``hotspots.hotspots``       Gi* on H3 cells (distance band) or areas (queen/rook)
``emerging_hotspots``       Esri's emerging hot spot categories over day/week/month slices
``case_stages``             open / overdue / supervised cases, median time per loop step
``backfill_h3``             repair: H3 cells for reports stored without one (never on reads)
==========================  ==============================================================

Names are imported on first use, so importing one layer does not pull in scipy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "AnalysisFilter": "filters",
    "make_filter": "filters",
    "heat_cells": "heat",
    "heat_areas": "heat",
    "cell_counts": "heat",
    "area_counts": "heat",
    "backfill_h3": "heat",
    "rebuild_heat_rollup": "heat",
    "hotspots_h3": "hotspots",
    "hotspots_areas": "hotspots",
    "gi_star": "hotspots",
    "analyse": "hotspots",
    "bh_adjust": "hotspots",
    "emerging_hotspots": "emerging",
    "emerging_hotspots_h3": "emerging",
    "emerging_hotspots_areas": "emerging",
    "mann_kendall": "emerging",
    "case_stages": "stages",
    "suppress": "privacy",
    "DEFAULT_K": "privacy",
    "feature_collection": "geojson",
    "res_for_zoom": "h3sql",
}
__all__ = [
    "DEFAULT_K",
    "AnalysisFilter",
    "analyse",
    "area_counts",
    "backfill_h3",
    "bh_adjust",
    "case_stages",
    "cell_counts",
    "emerging_hotspots",
    "emerging_hotspots_areas",
    "emerging_hotspots_h3",
    "feature_collection",
    "gi_star",
    "heat_areas",
    "heat_cells",
    "hotspots_areas",
    "hotspots_h3",
    "make_filter",
    "mann_kendall",
    "rebuild_heat_rollup",
    "res_for_zoom",
    "suppress",
]

if TYPE_CHECKING:
    from geo_service.analytics.emerging import (
        emerging_hotspots,
        emerging_hotspots_areas,
        emerging_hotspots_h3,
        mann_kendall,
    )
    from geo_service.analytics.filters import AnalysisFilter, make_filter
    from geo_service.analytics.geojson import feature_collection
    from geo_service.analytics.h3sql import res_for_zoom
    from geo_service.analytics.heat import (
        area_counts,
        backfill_h3,
        cell_counts,
        heat_areas,
        heat_cells,
        rebuild_heat_rollup,
    )
    from geo_service.analytics.hotspots import (
        analyse,
        bh_adjust,
        gi_star,
        hotspots_areas,
        hotspots_h3,
    )
    from geo_service.analytics.privacy import DEFAULT_K, suppress
    from geo_service.analytics.stages import case_stages


def __getattr__(name: str) -> Any:
    """Import the module holding ``name`` on first use."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(name)
    return getattr(importlib.import_module(f"geo_service.analytics.{module}"), name)
