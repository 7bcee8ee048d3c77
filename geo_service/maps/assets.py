"""Browser assets of the operator maps, served by the service itself (never from a CDN).

Third-party files live in ``geo_service/static/vendor/<package>/<version>/`` as vendored by
``scripts/vendor_assets.py`` (pinned npm tarballs, sha256-checked, licences kept); ours in
``geo_service/static/maps/``. The app mounts the folder at :data:`STATIC_URL`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

STATIC_DIR: Final = Path(__file__).resolve().parent.parent / "static"
STATIC_URL: Final = "/static"

LEAFLET: Final = "leaflet/1.9.4"
LEAFLET_HEAT: Final = "leaflet.heat/0.2.0"
MAPLIBRE: Final = "maplibre-gl/5.24.1"


def vendor(path: str) -> str:
    """URL of a vendored file, e.g. ``vendor("leaflet/1.9.4/leaflet.js")``."""
    return f"{STATIC_URL}/vendor/{path}"


def own(path: str) -> str:
    """URL of one of our own map files (``static/maps/``)."""
    return f"{STATIC_URL}/maps/{path}"


# (name, url) pairs in folium's ``default_js`` / ``default_css`` form
LEAFLET_JS: Final = [("leaflet", vendor(f"{LEAFLET}/leaflet.js")), ("geomaps", own("maps.js"))]
LEAFLET_CSS: Final = [
    ("leaflet_css", vendor(f"{LEAFLET}/leaflet.css")),
    ("geomaps_css", own("maps.css")),
]
HEAT_JS: Final = [("leaflet.heat", vendor(f"{LEAFLET_HEAT}/leaflet-heat.js"))]
MAPLIBRE_JS: Final = vendor(f"{MAPLIBRE}/maplibre-gl.js")
MAPLIBRE_CSS: Final = vendor(f"{MAPLIBRE}/maplibre-gl.css")
