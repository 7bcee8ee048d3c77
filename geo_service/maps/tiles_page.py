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
    ("heat", "热力（H3 六边形上报数）", ("heat",)),
    ("hotspots", "冷热点（Gi*）", ("hotspots",)),
    ("grids", "网格", ("grids", "grids-line")),
    ("communities", "村(社区)边界", ("communities",)),
    ("towns", "镇(街道)边界", ("towns",)),
    ("reports", "上报聚合点", ("reports",)),
)
HOVER: Final = (
    (
        "grids",
        (
            ("code", "网格编码"),
            ("name", "网格"),
            ("unit_name", "责任单位"),
            ("community_name", "村(社区)"),
            ("town_name", "镇(街道)"),
        ),
    ),
    ("heat", (("n", "上报数（热力格）"), ("cell", "H3 六边形"))),
    ("hotspots", (("class", "冷热点类别"), ("z", "Gi* z 值"), ("n", "上报数（六边形）"))),
    ("reports", (("n", "上报数（聚合点）"),)),
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
                "title": "H3 六边形上报数",
                "items": [
                    (c, f"{n}–{HEAT_STEPS[i + 1] - 1}" if i + 1 < len(HEAT_STEPS) else f"≥ {n}")
                    for i, (n, c) in enumerate(heat_steps)
                ],
            },
            {
                "layer": "hotspots",
                "title": "Gi* 冷热点",
                "items": [(CLASS_COLOURS[c], label) for c, label in CLASS_LABELS.items()],
            },
            {"layer": "reports", "title": "上报聚合点", "items": [("#6a1b9a", "上报")]},
        ],
        "hover": [{"layer": layer, "fields": list(fields)} for layer, fields in HOVER],
        "value_names": {"class": CLASS_LABELS},  # a code shown on hover → its Chinese name
    }


def tiles_page(q: MapQuery, bounds: Bounds, k: int, basemap: Basemap | None = None) -> str:
    """The whole HTML page; raises if it would load a remote script or style sheet."""
    note = (
        f"瓦片隐藏上报数为 1–{k - 1} 件的六边形（k = {k}）。"
        if k > 1
        else f"未做小数抑制（k = {k}）。"
    )
    panel = panel_html(
        "tiles",
        "矢量瓦片（MapLibre）",
        q,
        summary=["鼠标移到地图上，查看该处的网格、责任单位和计数。", note],
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
