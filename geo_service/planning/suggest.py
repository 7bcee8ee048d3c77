"""Suggested splits and merges that even out grid workers' load, written as a new draft.

Method (deterministic, documented rather than a stochastic regionaliser):

* Workload index of a grid: ``w = a·r/r̄ + (1-a)·h/h̄`` with ``r`` its reports, ``h`` its
  households, bars the means over all grids and ``a`` = ``report_weight``; 1 is an average load.
* Split: a grid with ``w > split_above`` is cut into ``k = max(2, round(w))`` parts of equal
  workload by straight parallel cuts (:mod:`geo_service.planning.splitting`), fewer parts if
  they would be under the minimum grid area. The part read first (north→south, west→east)
  keeps the code, the grid worker and the name; the others take the lowest grid numbers never
  used in the community in any version (so no area history is mixed up), households and
  population shared by area. Cut ends are inserted into every neighbouring area's ring, so the
  layout stays a clean coverage (no T-junctions).
* Merge: a grid with ``w < merge_below`` joins the neighbour in its own community (sharing at
  least ``min_shared_edge_m`` of boundary) that gives the lightest sum, while the sum stays
  ``<= merge_max`` and under the area and household limits; lightest first, repeated while a
  merged grid is still light. The lowest code of a merge is kept.

spopt's regionalisers (max-p, SKATER, AZP) were weighed: they build regions out of given units,
so splitting would need an artificial lattice (stair-step boundaries), and max-p is randomised;
straight cuts and a greedy merge give the planner a reproducible, readable starting draft.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely
from shapely.geometry import MultiPoint
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Connection

from geo_service.auth import Principal
from geo_service.errors import InvalidInput
from geo_service.locator import Locator, VersionInfo
from geo_service.metric import local_metric, project
from geo_service.planning.layout_store import store_layout
from geo_service.planning.numbering import free_grid_codes, middle_latitude, reading_sequence
from geo_service.planning.report_points import ReportPoints
from geo_service.planning.splitting import split_polygon
from geo_service.planning.validation_report import layout_problems, problem_severity
from geo_service.planning.workload import balance, cv, per_grid
from geo_service.settings import PlanningSettings
from geo_service.store.versions import codes_ever_used

FloatArray = npt.NDArray[np.float64]
SNAP_DEG = 1e-9  # about 0.1 mm: cut ends lie on their edge to ~1e-15°


@dataclass(frozen=True)
class SuggestOptions:
    """Thresholds of the method (see the module docstring)."""

    split_above: float = 1.8
    merge_below: float = 0.45
    merge_max: float = 1.2
    report_weight: float = 0.5
    min_shared_edge_m: float = 20.0
    max_parts: int = 4

    def check(self) -> None:
        """422 naming the first inconsistent threshold."""
        if not 0 <= self.report_weight <= 1:
            raise InvalidInput("report_weight must lie between 0 and 1")
        if not 0 < self.merge_below < self.merge_max:
            raise InvalidInput("need 0 < merge_below < merge_max")
        if self.split_above <= 1:
            raise InvalidInput("split_above must be over 1 (an average load)")
        if not 2 <= self.max_parts <= 9:
            raise InvalidInput("max_parts must be 2 to 9")


@dataclass
class Plan:
    """The suggested layout and what changed in it."""

    frame: gpd.GeoDataFrame
    splits: list[dict[str, Any]] = field(default_factory=list)
    merges: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)


def workload_index(
    reports: npt.ArrayLike, households: npt.ArrayLike, report_weight: float
) -> FloatArray:
    """``a·r/r̄ + (1-a)·h/h̄`` per grid; a term whose mean is 0 gives its weight to the other."""
    r = np.asarray(reports, dtype=np.float64)
    h = np.asarray(households, dtype=np.float64)
    a = report_weight if r.mean() > 0 else 0.0
    a = a if h.mean() > 0 else 1.0
    out = np.zeros(len(r))
    if a > 0:
        out += a * r / r.mean()
    if a < 1:
        out += (1 - a) * h / h.mean()
    return out


def _apportion(total: Any, shares: FloatArray) -> list[int | None]:
    """Split an integer total by shares, largest remainders first (None stays None)."""
    if total is None or (isinstance(total, float) and total != total):
        return [None] * len(shares)
    raw = float(total) * shares
    out = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - out), kind="stable")[: round(float(total)) - int(out.sum())]:
        out[i] += 1
    return [int(v) for v in out]


def _num(v: Any) -> float:
    return 0.0 if v is None or (isinstance(v, float) and v != v) else float(v)


def _int(v: Any) -> int | None:
    return None if v is None or (isinstance(v, float) and v != v) else int(v)


class _Planner:
    """One run of the method over a version's grids (the grid table is the Locator's)."""

    def __init__(
        self,
        areas: gpd.GeoDataFrame,
        locator: Locator,
        points: ReportPoints,
        options: SuggestOptions,
        limits: PlanningSettings,
        used_codes: set[str],
    ) -> None:
        self.areas = areas.reset_index(drop=True)
        self.grids = locator.grids.reset_index(drop=True)
        self.options, self.limits = options, limits
        self.used = set(used_codes) | set(self.areas["code"])
        gi = locator.locate(points.lon, points.lat).grid_index
        self.gi, self.points = gi, points
        self.reports = per_grid(gi, len(self.grids))
        self.households = pd.to_numeric(self.grids["households"], errors="coerce").fillna(0)
        self.w = workload_index(self.reports, self.households, options.report_weight)
        self.to_m = local_metric(self.areas.total_bounds)
        self.geoms = self.grids.geometry.to_numpy()
        self.geoms_m = project(self.geoms, self.to_m)
        self.area_m2 = np.asarray(shapely.area(self.geoms_m), dtype=np.float64)
        self.latitude = middle_latitude(self.areas.total_bounds)

    # -- splits --------------------------------------------------------------------------

    def overloaded(self) -> list[tuple[int, int]]:
        """(grid row, parts) of every grid over ``split_above``, heaviest first."""
        o = self.options
        rows = [int(i) for i in np.argsort(-self.w, kind="stable") if self.w[i] > o.split_above]
        return [(i, int(min(o.max_parts, max(2, round(self.w[i]))))) for i in rows]

    def splits(
        self, chosen: list[tuple[int, int]]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        """New grid records replacing each chosen (row, parts) grid, the split entries, skips.

        A grid is cut into fewer parts when ``parts`` would leave one under the minimum area.
        """
        records: list[dict[str, Any]] = []
        entries, skipped = [], []
        r_mean = self.reports.mean() if self.reports.mean() > 0 else 1.0
        for i, parts in chosen:
            mine = self.gi == i
            w = self.w[i]
            share = self.options.report_weight * self.reports[i] / r_mean / w if w else 0.0
            split = None
            for k in range(parts, 1, -1):
                split = split_polygon(
                    self.geoms[i],
                    k,
                    self.to_m,
                    self.points.lon[mine],
                    self.points.lat[mine],
                    float(share),
                    min_area_m2=self.limits.grid_min_m2,
                )
                if split is not None:
                    break
            if split is None:
                skipped.append(
                    {
                        "code": str(self.grids.at[i, "code"]),
                        "workload": round(float(w), 3),
                        "reason": "no straight cut gives parts in one piece each "
                        "over the minimum grid area",
                    }
                )
                continue
            new, entry = self._parts(i, split.parts, split.area_share)
            records += new
            entries.append(entry)
        return records, entries, skipped

    def _parts(
        self, i: int, parts: list[BaseGeometry], shares: FloatArray
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        row = self.grids.iloc[i]
        code, community = str(row["code"]), str(row["parent_code"])
        order = reading_sequence(parts, self.latitude)
        parts = [parts[j] for j in order]
        shares = shares[order]
        fresh = free_grid_codes(community, self.used, len(parts) - 1)
        self.used.update(fresh)
        codes = [code, *fresh]
        households = _apportion(row.get("households"), shares)
        population = _apportion(row.get("population"), shares)
        base = {c: row[c] for c in self.areas.columns if c in row.index and c != "geometry"}
        records = []
        for n, (geom, c) in enumerate(zip(parts, codes, strict=True)):
            rec = (
                dict(base)
                if n == 0
                else {
                    "code": c,
                    "name": f"{row['name']}-{n + 1}",
                    "level": "grid",
                    "parent_code": community,
                }
            )
            rec.update(code=c, households=households[n], population=population[n], geometry=geom)
            rec["area_id"] = None  # a new row
            records.append(rec)
        entry = {
            "code": code,
            "workload": round(float(self.w[i]), 3),
            "reports": int(self.reports[i]),
            "households": _int(row.get("households")),
            "parts": [
                {"code": c, "households": h, "area_m2": round(float(s * self.area_m2[i]), 1)}
                for c, h, s in zip(codes, households, shares, strict=True)
            ],
        }
        return records, entry

    # -- merges --------------------------------------------------------------------------

    def _shared_edges(self, light: npt.NDArray[np.intp]) -> dict[int, dict[int, float]]:
        """Metres of boundary each light grid shares with each same-community neighbour."""
        tree = shapely.STRtree(self.geoms_m)
        left, right = tree.query(self.geoms_m[light], predicate="intersects")
        a, b = light[left], right
        parents = self.grids["parent_code"].to_numpy(dtype=object)
        keep = (a != b) & (parents[a] == parents[b])
        a, b = a[keep], b[keep]
        lengths = shapely.length(shapely.intersection(self.geoms_m[a], self.geoms_m[b]))
        out: dict[int, dict[int, float]] = {}
        for i, j, length in zip(a.tolist(), b.tolist(), lengths.tolist(), strict=True):
            out.setdefault(i, {})[j] = length
            out.setdefault(j, {})[i] = length
        return out

    def merges(self, frozen: set[int]) -> list[list[int]]:
        """Groups of grid rows to merge (each sorted, the first keeps its code)."""
        o, lim = self.options, self.limits
        light = np.flatnonzero(self.w < o.merge_below)
        light = np.array([i for i in light if i not in frozen], dtype=np.intp)
        if len(light) == 0:
            return []
        edges = self._shared_edges(light)
        group = {i: [i] for i in range(len(self.grids)) if i not in frozen}
        owner = {i: i for i in group}
        load = {i: float(self.w[i]) for i in group}
        area = {i: float(self.area_m2[i]) for i in group}
        hh = {i: float(self.households.iloc[i]) for i in group}
        while True:
            best: tuple[float, float, int, int] | None = None
            for g in sorted((g for g in group if load[g] < o.merge_below), key=load.__getitem__):
                shared: dict[int, float] = {}
                for m in group[g]:
                    for nb, length in edges.get(m, {}).items():
                        h = owner.get(nb)
                        if h is not None and h != g:
                            shared[h] = shared.get(h, 0.0) + length
                for h, length in shared.items():
                    if (
                        length < o.min_shared_edge_m
                        or load[g] + load[h] > o.merge_max
                        or area[g] + area[h] > lim.grid_max_m2
                        or hh[g] + hh[h] > lim.grid_max_households
                    ):
                        continue
                    key = (load[g] + load[h], -length, min(g, h), max(g, h))
                    if best is None or key < best:
                        best = key
                if best is not None:
                    break  # the lightest grid that can merge does
            if best is None:
                break
            g, h = best[2], best[3]
            group[g] = sorted(group[g] + group.pop(h))
            for m in group[g]:
                owner[m] = g
            load[g] += load.pop(h)
            area[g] += area.pop(h)
            hh[g] += hh.pop(h)
        return [members for members in group.values() if len(members) > 1]

    def merged_record(self, members: list[int]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The record of a merged grid and its entry in the answer."""
        row = self.grids.iloc[members[0]]
        rec = {c: row[c] for c in self.areas.columns if c in row.index and c != "geometry"}
        hh = [self.grids.iloc[m].get("households") for m in members]
        pop = [self.grids.iloc[m].get("population") for m in members]
        rec["households"] = int(sum(_num(v) for v in hh)) if any(_num(v) for v in hh) else None
        rec["population"] = int(sum(_num(v) for v in pop)) if any(_num(v) for v in pop) else None
        rec["geometry"] = shapely.union_all(self.geoms[members])
        rec["area_id"] = None  # a new row
        codes = [str(self.grids.at[m, "code"]) for m in members]
        entry = {
            "into": codes[0],
            "codes": codes,
            "workloads": [round(float(self.w[m]), 3) for m in members],
            "workload": round(float(self.w[members].sum()), 3),
            "reports": int(self.reports[members].sum()),
            "households": rec["households"],
        }
        return rec, entry

    # -- the layout ----------------------------------------------------------------------

    def plan(
        self,
        split: list[tuple[int, int]] | None = None,
        merge: list[list[int]] | None = None,
    ) -> Plan:
        """The layout with the chosen splits and merges (by default: the method's choice)."""
        split_records, split_entries, skipped = self.splits(
            self.overloaded() if split is None else split
        )
        row_of = {c: i for i, c in enumerate(self.grids["code"])}
        split_rows = {row_of[e["code"]] for e in split_entries}
        groups = self.merges(split_rows) if merge is None else [sorted(g) for g in merge]
        merge_records, merge_entries = [], []
        for members in groups:
            rec, entry = self.merged_record(members)
            merge_records.append(rec)
            merge_entries.append(entry)
        gone = {str(self.grids.at[i, "code"]) for i in split_rows}
        gone |= {str(self.grids.at[m, "code"]) for g in groups for m in g}
        kept = self.areas.loc[~self.areas["code"].isin(gone)]
        records = split_records + merge_records
        new = gpd.GeoDataFrame(
            pd.DataFrame(
                [{k: v for k, v in r.items() if k != "geometry"} for r in records],
                columns=self.areas.columns.drop("geometry"),
            ),
            geometry=[r["geometry"] for r in records],
            crs="EPSG:4326",
        )
        frame = pd.concat([kept, new], ignore_index=True)
        frame = gpd.GeoDataFrame(frame, geometry="geometry", crs="EPSG:4326")
        frame = _close_t_junctions(frame, [r["geometry"] for r in split_records], self.geoms)
        frame = frame.sort_values(["level", "code"], kind="stable").reset_index(drop=True)
        return Plan(frame, split_entries, merge_entries, skipped)


def _close_t_junctions(
    frame: gpd.GeoDataFrame, parts: list[BaseGeometry], originals: npt.NDArray[np.object_]
) -> gpd.GeoDataFrame:
    """Insert the cut ends lying on an area's edge into that area's ring (GEOS snapping)."""
    if not parts:
        return frame
    old = {tuple(c) for c in shapely.get_coordinates(originals)}
    new = np.array([c for c in shapely.get_coordinates(parts) if tuple(c) not in old])
    if len(new) == 0:
        return frame
    points = shapely.points(new)
    geoms = frame.geometry.to_numpy().copy()
    near_pt, near_area = shapely.STRtree(shapely.boundary(geoms)).query(
        points, predicate="dwithin", distance=SNAP_DEG
    )
    frame = frame.copy()
    for a in np.unique(near_area):
        pts = MultiPoint(new[near_pt[near_area == a]])
        snapped = shapely.snap(geoms[a], pts, SNAP_DEG)
        if not shapely.equals_exact(snapped, geoms[a], 0.0):
            geoms[a] = snapped
            frame.iloc[a, frame.columns.get_loc("area_id")] = None  # its ring changed: a new row
    frame["geometry"] = geoms
    return frame


def used_grid_codes(conn: Connection) -> set[str]:
    """Every grid code any stored version has used."""
    return codes_ever_used(conn, "grid")


def plan_suggestions(
    areas: gpd.GeoDataFrame,
    locator: Locator,
    points: ReportPoints,
    options: SuggestOptions,
    limits: PlanningSettings,
    used_codes: set[str] | None = None,
) -> Plan:
    """Splits and merges for a version's areas (all levels) and its reports."""
    options.check()
    return _Planner(areas, locator, points, options, limits, used_codes or set()).plan()


def plan_edits(
    areas: gpd.GeoDataFrame,
    locator: Locator,
    points: ReportPoints,
    split: dict[str, int],
    merge: list[list[str]],
    limits: PlanningSettings,
    options: SuggestOptions | None = None,
) -> Plan:
    """The same machinery with the planner's own choice: grid code → parts, groups of codes.

    Merge groups are taken as given (each should be neighbours in one community).
    """
    planner = _Planner(areas, locator, points, options or SuggestOptions(), limits, set())
    row_of = {c: i for i, c in enumerate(planner.grids["code"])}
    unknown = sorted({*split, *(c for g in merge for c in g)} - set(row_of))
    if unknown:
        raise InvalidInput(f"no grid {', '.join(unknown)} in the version")
    return planner.plan(
        split=[(row_of[c], k) for c, k in split.items()],
        merge=[[row_of[c] for c in g] for g in merge],
    )


def suggest(
    conn: Connection,
    base: VersionInfo,
    areas: gpd.GeoDataFrame,
    locator: Locator,
    points: ReportPoints,
    options: SuggestOptions,
    limits: PlanningSettings,
    label: str | None = None,
    *,
    principal: Principal | None = None,
) -> dict[str, Any]:
    """Plan splits and merges and store them as a new draft (made by ``principal``, audited);
    the answer says what changed."""
    plan = plan_suggestions(areas, locator, points, options, limits, used_grid_codes(conn))
    if not plan.splits and not plan.merges:
        raise InvalidInput(
            f"no grid of {base.label!r} is over {options.split_above} or under "
            f"{options.merge_below} times the average workload with a neighbour to join: "
            "nothing to suggest"
        )
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    label = label or f"{base.label} suggested {stamp}"
    source = f"suggestions from version {base.label!r} (id {base.id})"
    vid = store_layout(conn, plan.frame, label, source, principal=principal)
    after_loc = Locator.from_frame(plan.frame)
    after = per_grid(after_loc.locate(points.lon, points.lat).grid_index, len(after_loc))
    before = per_grid(locator.locate(points.lon, points.lat).grid_index, len(locator))
    hh_before = pd.to_numeric(locator.grids["households"], errors="coerce").fillna(0)
    hh_after = pd.to_numeric(after_loc.grids["households"], errors="coerce").fillna(0)
    w_before = workload_index(before, hh_before, options.report_weight)
    # the same scale as before (the old means): the total load is unchanged, only its spread
    a = options.report_weight if before.mean() > 0 else 0.0
    w_after = a * after / (before.mean() or 1.0) + (1 - a) * hh_after / (hh_before.mean() or 1.0)
    problems = layout_problems(plan.frame, limits)
    errors = sum(problem_severity(p) == "error" for p in problems)

    def rounded(x: float | None) -> float | None:
        return None if x is None else round(x, 4)

    return {
        "draft": {"id": vid, "label": label, "status": "draft"},
        "base": base.as_dict(),
        "options": options.__dict__,
        "splits": plan.splits,
        "merges": plan.merges,
        "skipped": plan.skipped,
        "grids": {"before": len(locator), "after": len(after_loc)},
        "cv": {
            "reports": {"before": rounded(cv(before)), "after": rounded(cv(after))},
            "households": {"before": rounded(cv(hh_before)), "after": rounded(cv(hh_after))},
            "workload_index": {"before": rounded(cv(w_before)), "after": rounded(cv(w_after))},
        },
        "workload": {
            "measure": "reports per grid worker (one grid worker per grid)",
            "before": balance(before, locator.grids["code"]),
            "after": balance(after, after_loc.grids["code"]),
        },
        "validation": {
            "errors": errors,
            "warnings": len(problems) - errors,
            "url": f"/v1/boundaries/versions/{vid}/validation",
        },
    }
