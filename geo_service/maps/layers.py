"""Analysis frames as folium layers: per-feature style, hover details, and colour classes.

A layer's GeoJSON comes from :func:`geo_service.analytics.geojson.feature_collection` (the
same serialisation as the API), trimmed to the columns the hover shows; each feature carries
its own ``style`` so the page needs no per-feature style switch.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, Final

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import orjson
import shapely
from folium.map import Layer
from folium.template import Template

from geo_service.analytics.geojson import feature_collection
from geo_service.analytics.hotspots import CLASS_NAMES

Style = dict[str, Any]
Fields = Sequence[tuple[str, str]]  # (property, label shown on hover)

DISPLAY_DECIMALS: Final = 6
_JINJA_OPEN: Final = re.compile(r"\{(?=[{%#])")

COUNT_PALETTE: Final = ("#ffffb2", "#fecc5c", "#fd8d3c", "#f03b20", "#bd0026")  # YlOrRd
ZERO_COLOUR: Final = "#f4f4f4"
SUPPRESSED_COLOUR: Final = "#9e9e9e"
# Esri's hot spot (Gi_Bin) colours
CLASS_COLOURS: Final = {
    "hot_99": "#d62f27",
    "hot_95": "#ed7551",
    "hot_90": "#fab984",
    "not_significant": "#f7f7f2",
    "cold_90": "#c0ccbe",
    "cold_95": "#849eba",
    "cold_99": "#4575b5",
}
CLASS_LABELS: Final = CLASS_NAMES


def js_json(value: Any) -> str:
    """``value`` as a JavaScript literal that is safe inside a ``<script>`` element."""
    return json.dumps(value, ensure_ascii=False).replace("<", "\\u003c")


def fill(colour: str, opacity: float = 0.7, line: str = "#555555", weight: float = 0.6) -> Style:
    """A polygon style: fill colour and opacity, thin outline."""
    return {
        "fillColor": colour,
        "fillOpacity": opacity,
        "color": line,
        "weight": weight,
        "opacity": 0.8,
    }


def outline(colour: str, weight: float) -> Style:
    """A boundary drawn as a line only (still hoverable along its edge)."""
    return {"fill": False, "color": colour, "weight": weight, "opacity": 0.9}


def count_breaks(counts: npt.ArrayLike, classes: int = len(COUNT_PALETTE)) -> list[int]:
    """Upper bounds of up to ``classes`` quantile classes of the positive counts."""
    values = np.asarray(counts, dtype=np.float64)
    positive = values[np.isfinite(values) & (values > 0)]
    if positive.size == 0:
        return []
    qs = np.quantile(positive, np.linspace(0, 1, classes + 1)[1:])
    return [int(b) for b in np.unique(np.ceil(qs))]


def palette(n: int) -> list[str]:
    """``n`` colours spread over the count palette, light to dark."""
    if n <= 0:
        return []
    picks = np.linspace(0, len(COUNT_PALETTE) - 1, n).round().astype(int)
    return [COUNT_PALETTE[i] for i in picks]


def count_legend(breaks: list[int], low: int = 1) -> list[tuple[str, str]]:
    """Legend rows (colour, "a–b") of the classes ``breaks`` make, from ``low`` up."""
    rows = []
    for colour, upper in zip(palette(len(breaks)), breaks, strict=True):
        rows.append((colour, f"{low}" if low >= upper else f"{low}–{upper}"))
        low = upper + 1
    return rows


def count_styles(
    counts: Sequence[Any], breaks: list[int], suppressed: Sequence[bool] | None = None
) -> list[Style]:
    """Choropleth styles: classed colour, pale for zero, grey for suppressed figures."""
    colours = palette(len(breaks))
    hidden = suppressed if suppressed is not None else [False] * len(counts)
    out = []
    for n, h in zip(counts, hidden, strict=True):
        if h:
            out.append(fill(SUPPRESSED_COLOUR, 0.5))
        elif n is None or n <= 0 or not breaks:
            out.append(fill(ZERO_COLOUR, 0.15, line="#8a8a8a", weight=0.4))
        else:
            i = int(np.searchsorted(np.asarray(breaks), n, side="left"))
            out.append(fill(colours[min(i, len(colours) - 1)]))
    return out


def class_styles(classes: Sequence[str | None]) -> list[Style]:
    """Hot spot styles by class (grey where the figures are suppressed)."""
    return [
        fill(CLASS_COLOURS[c], 0.75 if c != "not_significant" else 0.35)
        if c in CLASS_COLOURS
        else fill(SUPPRESSED_COLOUR, 0.5)
        for c in classes
    ]


def js_literal(value: Any) -> str:
    """``value`` as JSON for a folium script. branca compiles rendered scripts as Jinja
    templates again, so a ``{`` that would open a Jinja tag (``{{``, ``{%``, ``{#``) is
    escaped; in compact JSON such a ``{`` can only be inside a string, where that is valid."""
    return _JINJA_OPEN.sub(r"\\u007b", js_json(value))


class GeoJsonData(Layer):
    """A Leaflet GeoJSON layer whose data sits in a ``<script type="application/json">``
    element of the page (added by :func:`geo_service.maps.base.render_page`), not in the
    script: large layers then cost no template work, and no feature text is ever read as a
    template. Each feature's ``properties.style`` is its style; ``fields`` drive the hover."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = GeoMaps.geojson({{ this.data_id|tojson }},
            {{ this.fields_js }}, {{ this.interactive|tojson }});
        {% endmacro %}
        """
    )

    def __init__(
        self,
        data_json: str,
        name: str,
        fields: Fields | None,
        *,
        overlay: bool = False,
        show: bool = True,
        interactive: bool = True,
    ) -> None:
        super().__init__(name=name, overlay=overlay, show=show)
        self._name = "GeoJsonData"
        self.data_json = data_json
        self.data_id = f"gs-data-{self.get_name()}"
        pairs = [[c for c, _ in fields], [a for _, a in fields]] if fields else None
        self.fields_js = js_literal(pairs)
        self.interactive = interactive


def _collection_json(
    frame: gpd.GeoDataFrame, columns: list[str], styles: Sequence[Style], id_column: str | None
) -> str:
    """The frame's FeatureCollection (``columns`` and ``style`` as properties, coordinates
    to 1e-6°, about 0.1 m) as JSON that is safe inside a ``<script>`` element."""
    geoms = shapely.transform(
        np.asarray(frame.geometry.values), lambda xy: np.round(xy, DISPLAY_DECIMALS)
    )
    sub = gpd.GeoDataFrame(frame[columns].copy(), geometry=list(geoms), crs=frame.crs)
    sub["style"] = list(styles)
    collection = feature_collection(sub, id_column)
    collection.pop("analysis", None)
    # "<" only occurs inside JSON strings, where its escape means the same
    return orjson.dumps(collection).decode().replace("<", "\\u003c")


def geojson_layer(
    frame: gpd.GeoDataFrame,
    *,
    name: str,
    fields: Fields,
    styles: Sequence[Style],
    id_column: str | None = None,
    overlay: bool = False,
    show: bool = True,
) -> GeoJsonData:
    """A layer of ``frame`` with the hover showing ``fields`` (suppressed figures say so);
    ``overlay`` False makes it one of the map's exclusive (radio) layers."""
    columns = [c for c, _ in fields]
    if "suppressed" in frame.columns and "suppressed" not in columns:
        columns.append("suppressed")
    data = _collection_json(frame, columns, styles, id_column)
    return GeoJsonData(data, name, fields, overlay=overlay, show=show)


def boundary_layer(frame: gpd.GeoDataFrame, name: str, style: Style) -> GeoJsonData:
    """An overlay of area outlines, not interactive: the areas below keep the hover."""
    data = _collection_json(frame, [], [style] * len(frame), None)
    return GeoJsonData(data, name, None, overlay=True, interactive=False)
