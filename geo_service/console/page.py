"""The console page: one HTML shell (Jinja2, autoescaped) carrying the signed-in user's CSRF
token, the dictionary of the chosen language and what the script needs to know (the actions
the user's role may take from each status, the colours, the poll interval); all data comes
afterwards from the API, so the shell paints at once.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Final

from jinja2 import Environment, PackageLoader, select_autoescape

from geo_service.auth import Principal
from geo_service.console.i18n import HTML_LANG, TEXT, Lang, bundle, text
from geo_service.db.schema import CLOSED_STATUSES, REPORT_STATUSES
from geo_service.maps.assets import MAPLIBRE_CSS, MAPLIBRE_JS, STATIC_URL, vendor
from geo_service.maps.base import remote_assets
from geo_service.maps.layers import CLASS_COLOURS, js_json
from geo_service.reports.workflow import ROLES_OF, TRANSITIONS

ECHARTS: Final = "echarts/5.6.0"
ECHARTS_JS: Final = vendor(f"{ECHARTS}/echarts.min.js")
POLL_MS: Final = 2000  # the live poll: a filed report shows within 5 s
SLOW_LAYERS_MS: Final = 300_000  # hot spots and emerging hot spots: re-read every 5 minutes
CASE_ACTIONS: Final = ("reassign", "supervise", "escalate")  # beside the loop's own moves
# reports per H3 cell (resolution 8, a period): lower bounds of the heat colours, dark theme
HEAT_STEPS: Final = ((1, "#1d4e89"), (3, "#2c7fb8"), (6, "#41b6c4"), (12, "#f6d55c"),
                     (25, "#f28c28"), (50, "#e8413c"))  # fmt: skip
EMERGING_COLOURS: Final = {
    "new_hot_spot": "#ff4fd8",
    "consecutive_hot_spot": "#ff7b7b",
    "intensifying_hot_spot": "#ff2a2a",
    "persistent_hot_spot": "#c81d25",
    "diminishing_hot_spot": "#f4a259",
    "sporadic_hot_spot": "#f7d08a",
    "oscillating_hot_spot": "#d68fd6",
    "historical_hot_spot": "#a0522d",
    "new_cold_spot": "#7fdbff",
    "consecutive_cold_spot": "#5fa8ff",
    "intensifying_cold_spot": "#1f6fff",
    "persistent_cold_spot": "#1a3fb0",
    "diminishing_cold_spot": "#8ecae6",
    "sporadic_cold_spot": "#b8e0f6",
    "oscillating_cold_spot": "#9d8df1",
    "historical_cold_spot": "#4a6fa5",
}


@cache
def environment() -> Environment:
    """The console's templates (``geo_service/console/templates``), HTML-escaped."""
    return Environment(
        loader=PackageLoader("geo_service.console", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def actions_for(role: str) -> dict[str, list[dict[str, str]]]:
    """Per status, the moves ``role`` may make from it: ``{"action", "to"}`` for the loop's
    transitions, ``{"action"}`` alone for reassign, supervise and escalate (open cases)."""
    out: dict[str, list[dict[str, str]]] = {}
    for status in REPORT_STATUSES:
        moves = [
            {"action": action, "to": target}
            for target, action in TRANSITIONS[status].items()
            if role in ROLES_OF[action] or role == "admin"
        ]
        if status not in CLOSED_STATUSES:
            moves += [{"action": a} for a in CASE_ACTIONS if role in ROLES_OF[a]]
        out[status] = moves
    return out


def page_config(lang: Lang, who: Principal, k_public: int) -> dict[str, Any]:
    """What ``console.js`` needs besides the API: language, labels, role, colours, timings."""
    return {
        "lang": lang,
        "i18n": bundle(lang),
        "user": {"name": who.username or "", "role": who.role},
        "actions": actions_for(who.role),
        "k": 0,  # staff see every count (the public layers hide 1..k_public-1)
        "k_public": k_public,
        "poll_ms": POLL_MS,
        "slow_ms": SLOW_LAYERS_MS,
        "heat_steps": HEAT_STEPS,
        "classes": CLASS_COLOURS,
        "emerging_colours": EMERGING_COLOURS,
    }


def console_page(lang: Lang, csrf: str, who: Principal, k_public: int) -> str:
    """The whole page; raises if it would load anything from another host."""
    config = page_config(lang, who, k_public)
    page = (
        environment()
        .get_template("console.html")
        .render(
            html_lang=HTML_LANG[lang],
            lang=lang,
            t=lambda key: text(key, lang),
            csrf=csrf,
            user=who.username or "",
            role=text(f"role_{who.role}", lang) if f"role_{who.role}" in TEXT else who.role,
            other_lang="en" if lang == "zh" else "zh",
            config=js_json(config),
            maplibre_js=MAPLIBRE_JS,
            maplibre_css=MAPLIBRE_CSS,
            echarts_js=ECHARTS_JS,
            console_js=f"{STATIC_URL}/console/console.js",
            console_css=f"{STATIC_URL}/console/console.css",
        )
    )
    remote = remote_assets(page)
    if remote:
        raise RuntimeError(f"console page would load remote assets: {remote}")
    return page
