"""The vector-tile page: MapLibre GL JS (vendored UMD build) drawing the service's own tile
layers through their TileJSON (``/tiles/{layer}.json``, source-layer = layer id).

The page carries no data: the browser fetches the tiles, which are suppressed like the public
API. The filters travel to the report-based layers (heat, hot spots, reports) as query
parameters; the boundary layers (grids, areas) take none.
"""

from __future__ import annotations

from typing import Any, Final

from geo_service.maps import html
from geo_service.maps.assets import LEAFLET_CSS, LEAFLET_JS, MAPLIBRE_CSS, MAPLIBRE_JS, own
from geo_service.maps.base import Basemap, Bounds, remote_assets
from geo_service.maps.layers import CLASS_COLOURS, CLASS_LABELS, COUNT_PALETTE
from geo_service.maps.panel import panel_html
from geo_service.maps.params import MapQuery

# reports per H3 cell at the zoom's resolution: lower bounds of the heat colour steps
HEAT_STEPS: Final = (1, 5, 10, 25, 50)
SWITCHER: Final = (
    ("heat", "Heat (reports per H3 cell)", ("heat",)),
    ("hotspots", "Hot spots (Gi*)", ("hotspots",)),
    ("grids", "Grids", ("grids", "grids-line")),
    ("communities", "Community boundaries", ("communities",)),
    ("towns", "Town boundaries", ("towns",)),
    ("reports", "Report clusters", ("reports",)),
)
HOVER: Final = (
    (
        "grids",
        (
            ("code", "Grid code"),
            ("name", "Grid"),
            ("unit_name", "Responsible unit"),
            ("community_name", "Community"),
            ("town_name", "Town"),
        ),
    ),
    ("heat", (("n", "Reports (heat cell)"), ("cell", "H3 cell"))),
    ("hotspots", (("class", "Hot spot class"), ("z", "Gi* z-score"), ("n", "Reports (cell)"))),
    ("reports", (("n", "Reports (cluster)"),)),
)


def _asset(pairs: list[tuple[str, str]], name: str) -> str:
    return dict(pairs)[name]


def page_config(q: MapQuery, bounds: Bounds, basemap: Basemap | None) -> dict[str, Any]:
    """What ``tiles.js`` draws: sources' filters, extent, switcher, legends, hover fields."""
    heat_steps = [(n, c) for n, c in zip(HEAT_STEPS, COUNT_PALETTE, strict=True)]
    return {
        "filters": q.params(with_res=False),
        "bounds": [[bounds[0], bounds[1]], [bounds[2], bounds[3]]],
        "basemap": {"url": basemap.url, "attribution": basemap.attribution} if basemap else None,
        "heat_steps": heat_steps,
        "classes": list(CLASS_COLOURS.items()),
        "switcher": [{"id": i, "title": t, "layers": list(ls)} for i, t, ls in SWITCHER],
        "legends": [
            {
                "layer": "heat",
                "title": "Reports per H3 cell",
                "items": [
                    (c, f"{n}–{HEAT_STEPS[i + 1] - 1}" if i + 1 < len(HEAT_STEPS) else f"≥ {n}")
                    for i, (n, c) in enumerate(heat_steps)
                ],
            },
            {
                "layer": "hotspots",
                "title": "Gi* hot spots",
                "items": [(CLASS_COLOURS[c], label) for c, label in CLASS_LABELS.items()],
            },
            {"layer": "reports", "title": "Report clusters", "items": [("#6a1b9a", "reports")]},
        ],
        "hover": [{"layer": layer, "fields": list(fields)} for layer, fields in HOVER],
    }


def tiles_page(q: MapQuery, bounds: Bounds, k: int, basemap: Basemap | None = None) -> str:
    """The whole HTML page; raises if it would load a remote script or style sheet."""
    note = (
        f"Tiles hide cells of 1–{k - 1} reports (k = {k})."
        if k > 1
        else f"No small-count suppression (k = {k})."
    )
    panel = panel_html(
        "tiles",
        "Vector tiles (MapLibre)",
        q,
        summary=["Hover the map for the grid, its unit and the counts under the pointer.", note],
    )
    page = html.render(
        "tiles.html",
        panel=panel,
        config=page_config(q, bounds, basemap),
        maplibre_js=MAPLIBRE_JS,
        maplibre_css=MAPLIBRE_CSS,
        maps_css=_asset(LEAFLET_CSS, "geomaps_css"),
        maps_js=_asset(LEAFLET_JS, "geomaps"),
        tiles_js=own("tiles.js"),
    )
    remote = remote_assets(page)
    if remote:
        raise RuntimeError(f"tiles page would load remote assets: {remote}")
    return page
