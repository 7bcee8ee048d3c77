"""Leaflet controls for folium pages: the side panel (title, navigation, filter form, notes)
and a legend that follows the layer switcher. Their HTML is rendered (escaped) by Jinja2."""

from __future__ import annotations

from collections.abc import Sequence

from branca.element import MacroElement
from folium.template import Template

from geo_service.maps import html
from geo_service.maps.layers import js_literal


class Panel(MacroElement):
    """Server-rendered HTML in a corner of the map (``GeoMaps.panel``)."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        GeoMaps.panel({{ this._parent.get_name() }}, {{ this.position|tojson }},
                      {{ this.markup_js }});
        {% endmacro %}
        """
    )

    def __init__(self, markup: str, position: str = "topleft") -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._name = "Panel"
        self.markup_js = js_literal(markup)
        self.position = position


class Legend(MacroElement):
    """One legend section per layer, shown while that layer is on the map. Add it after the
    layers and the LayerControl, so it sees which layers start shown."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        GeoMaps.legend({{ this._parent.get_name() }}, [
        {%- for layer, markup_js in this.sections %}
            {layer: {{ layer.get_name() }}, html: {{ markup_js }}},
        {%- endfor %}
        ]);
        {% endmacro %}
        """
    )

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._name = "Legend"
        self.sections: list[tuple[MacroElement, str]] = []

    def add(self, layer: MacroElement, title: str, items: Sequence[tuple[str, str]]) -> Legend:
        """A section for ``layer``: a title and (colour, label) rows."""
        markup = html.render("legend.html", title=title, items=items)
        self.sections.append((layer, js_literal(markup)))
        return self
