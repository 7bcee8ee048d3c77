"""The answers of ``/v1/locate``, shaped from per-version parts, and its fast path.

Why: one point's answer used to rebuild per request what only changes with the boundary
version (every grid's code and name read out of the frame, its chain and attributes through
pandas, the version's description): that, not locating, was most of a request. Those parts
are now built once per Locator (so per version: a publish brings a new Locator) and per grid,
on first use, and shared read-only by every answer.

:class:`LocateFastPath` answers a plain ``GET /v1/locate?lon=…&lat=…[&crs=…][&as_of=…]``
before routing, with the answer (bytes and headers) the route gives; anything it does not
recognise, and every refusal, goes on to the route, which stays the one place that words
errors. It only skips work, never a rule: the same functions shape both answers.
"""

from __future__ import annotations

import math
import re
import weakref
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from geo_service.api.deps import get_locators, get_settings
from geo_service.api.responses import JSONBytes
from geo_service.boundaries.versions import parse_date
from geo_service.coords import normalize_crs
from geo_service.errors import GeoServiceError
from geo_service.locator import LocateResult, Locator
from geo_service.locator.locator import CHAIN_LEVELS

OUTSIDE_NEAREST_M: Final = 2_000.0
_ATTRIBUTES: Final = ("households", "population", "grid_worker", "grid_leader")
_OUTSIDE: Final = "outside coverage: no grid covers this point"
_AS_GIVEN: Final = frozenset({"wgs84", "cgcs2000"})  # coordinates to_wgs84 keeps as they are


@dataclass(eq=False)
class VersionParts:
    """What every answer of one Locator (one boundary version) shares: the version, grid
    codes and names, the grid frame's columns an answer reads (as Python lists, read once),
    and per grid, on first use, its brief and full description and its code chain. Shared by
    answers: never mutate what it hands out."""

    version: dict[str, Any]
    codes: npt.NDArray[np.object_]
    names: npt.NDArray[np.object_]
    columns: dict[str, list[Any]]
    _brief: dict[int, dict[str, Any]] = field(default_factory=dict)
    _full: dict[int, dict[str, Any]] = field(default_factory=dict)
    _chain: dict[int, list[dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def of(cls, loc: Locator) -> VersionParts:
        """The parts of ``loc``, built once per Locator (and dropped with it)."""
        parts = _PARTS.get(loc)
        if parts is None:
            grids = loc.grids
            wanted = [*_ATTRIBUTES]
            for level in CHAIN_LEVELS:
                wanted += [f"{level}_code", f"{level}_name"]
            parts = cls(
                loc.version.as_dict(),
                np.asarray(grids["code"].to_numpy(), dtype=object),
                np.asarray(grids["name"].to_numpy(), dtype=object),
                {c: grids[c].astype(object).tolist() for c in wanted if c in grids.columns},
            )
            _PARTS[loc] = parts
        return parts

    def brief(self, g: int) -> dict[str, Any]:
        """``{"code", "name"}`` of grid ``g`` (a runner-up, a nearest grid, a batch answer)."""
        out = self._brief.get(g)
        if out is None:
            out = self._brief[g] = {"code": self.codes[g], "name": self.names[g]}
        return out

    def full(self, g: int) -> dict[str, Any]:
        """Grid ``g`` as a one-point answer names it: code, name, and those of households,
        population, grid worker and leader it has (not None, not NaN)."""
        out = self._full.get(g)
        if out is None:
            out = dict(self.brief(g))
            for key in _ATTRIBUTES:
                value = self.columns[key][g] if key in self.columns else None
                if value is not None and value == value:  # NaN: not known
                    out[key] = value.item() if hasattr(value, "item") else value
            self._full[g] = out
        return out

    def chain(self, g: int) -> list[dict[str, Any]]:
        """The code chain district → grid of grid ``g``, as :meth:`Locator.chain` says it."""
        out = self._chain.get(g)
        if out is None:
            out = []
            for level in CHAIN_LEVELS:
                codes = self.columns.get(f"{level}_code")
                code = codes[g] if codes is not None else None
                if isinstance(code, str) and code:
                    name = self.columns[f"{level}_name"][g]
                    out.append({"level": level, "code": code, "name": name})
            out.append({"level": "grid", "code": self.codes[g], "name": self.names[g]})
            self._chain[g] = out
        return out


_PARTS: weakref.WeakKeyDictionary[Locator, VersionParts] = weakref.WeakKeyDictionary()


def _shape(
    parts: VersionParts,
    g: int,
    lon: float,
    lat: float,
    own_m: float,
    near: int,
    near_m: float,
    chain: bool,
    grid: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One point's answer: its grid ``g`` (``grid`` or the brief one), ``own_m`` metres from
    the grid's boundary and runner-up ``near`` at ``near_m``; outside coverage (``g`` -1) the
    nearest grid ``near`` at ``near_m`` (-1: none within reach)."""
    point = {"lon": lon, "lat": lat}
    if g < 0:
        answer: dict[str, Any] = {"point": point, "grid": None, "reason": _OUTSIDE, "nearest": None}
        if near >= 0:
            answer["nearest"] = {**parts.brief(near), "distance_m": round(near_m, 2)}
            answer["reason"] = (
                f"{_OUTSIDE}; nearest grid {parts.codes[near]} is {near_m:.0f} m away"
            )
        return answer
    answer = {
        "point": point,
        "grid": grid or parts.brief(g),
        "boundary_distance_m": round(own_m, 2),
        "runner_up": None,
    }
    if chain:
        answer["chain"] = parts.chain(g)
    if near >= 0:
        answer["runner_up"] = {**parts.brief(near), "distance_m": round(near_m, 2)}
    return answer


def answers(loc: Locator, res: LocateResult, within_m: float, chain: bool) -> list[dict[str, Any]]:
    """One JSON-ready answer per point, in input order (``POST /v1/locate``)."""
    parts = VersionParts.of(loc)
    gi = res.grid_index
    dist = res.boundary_distance_m().tolist()
    runner, runner_d = loc.neighbours_within(gi, res.lons, res.lats, within_m)
    runner_l, runner_dl = runner.tolist(), runner_d.tolist()
    outside = np.flatnonzero(gi < 0)
    near, near_d = loc.neighbours_within(
        gi[outside], res.lons[outside], res.lats[outside], OUTSIDE_NEAREST_M
    )
    nearest = dict(
        zip(outside.tolist(), zip(near.tolist(), near_d.tolist(), strict=True), strict=True)
    )
    lons, lats = res.lons.tolist(), res.lats.tolist()
    out: list[dict[str, Any]] = []
    for i, g in enumerate(gi.tolist()):
        if g < 0:
            n, d = nearest[i]
            out.append(_shape(parts, g, lons[i], lats[i], math.nan, n, d, chain))
        else:
            out.append(
                _shape(parts, g, lons[i], lats[i], dist[i], runner_l[i], runner_dl[i], chain)
            )
    return out


def one_answer(loc: Locator, lon: float, lat: float, crs: str, within_m: float) -> dict[str, Any]:
    """The answer of ``GET /v1/locate``: the point's answer with the grid's attributes and
    chain, the query echoed and the version (one point: :meth:`Locator.point_details`, the
    bulk metric calls' one-point twin)."""
    parts = VersionParts.of(loc)
    if normalize_crs(crs) in _AS_GIVEN and abs(lon) <= 180.0 and abs(lat) <= 90.0:
        # to_wgs84's answer for these (taken as given, after the same range check), without
        # its arrays: on one point they cost more than the locating
        x, y = lon, lat
        g = int(loc.index.locate(np.array([x]), np.array([y]))[0])
    else:  # converted, or refused with to_wgs84's words
        res = loc.locate([lon], [lat], crs=crs)
        g = int(res.grid_index[0])
        x, y = float(res.lons[0]), float(res.lats[0])
    own_m, near, near_m = loc.point_details(g, x, y, within_m if g >= 0 else OUTSIDE_NEAREST_M)
    grid = parts.full(g) if g >= 0 else None
    answer = _shape(parts, g, x, y, own_m, near, near_m, True, grid)
    answer["query"] = {"lon": lon, "lat": lat, "crs": crs}
    answer["version"] = parts.version
    return answer


# --- the fast path ----------------------------------------------------------------------------

_PATH: Final = "/v1/locate"
# what the fast path takes as it is; anything else (escapes, exponents, other keys, repeats)
# goes to the route, whose parsing is the reference
_NUMBER: Final = re.compile(r"-?[0-9]{1,3}(?:\.[0-9]{1,20})?")
_WORD: Final = re.compile(r"[A-Za-z0-9:]{1,24}")
_DAY: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_KEYS: Final = {"lon": _NUMBER, "lat": _NUMBER, "crs": _WORD, "as_of": _DAY}


def plain_query(query_string: bytes) -> dict[str, str] | None:
    """``lon``, ``lat`` and optional ``crs``, ``as_of`` of a query string written plainly
    (no escapes, no other or repeated keys, numbers as digits), else None."""
    if b"%" in query_string or b"+" in query_string:
        return None
    out: dict[str, str] = {}
    for part in query_string.decode("latin-1").split("&"):
        key, eq, value = part.partition("=")
        pattern = _KEYS.get(key)
        if not eq or pattern is None or key in out or not pattern.fullmatch(value):
            return None
        out[key] = value
    if "lon" not in out or "lat" not in out:
        return None
    return out


class LocateFastPath:
    """Answer plain ``GET /v1/locate`` requests without routing (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == _PATH and scope["method"] == "GET":
            query = plain_query(scope["query_string"])
            if query is not None:
                response = await self._answer(scope, query)
                if response is not None:
                    headers = response.raw_headers
                    await send({"type": "http.response.start", "status": 200, "headers": headers})
                    await send({"type": "http.response.body", "body": response.body})
                    return
        await self.app(scope, receive, send)

    @staticmethod
    async def _answer(scope: Scope, query: dict[str, str]) -> JSONBytes | None:
        """The route's 200 answer to ``query``; None when the route should answer instead
        (every refusal: the route words it)."""
        lon, lat = float(query["lon"]), float(query["lat"])
        request = Request(scope)
        try:
            settings = get_settings(request)
            loc = await get_locators(request).get(parse_date(query.get("as_of")))
            answer = one_answer(
                loc, lon, lat, query.get("crs", "wgs84"), settings.locate.runner_up_within_m
            )
        except GeoServiceError:
            return None
        return JSONBytes(answer)
