"""Impact of a draft against a base version (the one in force by default).

Grids new, removed and changed (:mod:`grid_diff`); every stored report re-located under both
versions with the same Locator code (so a difference is the layout's, not the history's); how
many reports and how many open cases would change grid, and how many open cases would change
unit (routed at their current handling level under each version, the draft's new areas given
the standing units publishing creates for them); the workload per grid worker before and after.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection

from geo_service.boundaries import versions
from geo_service.errors import InvalidInput
from geo_service.locator import Locator, VersionInfo
from geo_service.locator.locator import CHAIN_LEVELS
from geo_service.locator.registry import VersionRegistry, process_registry
from geo_service.planning.grid_diff import diff_grids
from geo_service.planning.report_points import (
    CATEGORY_CODES,
    ReportPoints,
    read_report_points,
)
from geo_service.planning.workload import balance, per_grid
from geo_service.reports.taxonomy import HANDLING_LEVELS, UNIT_TYPES
from geo_service.routing import UNITS_FOR_LEVEL, RoutingTable

TOP_FLOWS = 20


@dataclass(frozen=True)
class Side:
    """One version as impact needs it: its areas (every level) and its Locator."""

    info: VersionInfo
    areas: gpd.GeoDataFrame
    locator: Locator


def side(registry: VersionRegistry | None, conn: Connection, version_id: int) -> Side:
    """Version ``version_id`` as stored now (404 when there is none; 422 without grids): its
    areas and Locator from ``registry`` (this process's when None), built once per version
    (about half a second for 3,000 grids) and shared with every other user of the version."""
    registry = registry or process_registry()
    info = versions.get_version(conn, version_id)
    areas = registry.get(conn, info, "areas", lambda v: versions.load_areas(conn, v.id))
    if not (areas["level"] == "grid").any():
        raise InvalidInput(f"version {info.label!r} holds no grids")
    return Side(info, areas, registry.locator(conn, info))


def routing_with_areas(routing: RoutingTable, areas: gpd.GeoDataFrame) -> RoutingTable:
    """``routing`` plus the standing units an area set would get on publish (negative ids).

    Publishing seeds a grid team per grid, a committee per community and so on; a draft's new
    codes have none yet, and without them routing would fall back a level and count a change.
    """
    units = dict(routing.units)
    info = dict(routing.unit_info)
    next_id = -1
    for level, types in UNITS_FOR_LEVEL.items():
        for code in areas.loc[areas["level"] == level, "code"]:
            for unit_type in types:
                if (unit_type, code) not in units:
                    units[(unit_type, code)] = next_id
                    info[next_id] = {
                        "id": next_id,
                        "code": f"{unit_type}:{code}",
                        "name": UNIT_TYPES[unit_type],
                        "type": unit_type,
                    }
                    next_id -= 1
    return RoutingTable(units, routing.rules, info, routing.default_district)


def _same_code_index(base: Locator, draft: Locator) -> npt.NDArray[np.int32]:
    """For each draft grid index (and -1 at the end), the base grid of the same code (or -2)."""
    row = {code: i for i, code in enumerate(base.grids["code"])}
    mapped = [row.get(code, -2) for code in draft.grids["code"]]
    return np.array([*mapped, -1], dtype=np.int32)


def _chains(locator: Locator) -> list[dict[str, str] | None]:
    """Level → code of each grid of a Locator (as placement gives it), None at index -1."""
    grids = locator.grids
    columns = {
        lvl: grids[f"{lvl}_code"].to_numpy(dtype=object)
        for lvl in CHAIN_LEVELS
        if f"{lvl}_code" in grids
    }
    out: list[dict[str, str] | None] = []
    for i, code in enumerate(grids["code"]):
        chain = {"grid": str(code)}
        chain.update({lvl: col[i] for lvl, col in columns.items() if isinstance(col[i], str)})
        out.append(chain)
    return [*out, None]


def _units(
    side: Side,
    routing: RoutingTable,
    points: ReportPoints,
    mask: npt.NDArray[np.bool_],
    grid_index: npt.NDArray[np.int32],
) -> npt.NDArray[np.object_]:
    """The unit each masked report's case goes to under one version (``grid_index``: every
    report's grid there, as :func:`relocate` found it).

    Every case of one category and level in one grid goes to the same unit, so routing runs
    once per distinct (grid, category, level) and the answers are spread back.
    """
    gi = grid_index[mask].astype(np.int64)
    n_cat, n_lvl = len(CATEGORY_CODES) + 1, len(HANDLING_LEVELS) + 1
    key = ((gi + 1) * n_cat + points.category[mask]) * n_lvl + points.level[mask]
    distinct, inverse = np.unique(key, return_inverse=True)
    chains = _chains(side.locator)
    units = np.empty(len(distinct), dtype=object)
    for k, value in enumerate(distinct.tolist()):
        rest, lvl = divmod(value, n_lvl)
        g, cat = divmod(rest, n_cat)
        route = routing.route(CATEGORY_CODES[cat - 1], HANDLING_LEVELS[lvl - 1], chains[g - 1])
        units[k] = route.unit_id
    return units[inverse.ravel()]


def relocate(
    points: ReportPoints, base: Side, draft: Side, routing: RoutingTable
) -> dict[str, Any]:
    """Re-locate every report under both versions: moves, open-case unit changes, workload."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    gi_b = base.locator.locate(points.lon, points.lat).grid_index
    gi_d = draft.locator.locate(points.lon, points.lat).grid_index
    timings["locate_s"] = time.perf_counter() - t0

    moved = _same_code_index(base.locator, draft.locator)[gi_d] != gi_b
    open_ = points.open
    t0 = time.perf_counter()
    routable = open_ & (points.category > 0) & (points.level > 0)
    units_b = _units(base, routing, points, routable, gi_b)
    units_d = _units(draft, routing_with_areas(routing, draft.areas), points, routable, gi_d)
    unit_changed = int(np.count_nonzero(units_b != units_d))
    timings["route_s"] = time.perf_counter() - t0

    b_codes = np.array([*base.locator.grids["code"], None], dtype=object)
    d_codes = np.array([*draft.locator.grids["code"], None], dtype=object)
    pairs, counts = np.unique(np.stack([gi_b[moved], gi_d[moved]]), axis=1, return_counts=True)
    top = np.argsort(-counts, kind="stable")[:TOP_FLOWS]
    flows = [
        {"from": b_codes[pairs[0, k]], "to": d_codes[pairs[1, k]], "reports": int(counts[k])}
        for k in top
    ]
    before = per_grid(gi_b, len(base.locator))
    after = per_grid(gi_d, len(draft.locator))
    return {
        "reports": {
            "total": len(points),
            "change_grid": int(np.count_nonzero(moved)),
            "enter_coverage": int(np.count_nonzero(moved & (gi_b < 0))),
            "leave_coverage": int(np.count_nonzero(moved & (gi_d < 0))),
            "top_moves": flows,
        },
        "open_cases": {
            "total": int(np.count_nonzero(open_)),
            "change_grid": int(np.count_nonzero(moved & open_)),
            "change_unit": unit_changed,
        },
        "workload": {
            "measure": "reports per grid worker (one grid worker per grid)",
            "before": balance(before, base.locator.grids["code"]),
            "after": balance(after, draft.locator.grids["code"]),
        },
        "timings": timings,
    }


def impact(points: ReportPoints, base: Side, draft: Side, routing: RoutingTable) -> dict[str, Any]:
    """The whole impact answer of ``draft`` against ``base`` for the given reports."""
    t0 = time.perf_counter()
    diff = diff_grids(base.areas, draft.areas)
    diff_s = time.perf_counter() - t0
    moved = relocate(points, base, draft, routing)
    timings = {"diff_s": diff_s, **moved.pop("timings")}
    return {
        "draft": draft.info.as_dict(),
        "base": base.info.as_dict(),
        "grids": diff.as_dict(),
        **moved,
        "timings_s": {k.removesuffix("_s"): round(v, 4) for k, v in timings.items()},
    }


def version_impact(
    conn: Connection,
    draft_id: int,
    *,
    against: int | None = None,
    since: dt.date | None = None,
    registry: VersionRegistry | None = None,
) -> dict[str, Any]:
    """Impact of version ``draft_id`` against ``against`` (default: the version in force).

    Both versions come from ``registry`` (this process's when None), so versions already seen
    are neither read nor indexed again.
    """
    t0 = time.perf_counter()
    draft = side(registry, conn, draft_id)
    vid = against if against is not None else versions.version_in_force(conn).id
    assert vid is not None
    if vid == draft.info.id:
        raise InvalidInput(f"version {draft.info.label!r} is the base itself: nothing to compare")
    base = side(registry, conn, vid)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    points = read_report_points(conn, since)
    read_s = time.perf_counter() - t0
    out = impact(points, base, draft, RoutingTable.load(conn))
    out["since"] = since.isoformat() if since else None
    out["timings_s"] = {
        "load": round(load_s, 4),
        "read_reports": round(read_s, 4),
        **out["timings_s"],
    }
    return out
