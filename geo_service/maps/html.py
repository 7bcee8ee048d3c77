"""Jinja2 (autoescaping) templates of the map pages' own HTML: panel, legend, MapLibre page."""

from __future__ import annotations

from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape


@cache
def environment() -> Environment:
    """The templates in ``geo_service/maps/templates``, HTML-escaped by default."""
    return Environment(
        loader=PackageLoader("geo_service.maps", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(name: str, **context: Any) -> str:
    """Render one template with ``context``."""
    return environment().get_template(name).render(**context)
