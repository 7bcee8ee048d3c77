"""Point → grid location: the compiled cell index and the Locator routing code calls."""

from geo_service.locator.index import GridIndex
from geo_service.locator.locator import LocateResult, Locator, VersionInfo

__all__ = ["GridIndex", "LocateResult", "Locator", "VersionInfo"]
