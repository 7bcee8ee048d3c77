"""The tile layers: what each draws, the query parameters it takes, its zooms and fields.

One table, so the tile route, TileJSON and the tests agree on every layer's contract.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from geo_service.boundaries.codes import LEVELS
from geo_service.errors import NotFound
from geo_service.reports.taxonomy import TERRITORIAL

FILTER_PARAMS: Final = frozenset({"from", "to", "category", "channel", "status", "area"})
AREA_FIELDS: Final = {
    "code": "String: area code (district 6, town 9, community 12, grid 15 digits)",
    "name": "String: area name",
    "level": "String: district, town, community or grid",
    "parent_code": "String: code of the area one level up",
    "households": "Number: households",
    "population": "Number: population",
    "district_code": "String: district of the area",
    "district_name": "String",
    "town_code": "String: town (street) of the area",
    "town_name": "String",
    "community_code": "String: community (village) of the area",
    "community_name": "String",
    "unit_name": "String: the area's own unit (grid team, committee, command centre)",
}
STAT_FIELDS: Final = {
    "z": "Number: Gi* z-score",
    "p": "Number: two-sided p-value",
    "q": "Number: p-value after the False Discovery Rate correction",
    "gi_bin": "Number: Esri Gi_Bin, -3..3 (cold/hot at 99/95/90 %)",
    "class": "String: hot_99 … not_significant … cold_99",
}


@dataclass(frozen=True)
class LayerSpec:
    """One tile layer's contract."""

    name: str
    title: str
    description: str
    params: frozenset[str]
    sources: tuple[str, ...]  # which generations its tiles depend on
    minzoom: int = 0
    maxzoom: int = 18
    fields: Mapping[str, str] = field(default_factory=dict)
    suppressed: bool = False  # a public layer: features from 1..k-1 reports are hidden


LAYERS: Final[dict[str, LayerSpec]] = {
    spec.name: spec
    for spec in (
        LayerSpec(
            "grids",
            "Grids",
            "The grids of the boundary version in force (or on ?as_of=YYYY-MM-DD).",
            frozenset({"as_of"}),
            ("boundaries",),
            fields=AREA_FIELDS,
        ),
        LayerSpec(
            "areas",
            "Areas",
            "The areas of one level (?level=district|town|community|grid, default town) of "
            "the boundary version in force (or on ?as_of=).",
            frozenset({"as_of", "level"}),
            ("boundaries",),
            fields=AREA_FIELDS,
        ),
        LayerSpec(
            "reports",
            "Reports",
            "Reports: clusters (count per H3 cell, at its centre, clusters of fewer than k "
            "reports hidden; for callers without an operator, planner or admin key never "
            "finer than GEO_PRIVACY_PUBLIC_H3_RES, default 8) for everyone; single reports, "
            "without personal data, for operator, planner and admin keys from the configured "
            "zoom (default 14).",
            FILTER_PARAMS | {"k"},
            ("reports",),
            fields={
                "n": "Number: reports in the cluster's H3 cell (clusters)",
                "cell": "String: H3 cell of the cluster (clusters)",
                "id": "Number: report id (single reports)",
                "category": "String (single reports)",
                "channel": "String (single reports)",
                "status": "String (single reports)",
                "reported_at": "String: ISO time, Beijing (single reports)",
                "grid_code": "String (single reports)",
                "overdue": "Boolean (single reports)",
                "supervised": "Boolean (single reports)",
            },
            suppressed=True,
        ),
        LayerSpec(
            "heat",
            "Heat",
            "Reports per H3 cell, resolution from the zoom (<=8: 6, 9-10: 7, 11-12: 8, 13: 9, "
            "14: 10, >=15: 11; without an operator, planner or admin key at most "
            "GEO_PRIVACY_PUBLIC_H3_RES, default 8), or per area with ?level=; cells of fewer "
            "than k reports hidden, areas of fewer than k blanked (suppressed=true).",
            FILTER_PARAMS | {"k", "level", "as_of"},
            ("reports", "boundaries"),
            maxzoom=16,
            fields={
                "cell": "String: H3 cell",
                "n": "Number: reports",
                "per_household": "Number: reports per household (areas)",
                "suppressed": "Boolean: figures hidden, fewer than k reports (areas)",
                **{k: v for k, v in AREA_FIELDS.items() if k in ("code", "name", "level")},
            },
            suppressed=True,
        ),
        LayerSpec(
            "hotspots",
            "Hot spots",
            "Getis-Ord Gi* hot and cold spots (FDR-corrected classes) on H3 cells at the "
            "zoom's resolution (at most 10), or on areas with ?level=; same suppression as "
            "heat. Under 30 features the tile is empty and X-Tile-Note says why.",
            FILTER_PARAMS | {"k", "level", "as_of"},
            ("reports", "boundaries"),
            maxzoom=16,
            fields={
                "cell": "String: H3 cell",
                "n": "Number: reports",
                **STAT_FIELDS,
                "suppressed": "Boolean: figures hidden, fewer than k reports (areas)",
                **{k: v for k, v in AREA_FIELDS.items() if k in ("code", "name", "level")},
            },
            suppressed=True,
        ),
    )
}
AREA_LEVELS: Final = LEVELS
# the unit type that is an area's own unit, by level (its name goes into area features)
OWN_UNIT: Final = {
    "grid": "grid_team",
    "community": TERRITORIAL["community"],
    "town": TERRITORIAL["town"],
    "district": TERRITORIAL["county"],
}
DEFAULT_AREA_LEVEL: Final = "town"


def layer(name: str) -> LayerSpec:
    """The layer called ``name``, or a 404 listing the layers there are."""
    spec = LAYERS.get(name)
    if spec is None:
        raise NotFound(f"no tile layer {name!r}: layers are {', '.join(LAYERS)}")
    return spec
