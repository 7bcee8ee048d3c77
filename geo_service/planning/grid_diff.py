"""Which grids a draft adds, removes or changes against a base version, by code and by geometry.

By code: a grid is *new* (code only in the draft), *removed* (only in the base), *changed*
(same code, its geometry moved by more than the tolerance and/or its attributes differ) or
*unchanged*. By geometry: every piece of land that changes grid code (base grid ∩ draft grid of
another code, over the tolerance) is a *flow*, with its area and the households it carries,
estimated from the base grid's households in proportion to area (households are only known
per grid).

Set operations and areas are taken in the stored lon/lat plane (the one PostGIS answers in),
scaled to m² by the WGS84 ellipsoid's local metres per degree: a vertex added on a straight
edge then changes nothing, where projecting the pieces first would turn the edge into a curve
and report a phantom sliver.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely

from geo_service.db.schema import AREA_LEVELS
from geo_service.metric import lonlat_area_m2 as area_m2

AREA_TOLERANCE_M2 = 1.0
_ATTRIBUTES = ("name", "parent_code", "households", "population", "grid_worker", "grid_leader")

FloatArray = npt.NDArray[np.float64]
Geoms = npt.NDArray[np.object_]


@dataclass
class GridDiff:
    """The outcome of :func:`diff_grids`; ``draft_kind`` gives each draft grid's class."""

    new: list[dict[str, Any]] = field(default_factory=list)
    removed: list[dict[str, Any]] = field(default_factory=list)
    changed: list[dict[str, Any]] = field(default_factory=list)
    unchanged: int = 0
    flows: list[dict[str, Any]] = field(default_factory=list)
    draft_kind: dict[str, str] = field(default_factory=dict)  # draft code -> kind
    levels: dict[str, dict[str, int]] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "new": len(self.new),
            "removed": len(self.removed),
            "changed": len(self.changed),
            "geometry_changed": sum(1 for c in self.changed if c["geometry_changed"]),
            "unchanged": self.unchanged,
            "area_shifted_m2": round(sum(f["area_m2"] for f in self.flows), 1),
            "households_shifted_est": round(sum(f["households_est"] for f in self.flows), 1),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "summary": self.summary(),
            "levels": self.levels,
            "new": self.new,
            "removed": self.removed,
            "changed": self.changed,
            "flows": self.flows,
        }


def _value(v: Any) -> Any:
    """A JSON-ready cell: numpy scalars unwrapped, NaN/None as None."""
    if v is None or (isinstance(v, float) and v != v):
        return None
    return v.item() if isinstance(v, np.generic) else v


def _households(frame: pd.DataFrame) -> FloatArray:
    col = frame["households"] if "households" in frame else pd.Series(0, index=frame.index)
    return pd.to_numeric(col, errors="coerce").fillna(0).to_numpy(dtype=np.float64)


def _differs(b: pd.Series, d: pd.Series) -> npt.NDArray[np.bool_]:
    """Element-wise ``b != d`` where two missing values count as equal."""
    both_missing = b.isna().to_numpy() & d.isna().to_numpy()
    return (b.to_numpy(dtype=object) != d.to_numpy(dtype=object)) & ~both_missing


@dataclass(frozen=True)
class _Pairs:
    """Areas of one level present in both versions under one code, side by side."""

    codes: list[str]
    gained: FloatArray  # m² of the draft area outside the base one
    lost: FloatArray
    attrs: list[list[str]]

    @classmethod
    def of(cls, base: pd.DataFrame, draft: pd.DataFrame) -> _Pairs:
        """Pairs whose stored rows differ (same-row pairs are unchanged by construction)."""
        b = base.drop_duplicates("code").set_index("code")
        d = draft.drop_duplicates("code").set_index("code")
        both = b.index.intersection(d.index)
        both = both[b.loc[both, "area_id"].to_numpy() != d.loc[both, "area_id"].to_numpy()]
        b, d = b.loc[both], d.loc[both]
        bg, dg = b.geometry.to_numpy(), d.geometry.to_numpy()
        gained = area_m2(shapely.difference(dg, bg))
        lost = area_m2(shapely.difference(bg, dg))
        columns = [a for a in _ATTRIBUTES if a in b.columns and a in d.columns]
        differs = {a: _differs(b[a], d[a]) for a in columns}
        attrs = [[a for a in columns if differs[a][k]] for k in range(len(both))]
        return cls(list(both), gained, lost, attrs)

    def changed(self, tolerance_m2: float) -> npt.NDArray[np.bool_]:
        geometry = (self.gained + self.lost) > tolerance_m2
        return geometry | np.array([bool(a) for a in self.attrs], dtype=bool)


def level_counts(
    base: pd.DataFrame,
    draft: pd.DataFrame,
    tolerance_m2: float = AREA_TOLERANCE_M2,
    pairs: dict[str, _Pairs] | None = None,
) -> dict[str, dict[str, int]]:
    """Per level, how many areas are new, removed, changed or unchanged."""
    out: dict[str, dict[str, int]] = {}
    for level in AREA_LEVELS:
        b = base.loc[base["level"] == level]
        d = draft.loc[draft["level"] == level]
        bc, dc = set(b["code"]), set(d["code"])
        same_code = (pairs or {}).get(level) or _Pairs.of(b, d)
        changed = int(same_code.changed(tolerance_m2).sum())
        out[level] = {
            "new": len(dc - bc),
            "removed": len(bc - dc),
            "changed": changed,
            "unchanged": len(bc & dc) - changed,
        }
    return out


def diff_grids(
    base: gpd.GeoDataFrame, draft: gpd.GeoDataFrame, tolerance_m2: float = AREA_TOLERANCE_M2
) -> GridDiff:
    """Compare two versions' areas (frames of :func:`versions.load_areas`, any levels)."""
    b = base.loc[base["level"] == "grid"].reset_index(drop=True)
    d = draft.loc[draft["level"] == "grid"].reset_index(drop=True)
    pairs = _Pairs.of(b, d)
    out = GridDiff(levels=level_counts(base, draft, tolerance_m2, {"grid": pairs}))
    bg, dg = b.geometry.to_numpy(), d.geometry.to_numpy()
    b_area, d_area = area_m2(bg), area_m2(dg)
    b_row = {c: i for i, c in enumerate(b["code"])}
    d_row = {c: i for i, c in enumerate(d["code"])}
    changed = pairs.changed(tolerance_m2)
    moved_codes: set[str] = set()
    for k, code in enumerate(pairs.codes):
        if not changed[k]:
            continue
        i, j = b_row[code], d_row[code]
        geometry = bool(pairs.gained[k] + pairs.lost[k] > tolerance_m2)
        if geometry:
            moved_codes.add(code)
        out.changed.append(
            {
                "code": code,
                "name": d.at[j, "name"],
                "geometry_changed": geometry,
                "attributes_changed": pairs.attrs[k],
                "area_before_m2": round(float(b_area[i]), 1),
                "area_after_m2": round(float(d_area[j]), 1),
                "area_gained_m2": round(float(pairs.gained[k]), 1),
                "area_lost_m2": round(float(pairs.lost[k]), 1),
                "households_before": _value(b.at[i, "households"]),
                "households_after": _value(d.at[j, "households"]),
            }
        )
    kind_of_changed = {
        c["code"]: "changed" if c["geometry_changed"] else "attributes" for c in out.changed
    }
    for code in d["code"]:
        out.draft_kind[code] = kind_of_changed.get(code, "unchanged" if code in b_row else "new")
    out.unchanged = sum(1 for k in out.draft_kind.values() if k == "unchanged")
    for i, code in enumerate(b["code"]):
        if code not in d_row:
            out.removed.append(_whole(b, i, b_area[i]))
    for j, code in enumerate(d["code"]):
        if code not in b_row:
            out.new.append(_whole(d, j, d_area[j]))
    touched_b = [i for i, c in enumerate(b["code"]) if c not in d_row or c in moved_codes]
    touched_d = [j for j, c in enumerate(d["code"]) if c not in b_row or c in moved_codes]
    out.flows = _flows(b, d, b_area, touched_b, touched_d, tolerance_m2)
    return out


def _whole(frame: pd.DataFrame, i: int, area: float) -> dict[str, Any]:
    """A new or removed grid's entry."""
    return {
        "code": frame.at[i, "code"],
        "name": frame.at[i, "name"],
        "area_m2": round(float(area), 1),
        "households": _value(frame.at[i, "households"]),
    }


def _flows(
    b: gpd.GeoDataFrame,
    d: gpd.GeoDataFrame,
    b_area: FloatArray,
    touched_b: list[int],
    touched_d: list[int],
    tolerance_m2: float,
) -> list[dict[str, Any]]:
    """Land passing from a base grid to a draft grid of another code, largest first."""
    bg, dg = b.geometry.to_numpy(), d.geometry.to_numpy()
    found: set[tuple[int, int]] = set()
    if touched_d:
        left, right = shapely.STRtree(bg).query(dg[touched_d], predicate="intersects")
        found.update(zip(right.tolist(), np.asarray(touched_d)[left].tolist(), strict=True))
    if touched_b:
        left, right = shapely.STRtree(dg).query(bg[touched_b], predicate="intersects")
        found.update(zip(np.asarray(touched_b)[left].tolist(), right.tolist(), strict=True))
    bc, dc = b["code"].to_numpy(dtype=object), d["code"].to_numpy(dtype=object)
    keep = sorted((i, j) for i, j in found if bc[i] != dc[j])
    if not keep:
        return []
    ii = np.array([p[0] for p in keep])
    jj = np.array([p[1] for p in keep])
    area = area_m2(shapely.intersection(bg[ii], dg[jj]))
    share = np.divide(area, b_area[ii], out=np.zeros_like(area), where=b_area[ii] > 0)
    households = share * _households(b)[ii]
    flows: list[dict[str, Any]] = [
        {
            "from": str(bc[i]),
            "to": str(dc[j]),
            "area_m2": round(float(a), 1),
            "households_est": round(float(h), 1),
        }
        for i, j, a, h in zip(ii, jj, area, households, strict=True)
        if a > tolerance_m2
    ]
    flows.sort(key=lambda f: (-f["area_m2"], f["from"], f["to"]))
    return flows
