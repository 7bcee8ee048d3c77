"""Emerging hot spots: Gi* per time slice in a space-time neighbourhood, the Mann-Kendall trend
of each location's z-scores, and Esri's Emerging Hot Spot Analysis categories.

The cube: locations (H3 cells or areas) × whole calendar slices (Beijing days, ISO weeks from
Monday, months) inside the window — a partial first or last slice is dropped, so a week in
progress never looks like a sudden cold spot. Each bin's Gi* sees the spatial neighbours of its
location (itself included) in its own slice and the ``time_steps`` slices before; mean and
spread are those of the whole cube (Esri's "entire cube" global window). A bin is a significant
hot (cold) spot when its two-sided p — FDR-adjusted over the cube by default — is ≤ ``alpha``
and z > 0 (< 0).

Categories, for a location whose final slice is a significant hot spot (cold: mirrored):
  intensifying / persistent / diminishing — hot in ≥ 90 % of the slices, and the z-scores
    trend up / show no significant trend / trend down (Mann-Kendall, ``trend_alpha``);
  oscillating — < 90 % hot, and a significant cold spot in some earlier slice;
  new — the final slice is the only hot one (and never cold);
  consecutive — an uninterrupted run of ≥ 2 hot slices at the end, never hot before it;
  sporadic — otherwise: hot on and off before, never cold.
A location whose final slice is not hot but hot in ≥ 90 % of the slices is historical
(categories anchored on the final slice win over historical when both apply).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Final, Literal

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp
from scipy import stats
from sqlalchemy import Connection

from geo_service.analytics import areas as area_data
from geo_service.analytics import h3sql
from geo_service.analytics.filters import LOCAL_TZ, AnalysisFilter, in_view, level_length
from geo_service.analytics.hotspots import bh_adjust, check_features, confidence_bins, gi_star
from geo_service.analytics.weights import (
    Band,
    Contiguity,
    auto_band,
    contiguity,
    distance_band,
    projected,
    space_time,
)
from geo_service.errors import InvalidInput, TooLarge
from geo_service.store import rollups

SliceUnit = Literal["day", "week", "month"]
SLICE_UNITS: Final = ("day", "week", "month")
DEFAULT_RES: Final = 8  # H3 resolution without res
DEFAULT_SLICES: Final = {"day": 30, "week": 12, "month": 12}
MIN_SLICES: Final = 10  # Esri needs ten time steps for a trend
MAX_SLICES: Final = 400
MAX_BINS: Final = 3_000_000
PERSISTENT_SHARE: Final = 0.9
PATTERNS: Final = (
    "new",
    "consecutive",
    "intensifying",
    "persistent",
    "diminishing",
    "sporadic",
    "oscillating",
    "historical",
)
# pattern code as xarray-spatial numbers them: hot 1..8, cold -1..-8, 0 = no pattern
CODE_OF: Final = {p: i + 1 for i, p in enumerate(PATTERNS)}
FloatArray = npt.NDArray[np.float64]


# --------------------------------------------------------------------------- Mann-Kendall


@dataclasses.dataclass(frozen=True)
class Trend:
    """Mann-Kendall per series: S, z, two-sided p and Kendall's tau (tau-a)."""

    s: FloatArray
    z: FloatArray
    p: FloatArray
    tau: FloatArray


def mann_kendall(x: npt.ArrayLike, *, continuity: bool = True) -> Trend:
    """Mann-Kendall trend test of each row of ``x`` (series × time), vectorised.

    S = Σ_{i<j} sign(x_j − x_i); Var S = [n(n−1)(2n+5) − Σ_t t(t−1)(2t+5)] / 18 over groups of
    t tied values; z = (S ∓ 1)/√Var S with the continuity correction (S itself without),
    0 when Var S = 0; p two-sided.
    """
    a = np.atleast_2d(np.asarray(x, dtype=np.float64))
    rows, n = a.shape
    s = np.zeros(rows)
    for i in range(n - 1):
        s += np.sign(a[:, i + 1 :] - a[:, i : i + 1]).sum(axis=1)
    ordered = np.sort(a, axis=1)
    new_group = np.ones((rows, n), dtype=bool)
    new_group[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    group = np.cumsum(new_group, axis=1) - 1 + (np.arange(rows) * n)[:, None]
    sizes = np.bincount(group.ravel(), minlength=rows * n).reshape(rows, n).astype(np.float64)
    ties = (sizes * (sizes - 1) * (2 * sizes + 5)).sum(axis=1)
    var = (n * (n - 1) * (2 * n + 5) - ties) / 18.0
    num = s - np.sign(s) if continuity else s
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(var > 0, num / np.sqrt(var), 0.0)
    p = 2 * stats.norm.sf(np.abs(z))
    tau = s / (n * (n - 1) / 2) if n > 1 else np.zeros(rows)
    return Trend(s, z, p, tau)


# --------------------------------------------------------------------------- categories


def classify(
    hot: npt.ArrayLike,
    cold: npt.ArrayLike,
    trend_z: npt.ArrayLike,
    trend_p: npt.ArrayLike,
    trend_alpha: float = 0.05,
) -> npt.NDArray[np.int8]:
    """Esri's pattern per location from significant hot/cold bins (location × slice, oldest
    first) and the trend of its z-scores: codes 1..8 hot (see ``PATTERNS``), −1..−8 cold, 0."""
    h = np.asarray(hot, dtype=bool)
    c = np.asarray(cold, dtype=bool)
    tz = np.asarray(trend_z, dtype=np.float64)
    up = (np.asarray(trend_p) < trend_alpha) & (tz > 0)
    down = (np.asarray(trend_p) < trend_alpha) & (tz < 0)
    hot_codes = _one_side(h, c, up, down).astype(np.int16)
    cold_codes = _one_side(c, h, down, up).astype(np.int16)
    historical = CODE_OF["historical"]
    # a bin is hot or cold, so at most one side has a pattern anchored on the final slice;
    # that pattern wins over the other side's "historical"
    out = np.select(
        [
            (hot_codes > 0) & (hot_codes != historical),
            (cold_codes > 0) & (cold_codes != historical),
            hot_codes > 0,
            cold_codes > 0,
        ],
        [hot_codes, -cold_codes, hot_codes, -cold_codes],
        0,
    )
    return out.astype(np.int8)


def _one_side(
    same: npt.NDArray[np.bool_],
    other: npt.NDArray[np.bool_],
    rising: npt.NDArray[np.bool_],
    falling: npt.NDArray[np.bool_],
) -> npt.NDArray[np.int8]:
    """Pattern codes for one side (hot, or cold with the trend read the other way)."""
    n_slices = same.shape[1]
    count = same.sum(axis=1)
    mostly = count >= PERSISTENT_SHARE * n_slices
    last = same[:, -1]
    other_before = other[:, :-1].any(axis=1)
    final_run = np.cumprod(same[:, ::-1], axis=1).sum(axis=1)
    code = np.zeros(same.shape[0], dtype=np.int8)
    rules = [
        (last & mostly & rising, "intensifying"),
        (last & mostly & falling, "diminishing"),
        (last & mostly, "persistent"),
        (last & other_before, "oscillating"),
        (last & (count == 1), "new"),
        (last & (final_run >= 2) & (final_run == count), "consecutive"),
        (last, "sporadic"),
        (~last & mostly, "historical"),
    ]
    for cond, name in reversed(rules):  # first matching rule wins
        code[cond] = CODE_OF[name]
    return code


def pattern_name(code: int) -> str:
    """``new_hot_spot`` … ``historical_cold_spot``, or ``no_pattern`` for 0."""
    if code == 0:
        return "no_pattern"
    return f"{PATTERNS[abs(code) - 1]}_{'hot' if code > 0 else 'cold'}_spot"


# --------------------------------------------------------------------------- the cube


def emerging(
    cube: npt.ArrayLike,
    w_space: sp.spmatrix | sp.sparray,
    *,
    time_steps: int = 1,
    alpha: float = 0.05,
    fdr: bool = True,
    trend_alpha: float = 0.05,
) -> pd.DataFrame:
    """Emerging hot spot analysis of a count cube (slices × locations, oldest first) with
    spatial weights ``w_space`` (self included). One row per location: ``n`` (reports in the
    cube), ``pattern`` (code), ``category``, ``trend_z``, ``trend_p``, ``hot_slices``,
    ``cold_slices``, ``z_last``, ``bins`` (Gi_Bin per slice, −3..3)."""
    counts = np.asarray(cube, dtype=np.float64)
    if counts.ndim != 2:
        raise ValueError("the cube must be 2-D: slices × locations")
    n_slices, n_loc = counts.shape
    if n_slices < 2:
        raise InvalidInput("emerging hot spot analysis needs at least two time slices")
    check_features(n_loc, "locations")
    if not 0 < alpha < 1 or not 0 < trend_alpha < 1:
        raise InvalidInput("alpha and trend_alpha must be between 0 and 1")
    g = gi_star(counts.ravel(), space_time(sp.csr_matrix(w_space), n_slices, time_steps))
    z = g.z.reshape(n_slices, n_loc).T  # locations × slices
    q = (bh_adjust(g.p) if fdr else g.p).reshape(n_slices, n_loc).T
    significant = q <= alpha
    hot, cold = significant & (z > 0), significant & (z < 0)
    trend = mann_kendall(z)
    codes = classify(hot, cold, trend.z, trend.p, trend_alpha)
    bins = confidence_bins(z.ravel(), q.ravel()).reshape(n_loc, n_slices)
    return pd.DataFrame(
        {
            "n": counts.sum(axis=0).astype(np.int64),
            "pattern": codes,
            "category": [pattern_name(int(c)) for c in codes],
            "trend_z": trend.z,
            "trend_p": trend.p,
            "hot_slices": hot.sum(axis=1),
            "cold_slices": cold.sum(axis=1),
            "z_last": z[:, -1],
            "bins": [row.tolist() for row in bins],
        }
    )


def _floor(day: dt.date, unit: str) -> dt.date:
    if unit == "week":
        return day - dt.timedelta(days=day.weekday())
    if unit == "month":
        return day.replace(day=1)
    return day


def _next(day: dt.date, unit: str) -> dt.date:
    if unit == "week":
        return day + dt.timedelta(days=7)
    if unit == "month":
        return (day.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
    return day + dt.timedelta(days=1)


def slices(f: AnalysisFilter, unit: str, now: dt.datetime | None = None) -> list[dt.date]:
    """Start dates of the whole ``unit`` slices inside the filter's window, plus the end
    boundary (so ``len - 1`` slices). Without ``until``: up to the current slice (excluded);
    without ``since``: the default number of slices (30 days, 12 weeks, 12 months)."""
    if unit not in SLICE_UNITS:
        raise InvalidInput(f"slice must be one of {', '.join(SLICE_UNITS)}, not {unit!r}")
    since, until = f.window()
    end = (until or now or dt.datetime.now(dt.UTC)).astimezone(LOCAL_TZ)
    stop = _floor(end.date(), unit)
    if since is None:
        first = stop
        for _ in range(DEFAULT_SLICES[unit]):
            first = _floor(first - dt.timedelta(days=1), unit)
    else:
        local = since.astimezone(LOCAL_TZ)
        day = local.date()
        if local != dt.datetime.combine(day, dt.time(0), tzinfo=LOCAL_TZ):
            day += dt.timedelta(days=1)
        first = day if _floor(day, unit) == day else _next(_floor(day, unit), unit)
    bounds = [first]
    while bounds[-1] < stop and len(bounds) <= MAX_SLICES + 1:
        bounds.append(_next(bounds[-1], unit))
    if len(bounds) - 1 > MAX_SLICES:
        raise TooLarge(f"more than {MAX_SLICES} {unit} slices: use a longer slice or window")
    if len(bounds) - 1 < MIN_SLICES:
        raise InvalidInput(
            f"emerging hot spot analysis needs at least {MIN_SLICES} whole {unit} slices, "
            f"the window holds {max(len(bounds) - 1, 0)}: widen it or use a shorter slice"
        )
    return bounds


def _cube_rows(
    conn: Connection,
    f: AnalysisFilter,
    bounds: list[dt.date],
    unit: str,
    *,
    res: int | None = None,
    code_length: int | None = None,
) -> pd.DataFrame:
    """(slice start, location key, n) from the roll-up over whole days: per
    resolution-``res`` cell, or per area code of ``code_length`` digits."""
    rows = rollups.rollup_slices(
        conn, f, bounds[0], bounds[-1], unit, res=res, code_length=code_length
    )
    return rollups.frame(rows, ["slice", "loc", "n"])


def _cube(
    rows: pd.DataFrame, locations: npt.ArrayLike, bounds: list[dt.date]
) -> npt.NDArray[np.float64]:
    locs = pd.Index(np.asarray(locations))
    starts = pd.Index(bounds[:-1])
    cube = np.zeros((len(starts), len(locs)))
    if len(rows):
        t = starts.get_indexer(pd.Index(rows["slice"]))
        i = locs.get_indexer(pd.Index(rows["loc"]))
        ok = (t >= 0) & (i >= 0)
        np.add.at(cube, (t[ok], i[ok]), rows["n"].to_numpy(dtype=np.float64)[ok])
    if cube.size > MAX_BINS:
        raise TooLarge(
            f"{cube.size:,} space-time bins is over {MAX_BINS:,}: coarsen the cells or slices"
        )
    return cube


def _attrs(
    unit: str, bounds: list[dt.date], time_steps: int, alpha: float, fdr: bool, trend_alpha: float
) -> dict[str, object]:
    return {
        "layer": "emerging_hotspots",
        "slice": unit,
        "slices": [d.isoformat() for d in bounds[:-1]],
        "window_end": bounds[-1].isoformat(),
        "time_steps": time_steps,
        "alpha": alpha,
        "fdr": fdr,
        "trend_alpha": trend_alpha,
    }


def emerging_hotspots_h3(
    conn: Connection,
    f: AnalysisFilter,
    res: int = 8,
    unit: SliceUnit = "week",
    *,
    band_m: float | None = None,
    time_steps: int = 1,
    alpha: float = 0.05,
    fdr: bool = True,
    trend_alpha: float = 0.05,
    as_of: dt.date | None = None,
    now: dt.datetime | None = None,
) -> gpd.GeoDataFrame:
    """Emerging hot spots on the H3 cells (res 6-9) of the study area; the spatial band is
    ``band_m`` or chosen as OHSA does on the cells' totals over the cube."""
    h3sql.check_res(res, h3sql.MIN_RES, h3sql.ROLLUP_RES)
    bounds = slices(f, unit, now)
    rows = _cube_rows(conn, f, bounds, unit, res=res)
    counted = rows.loc[rows["n"] > 0, "loc"].to_numpy(dtype=np.int64)
    cells = h3sql.study_area_cells(area_data.coverage(conn, f.area, as_of), res, counted)
    cube = _cube(rows, cells, bounds)
    check_features(cells.size, f"H3 cells at resolution {res}")
    lon, lat = h3sql.centres(cells)
    xy = projected(lon, lat)
    band = auto_band(xy, cube.sum(axis=0)) if band_m is None else Band(float(band_m), "given")
    result = emerging(
        cube,
        distance_band(xy, band.distance_m),
        time_steps=time_steps,
        alpha=alpha,
        fdr=fdr,
        trend_alpha=trend_alpha,
    )
    frame = gpd.GeoDataFrame(
        {"cell": h3sql.to_hex(cells), **{c: result[c].to_numpy() for c in result}},
        geometry=list(h3sql.polygons(cells)),
        crs="EPSG:4326",
    )
    frame.attrs.update(
        _attrs(unit, bounds, time_steps, alpha, fdr, trend_alpha),
        unit="h3",
        res=res,
        distance_band_m=round(band.distance_m, 1),
        band_rule=band.rule,
    )
    return in_view(frame, f)


def emerging_hotspots_areas(
    conn: Connection,
    f: AnalysisFilter,
    level: str = "grid",
    unit: SliceUnit = "week",
    *,
    rule: Contiguity = "queen",
    time_steps: int = 1,
    alpha: float = 0.05,
    fdr: bool = True,
    trend_alpha: float = 0.05,
    as_of: dt.date | None = None,
    now: dt.datetime | None = None,
) -> gpd.GeoDataFrame:
    """Emerging hot spots on the official areas of ``level`` with contiguity weights."""
    length = level_length(level)
    bounds = slices(f, unit, now)
    polys = area_data.areas(conn, level, as_of)
    if f.area:
        polys = polys[polys["code"].str.startswith(f.area)].reset_index(drop=True)
    rows = _cube_rows(conn, f, bounds, unit, code_length=length)
    cube = _cube(rows, polys["code"].to_numpy(), bounds)
    result = emerging(
        cube,
        contiguity(np.asarray(polys.geometry.values), rule),
        time_steps=time_steps,
        alpha=alpha,
        fdr=fdr,
        trend_alpha=trend_alpha,
    )
    frame = polys[["code", "name", "level", "households", "geometry"]].copy()
    for c in result:
        frame[c] = result[c].to_numpy()
    frame = gpd.GeoDataFrame(frame, geometry="geometry", crs="EPSG:4326")
    frame.attrs.update(
        _attrs(unit, bounds, time_steps, alpha, fdr, trend_alpha),
        unit=level,
        weights=rule,
        version=polys.attrs.get("version"),
    )
    return in_view(frame, f)


def emerging_hotspots(
    conn: Connection,
    f: AnalysisFilter,
    unit: SliceUnit = "week",
    *,
    res: int | None = None,
    level: str | None = None,
    rule: Contiguity = "queen",
    band_m: float | None = None,
    time_steps: int = 1,
    alpha: float = 0.05,
    fdr: bool = True,
    trend_alpha: float = 0.05,
    as_of: dt.date | None = None,
    now: dt.datetime | None = None,
) -> gpd.GeoDataFrame:
    """One entry point: on the areas of ``level``, else on H3 cells at ``res`` (default 8)."""
    if level is not None:
        return emerging_hotspots_areas(
            conn,
            f,
            level,
            unit,
            rule=rule,
            time_steps=time_steps,
            alpha=alpha,
            fdr=fdr,
            trend_alpha=trend_alpha,
            as_of=as_of,
            now=now,
        )
    return emerging_hotspots_h3(
        conn,
        f,
        DEFAULT_RES if res is None else res,
        unit,
        band_m=band_m,
        time_steps=time_steps,
        alpha=alpha,
        fdr=fdr,
        trend_alpha=trend_alpha,
        as_of=as_of,
        now=now,
    )
