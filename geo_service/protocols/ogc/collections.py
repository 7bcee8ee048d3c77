"""The collections ``/ogc`` offers: one per area level of the boundary version in force, and
the reports as the Open311 public view shows them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from geo_service.errors import NotFound


@dataclass(frozen=True)
class Collection:
    """One feature collection: its id, words about it, and the area level it holds (None for
    the reports)."""

    id: str
    title: str
    description: str
    level: str | None

    @property
    def is_areas(self) -> bool:
        return self.level is not None


_VERSION_NOTE = (
    " Areas of the boundary version in force today; datetime=YYYY-MM-DD gives the version "
    "in force on that day."
)
COLLECTIONS: Final[dict[str, Collection]] = {
    c.id: c
    for c in (
        Collection(
            "grids",
            "Grids",
            "Grid-governance grids (网格): code, name, district/town/community chain, "
            "households, population and the grid team." + _VERSION_NOTE,
            "grid",
        ),
        Collection(
            "communities",
            "Communities",
            "Communities and villages (村/社区)." + _VERSION_NOTE,
            "community",
        ),
        Collection("towns", "Towns", "Towns and subdistricts (镇/街道)." + _VERSION_NOTE, "town"),
        Collection("districts", "Districts", "Districts (区/县)." + _VERSION_NOTE, "district"),
        Collection(
            "reports",
            "Reports",
            "Reported incidents as the Open311 view shows them, private by default: category, "
            "status, times, community and the centre of the report's coarse H3 cell; the exact "
            "WGS84 point, grid, unit, description and photo only for cases staff made public "
            "and for keys that may see them. Never the reporter's name or phone. datetime "
            "filters on the time reported.",
            None,
        ),
    )
}


def collection(collection_id: str) -> Collection:
    """The collection ``collection_id``, or a 404 listing the ones there are."""
    found = COLLECTIONS.get(collection_id)
    if found is None:
        raise NotFound(
            f"no collection {collection_id!r}: collections are {', '.join(COLLECTIONS)}"
        )
    return found
