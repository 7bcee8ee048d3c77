"""A folium Map wired to the service's own assets, and its rendering with a no-CDN check.

Reusable by every operator or planner page: :func:`operator_map` gives a map that loads Leaflet
and our helpers from ``/static`` and draws no remote base map unless one is configured
(``GEO_MAPS_BASEMAP_URL``, an internal tile server); :func:`render_page` refuses HTML that
would still fetch a script or style sheet from another host.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import folium
from branca.element import Element
from folium.plugins import HeatMap

from geo_service.maps.assets import HEAT_JS, LEAFLET_CSS, LEAFLET_JS
from geo_service.maps.layers import GeoJsonData

Bounds = tuple[float, float, float, float]  # min lon, min lat, max lon, max lat

_REMOTE = re.compile(
    r"<(?:script|link)\b[^>]*\b(?:src|href)\s*=\s*[\"']?(?:[a-z][a-z0-9+.-]*:)?//", re.I
)


@dataclass(frozen=True)
class Basemap:
    """A raster base map from a tile server the operators' network reaches (XYZ template)."""

    url: str
    attribution: str = ""


def operator_map(
    bounds: Bounds | None = None, *, basemap: Basemap | None = None, title: str = "", **kw: Any
) -> folium.Map:
    """An empty folium Map loading only local assets, fitted to ``bounds`` (lon/lat)."""
    centre = None
    if bounds is not None:
        centre = [(bounds[1] + bounds[3]) / 2, (bounds[0] + bounds[2]) / 2]
    m = folium.Map(location=centre, tiles=None, control_scale=True, zoom_start=11, **kw)
    # instance lists: folium's class-level lists name CDN URLs and are shared by every map
    m.default_js = list(LEAFLET_JS)
    m.default_css = list(LEAFLET_CSS)
    if basemap is not None:
        folium.TileLayer(
            tiles=basemap.url, attr=basemap.attribution or " ", control=False, max_zoom=19
        ).add_to(m)
    if bounds is not None:
        m.fit_bounds([[bounds[1], bounds[0]], [bounds[3], bounds[2]]])
    root: Any = m.get_root()  # a branca Figure
    root.header.add_child(folium.Element('<link rel="icon" href="data:,">'), name="favicon")
    if title:
        root.title = title
    return m


def heat_surface(
    points: Sequence[tuple[float, float, float]], name: str, *, show: bool = False
) -> HeatMap:
    """A Leaflet.heat layer of (lat, lon, weight in 0..1) points, loading the vendored plugin."""
    layer = HeatMap(  # type: ignore[no-untyped-call]
        [list(p) for p in points], name=name, show=show, radius=18, blur=14, min_opacity=0.3
    )
    layer.default_js = list(HEAT_JS)
    return layer


def remote_assets(html: str) -> list[str]:
    """The ``<script src>`` / ``<link href>`` tags of ``html`` that point at another host."""
    return [m.group(0) for m in _REMOTE.finditer(html)]


def _data_layers(element: Element) -> list[GeoJsonData]:
    found = [element] if isinstance(element, GeoJsonData) else []
    for child in element._children.values():
        found += _data_layers(child)
    return found


def render_page(m: folium.Map) -> str:
    """The map's whole HTML page (``lang="zh-CN"``: the pages speak Chinese), with the data of
    its :class:`GeoJsonData` layers as JSON elements in the head; raises if any script or
    style sheet is not local."""
    page = str(m.get_root().render()).replace("<html>", '<html lang="zh-CN">', 1)
    remote = remote_assets(page)
    if remote:
        raise RuntimeError(f"map page would load remote assets: {remote}")
    blobs = "".join(
        f'<script type="application/json" id="{layer.data_id}">{layer.data_json}</script>\n'
        for layer in _data_layers(m)
    )
    head_end = page.index("</head>")  # the figure's own: no data is in the page yet
    return page[:head_end] + blobs + page[head_end:]
