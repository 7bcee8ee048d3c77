"""The side panel every map page shares: title, links between the pages (keeping the filters)
and the filter form that reloads the page with new query parameters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from geo_service.maps import html
from geo_service.maps.params import MapQuery, form_time
from geo_service.reports.queries import STATUSES
from geo_service.reports.taxonomy import CATEGORIES, CHANNEL_NAMES, CHANNELS, STATUS_NAMES

PAGES: Final = (
    ("heat", "热力"),
    ("hotspots", "冷热点"),
    ("grids", "网格"),
    ("tiles", "矢量瓦片"),
)
# average H3 cell areas, for the resolution choice
RES_AREAS: Final = {6: "36 km²", 7: "5.2 km²", 8: "0.74 km²", 9: "0.11 km²"}
STATUS_CHOICES: Final = (
    ("open", "未结案（评价前各环节）"),
    ("closed", "已结案（已评价或不予立案）"),
    *((s, STATUS_NAMES[s]) for s in STATUSES),
)

Option = tuple[str, str, bool]  # value, text, selected


@dataclass(frozen=True)
class Choice:
    """A select of the form: ``name`` (query key), label, options."""

    name: str
    label: str
    options: list[Option]
    size: int = 4


@dataclass(frozen=True)
class Form:
    """What the filter form shows: times, multi-selects, single selects, hidden fields."""

    since: str
    until: str
    choices: list[Choice]
    singles: list[Choice] = field(default_factory=list)
    hidden: list[tuple[str, str]] = field(default_factory=list)


def _options(pairs: Sequence[tuple[str, str]], chosen: Sequence[str]) -> list[Option]:
    return [(value, text, value in chosen) for value, text in pairs]


def res_choice(res: int, choices: Sequence[int]) -> Choice:
    """The H3 resolution select."""
    pairs = [(str(r), f"{r}（每格约 {RES_AREAS[r]}）") for r in choices]
    return Choice("res", "H3 分辨率", _options(pairs, [str(res)]), 1)


def filter_form(q: MapQuery, singles: Sequence[Choice] = ()) -> Form:
    """The form for ``q``: every category, channel and status, ``q``'s picks selected."""
    categories = [(c.code, c.name) for c in CATEGORIES]
    channels = [(c, CHANNEL_NAMES[c]) for c in CHANNELS]
    return Form(
        since=form_time(q.since),
        until=form_time(q.until),
        choices=[
            Choice("category", "类别", _options(categories, q.categories), 5),
            Choice("channel", "渠道", _options(channels, q.channels)),
            Choice("status", "状态", _options(STATUS_CHOICES, q.statuses), 5),
        ],
        singles=list(singles),
        hidden=[(n, str(v)) for n, v in (("area", q.area), ("k", q.k)) if v is not None],
    )


def panel_html(
    page: str,
    title: str,
    q: MapQuery,
    *,
    summary: Sequence[str] = (),
    notices: Sequence[str] = (),
    singles: Sequence[Choice] = (),
) -> str:
    """The panel's HTML (escaped); links are relative, so the pages work under any prefix."""
    nav = [
        {"href": name + q.query_string(with_res=False), "label": label, "current": name == page}
        for name, label in PAGES
    ]
    return html.render(
        "panel.html",
        title=title,
        nav=nav,
        action=page,
        form=filter_form(q, singles),
        summary=summary,
        notices=notices,
    )
