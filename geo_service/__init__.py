"""geo_service: the spatial core of a grid-governance command centre.

Public API: :class:`Locator` (point → grid, for routing code) and :func:`create_app`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Locator", "__version__", "create_app"]

if TYPE_CHECKING:
    from geo_service.app import create_app
    from geo_service.locator import Locator


def __getattr__(name: str) -> Any:
    """Import the heavy parts on first use, so ``import geo_service`` stays cheap."""
    if name == "Locator":
        from geo_service.locator import Locator

        return Locator
    if name == "create_app":
        from geo_service.app import create_app

        return create_app
    raise AttributeError(name)
