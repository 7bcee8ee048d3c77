"""Operator map pages (folium/Leaflet and MapLibre GL JS) served with local assets only.

==========================  ==============================================================
``base.operator_map``       a folium Map wired to ``/static`` (reuse it for new pages)
``base.render_page``        its HTML, refusing any script or style sheet from another host
``base.heat_surface``       a Leaflet.heat layer loading the vendored plugin
``layers.geojson_layer``    an analysis frame as a layer with per-feature style and hover
``controls.Panel/Legend``   side panel (filters, links) and a legend per switched layer
``pages``                   the heat, hot spot and grid pages
``tiles_page``              the MapLibre page over ``/tiles/{layer}.json``
==========================  ==============================================================
"""
