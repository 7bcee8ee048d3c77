"""Private by default: what the public views show of where a report is and what it says.

The public views — Open311 ``GET requests``, the OGC ``reports`` collection and, through
:func:`finest_res`, the tiles, analysis layers and map pages — show a report's location as the
centre of its *coarse cell*: the H3 cell of resolution ``GEO_PRIVACY_PUBLIC_H3_RES`` (default 8,
~0.74 km², edges ~460 m) that is the parent of the report's stored resolution-11 cell. Its
address stops at the community (no grid name or code), a grid team handling it is named by its
kind only, and its description and photo are not shown. A bbox or circle filter matches such a
report by its cell's centre, never by its point, so narrowing a filter cannot find the point
either (:func:`resolve_cells`).

A report is shown exactly — its WGS84 point, grid, unit, description and first photo — to
operator, planner and admin keys; to a grid worker for the reports in its area and to a
reporter for its own (what ``/v1`` shows them); and to everyone when its category is one of
``GEO_PRIVACY_PUBLIC_CATEGORIES`` *and* staff marked the case public
(``POST /v1/reports/{id}/public``). No view ever carries personal data.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from h3.api import basic_int as h3i
from sqlalchemy import Connection

from geo_service.analytics import h3sql
from geo_service.auth import Principal
from geo_service.errors import Forbidden, Unauthorized
from geo_service.reports.taxonomy import UNIT_LEVEL, UNIT_TYPES
from geo_service.settings import PrivacySettings
from geo_service.store import reports as store
from geo_service.store.reports import RequestFilter

EXACT_ROLES: Final = frozenset({"operator", "planner", "admin"})
"""Roles that see every report exactly, and may ask the analysis layers for any resolution."""
CELL_REACH: Final = 3.0
"""A report lies within this many average edge lengths of its coarse cell's centre (a hexagon's
circumradius is one edge; H3's distortion and children spilling past their parent stay well
inside three)."""
EARTH_RADIUS_M: Final = 6_371_008.8


@dataclass(frozen=True)
class Viewer:
    """Who reads a public view, and the privacy settings it is read under."""

    principal: Principal | None
    res: int
    public_categories: frozenset[str]

    @classmethod
    def of(cls, principal: Principal | None, settings: PrivacySettings) -> Viewer:
        """The viewer ``principal`` (None: the public) under ``settings``."""
        return cls(principal, settings.public_h3_res, settings.category_set())

    @property
    def sees_all(self) -> bool:
        """Whether every report is shown exactly to this viewer."""
        return self.principal is not None and self.principal.role in EXACT_ROLES

    def apply(self, f: RequestFilter) -> RequestFilter:
        """``f`` read by this viewer (its coarse cells still to resolve)."""
        return dataclasses.replace(
            f,
            viewer=self.principal,
            exact_for_all=self.sees_all,
            public_categories=tuple(sorted(self.public_categories)),
            coarse_res=self.res,
            coarse_cells=None,
        )


@lru_cache(maxsize=65_536)
def centre(cell: int) -> tuple[float, float]:
    """The (lon, lat) of an H3 cell's centre."""
    lat, lon = h3i.cell_to_latlng(cell)
    return lon, lat


def coarse_cell(h3_11: int | None, lon: float, lat: float, res: int) -> int:
    """A report's coarse cell: the resolution-``res`` parent of its res-11 cell (computed from
    its point when the stored cell is missing), as SQL's ``h3_parent`` computes it."""
    cell = h3_11 if h3_11 is not None else int(h3sql.cells_of_points([lon], [lat])[0])
    return int(h3sql.parent([cell], res)[0])


def coarse_point(h3_11: int | None, lon: float, lat: float, res: int) -> tuple[float, float]:
    """Where the public view puts a report: its coarse cell's centre, (lon, lat)."""
    return centre(coarse_cell(h3_11, lon, lat, res))


def public_unit_name(unit_name: str | None, unit_type: str | None) -> str | None:
    """The unit as the public view names it: a grid-level unit (a grid team, named after its
    grid) by its kind only, any other by its name."""
    if unit_type is not None and UNIT_LEVEL.get(unit_type) == "grid":
        return UNIT_TYPES[unit_type]
    return unit_name


def _metres(lon0: float, lat0: float, lon1: float, lat1: float) -> float:
    """Great-circle distance in metres (haversine)."""
    p0, p1 = math.radians(lat0), math.radians(lat1)
    dp, dl = p1 - p0, math.radians(lon1 - lon0)
    a = math.sin(dp / 2) ** 2 + math.cos(p0) * math.cos(p1) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def _grown(box: tuple[float, float, float, float], metres: float) -> tuple[float, ...]:
    """``box`` grown by ``metres`` on every side (degrees, generous at its poleward edge)."""
    lat = min(max(abs(box[1]), abs(box[3])), 89.0)
    dy = metres / 111_000.0
    dx = dy / max(math.cos(math.radians(lat)), 0.01)
    return (
        max(box[0] - dx, -180.0),
        max(box[1] - dy, -90.0),
        min(box[2] + dx, 180.0),
        min(box[3] + dy, 90.0),
    )


def _matches(f: RequestFilter, lon: float, lat: float) -> bool:
    """Whether a cell centre matches ``f``'s bbox and circle."""
    if f.bbox is not None:
        x0, y0, x1, y1 = f.bbox
        if not (x0 <= lon <= x1 and y0 <= lat <= y1):
            return False
    if f.near is not None:
        x, y, r = f.near
        if _metres(x, y, lon, lat) > r:
            return False
    return True


def resolve_cells(conn: Connection, f: RequestFilter) -> RequestFilter:
    """``f`` with the coarse cells its bbox or circle matches (by their centres), for the rows
    the viewer sees coarsely; unchanged when there is no spatial filter or all rows are exact."""
    if f.exact_for_all or f.ids is not None or (f.bbox is None and f.near is None):
        return f
    if f.coarse_cells is not None:  # resolved already
        return f
    reach = CELL_REACH * h3sql.edge_m(f.coarse_res)
    if f.bbox is not None:
        box = _grown(f.bbox, reach)
    else:
        assert f.near is not None
        x, y, r = f.near
        box = _grown((x, y, x, y), r + reach)
    cells = store.candidate_cells(conn, f, (box[0], box[1], box[2], box[3]))
    kept = tuple(sorted(c for c in cells if _matches(f, *centre(c))))
    return dataclasses.replace(f, coarse_cells=kept)


def finest_res(who: Principal | None, settings: PrivacySettings) -> int:
    """The finest H3 resolution ``who`` may see a layer at: any for operator, planner and
    admin keys, the public resolution for everyone else."""
    return h3sql.MAX_RES if who is not None and who.role in EXACT_ROLES else settings.public_h3_res


def layer_res(
    res: int | None,
    zoom: float | None,
    who: Principal | None,
    settings: PrivacySettings,
    default: int,
) -> int:
    """The H3 resolution a layer is drawn at for ``who``: ``res`` as asked (401/403 when finer
    than ``who`` may see), else the one for ``zoom`` or ``default``, lowered to what ``who``
    may see."""
    check_res(res, who, settings)
    if res is not None:
        return res
    wanted = h3sql.res_for_zoom(zoom) if zoom is not None else default
    return min(wanted, finest_res(who, settings))


def check_res(res: int | None, who: Principal | None, settings: PrivacySettings) -> None:
    """401/403 when ``who`` asks for cells finer than the public resolution without an
    operator, planner or admin key."""
    cap = finest_res(who, settings)
    if res is None or res <= cap:
        return
    message = f"H3 resolution above {cap} needs an operator, planner or admin key"
    if who is None:
        raise Unauthorized(message)
    raise Forbidden(f"role {who.role!r} may not ask for {message.removeprefix('H3 ')}")

