"""The HTML of ``/planner``: a Jinja2 (autoescaping) template filled with the signed-in user,
the CSRF token, the local asset URLs and the extent to open on; the page's JavaScript
(``static/planner/planner.js``) does the rest through the JSON API."""

from __future__ import annotations

from functools import cache
from typing import Any, Final

from jinja2 import Environment, PackageLoader, select_autoescape

from geo_service.maps.assets import MAPLIBRE_CSS, MAPLIBRE_JS, STATIC_URL, vendor

TERRA_DRAW: Final = "terra-draw/1.35.0"
TERRA_DRAW_ADAPTER: Final = "terra-draw-maplibre-gl-adapter/1.4.1"
ROLE_NAMES: Final = {"planner": "网格规划员", "admin": "系统管理员", "operator": "指挥中心值班员"}


@cache
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("geo_service.planner", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def planner_page(
    *, username: str, role: str, csrf: str, extent: tuple[float, float, float, float] | None,
    can_edit: bool,
) -> str:
    """The workbench page for ``username`` (role ``role``); ``extent`` (lon/lat box of the
    version in force) is where the map opens; ``can_edit`` whether the draft API will take the
    user's edits (planners), else the page is read-only."""
    config: dict[str, Any] = {"extent": extent, "can_edit": can_edit}
    return _environment().get_template("planner.html").render(
        username=username,
        role=ROLE_NAMES.get(role, role),
        csrf=csrf,
        config=config,
        maplibre_js=MAPLIBRE_JS,
        maplibre_css=MAPLIBRE_CSS,
        terra_draw_js=vendor(f"{TERRA_DRAW}/terra-draw.umd.js"),
        adapter_js=vendor(f"{TERRA_DRAW_ADAPTER}/terra-draw-maplibre-gl-adapter.umd.js"),
        planner_js=f"{STATIC_URL}/planner/planner.js",
        planner_css=f"{STATIC_URL}/planner/planner.css",
    )
