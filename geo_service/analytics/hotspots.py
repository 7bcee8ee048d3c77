"""Hot spots: Getis-Ord Gi* on H3 cells or official areas, as Esri's Optimized Hot Spot Analysis.

Gi* is one sparse product (``W @ y``) with the Getis-Ord moments, so 50,000 cells take
milliseconds; for binary weights with the feature in its own neighbourhood it equals
``esda.G_Local(y, w, transform="B", star=True)`` (z, and esda's one-sided ``p_norm``).
Classes follow Esri's ``Gi_Bin``: ±3/±2/±1 for hot/cold at 99/95/90 % confidence on the
two-sided p-value, after a Benjamini-Hochberg False Discovery Rate correction by default;
0 is "not significant". Permutation inference (conditional randomisation, as esda) is optional.
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
from geo_service.analytics.filters import AnalysisFilter, in_view
from geo_service.analytics.heat import area_counts, cell_counts
from geo_service.analytics.weights import (
    Band,
    Contiguity,
    auto_band,
    contiguity,
    distance_band,
    neighbour_counts,
    projected,
)
from geo_service.errors import InvalidInput

MIN_FEATURES: Final = 30
DEFAULT_RES: Final = 9  # H3 resolution without res or zoom
MAX_PERMUTATIONS: Final = 9999
CONFIDENCE: Final = ((3, 0.01), (2, 0.05), (1, 0.10))  # Gi_Bin level, two-sided alpha
CLASS_OF_BIN: Final = {
    3: "hot_99",
    2: "hot_95",
    1: "hot_90",
    0: "not_significant",
    -1: "cold_90",
    -2: "cold_95",
    -3: "cold_99",
}
CLASS_NAMES: Final = {
    "hot_99": "热点(99%置信)",
    "hot_95": "热点(95%置信)",
    "hot_90": "热点(90%置信)",
    "not_significant": "不显著",
    "cold_90": "冷点(90%置信)",
    "cold_95": "冷点(95%置信)",
    "cold_99": "冷点(99%置信)",
}
"""The one Chinese name of each class: maps, the console and the printed reports say it."""
Method = Literal["analytic", "permutation"]
FloatArray = npt.NDArray[np.float64]


class NotEnoughFeatures(InvalidInput):
    """Gi* is unreliable under 30 features (Esri refuses too)."""

    code = "not_enough_features"


class NoVariation(InvalidInput):
    """Every feature has the same value: there is nothing to cluster."""

    code = "no_variation"


def why_not_zh(exc: InvalidInput, noun: str = "要素") -> str:
    """Why Gi* did not run, in Chinese, for pages and printed reports (``noun``: what the
    features are, e.g. 网格)."""
    if isinstance(exc, NotEnoughFeatures):
        return f"{noun}数少于{MIN_FEATURES}个"
    if isinstance(exc, NoVariation):
        return f"各{noun}上报数相同"
    return "数据不足"


@dataclasses.dataclass(frozen=True)
class GiStar:
    """Gi* per feature: z-score, esda's one-sided p (``p_norm``) and the two-sided p."""

    z: FloatArray
    p_norm: FloatArray
    p: FloatArray
    neighbours: npt.NDArray[np.int64]


def check_features(n: int, what: str = "features") -> None:
    """Refuse fewer than 30 features, naming the count and what to do."""
    if n < MIN_FEATURES:
        raise NotEnoughFeatures(
            f"hot spot analysis needs at least {MIN_FEATURES} {what}, got {n}: "
            "widen the area or the time window, or use a finer resolution"
        )


def gi_star(y: npt.ArrayLike, w: sp.spmatrix | sp.sparray) -> GiStar:
    """Getis-Ord Gi* z-scores of ``y`` for weights ``w`` (self included on the diagonal).

    z_i = (Σ_j w_ij y_j − ȳ W_i) / (S √((n Σ_j w_ij² − W_i²) / (n − 1))), S the population
    standard deviation of y — Getis & Ord (1995), Esri's formula; for binary weights it is
    esda's ``G_Local(star=True)`` exactly.
    """
    values = np.asarray(y, dtype=np.float64)
    n = values.size
    w = sp.csr_matrix(w)
    mean = values.mean()
    s = np.sqrt(max((values * values).mean() - mean * mean, 0.0))
    if n < 2 or s == 0:
        raise NoVariation("every feature has the same count: there is nothing to cluster")
    wi = np.asarray(w.sum(axis=1)).ravel()
    w2 = np.asarray(w.multiply(w).sum(axis=1)).ravel()
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (w @ values - mean * wi) / (s * np.sqrt((n * w2 - wi * wi) / (n - 1)))
    z = np.where(np.isfinite(z), z, 0.0)
    p_norm = stats.norm.sf(np.abs(z))
    return GiStar(z, p_norm, np.minimum(2 * p_norm, 1.0), neighbour_counts(w))


def permutation_p(
    y: npt.ArrayLike,
    w: sp.spmatrix | sp.sparray,
    permutations: int = 999,
    seed: int | None = None,
) -> FloatArray:
    """Pseudo p-values of Gi* by conditional randomisation (binary weights, self included).

    For each feature, its value stays and its k neighbours' values are replaced by k values
    drawn without replacement from the other n − 1 features, ``permutations`` times (the
    draws are shared across features, as in esda); p = (m + 1) / (permutations + 1) with m
    the simulations at least as extreme on the observed side (one-sided, folded, as esda).
    """
    if not 1 <= permutations <= MAX_PERMUTATIONS:
        raise InvalidInput(f"permutations must be between 1 and {MAX_PERMUTATIONS}")
    values = np.asarray(y, dtype=np.float64)
    n = values.size
    w = sp.csr_matrix(w)
    if w.nnz and not np.all(w.data == 1):
        raise ValueError("permutation inference here assumes binary weights")
    k = neighbour_counts(w) - (w.diagonal() != 0)  # neighbours other than the feature itself
    observed = w @ values
    kmax = int(k.max()) if n else 0
    rng = np.random.default_rng(seed)
    if kmax == 0:
        return np.ones(n)
    draws = np.stack([rng.choice(n - 1, size=kmax, replace=False) for _ in range(permutations)])
    larger = np.zeros(n, dtype=np.int64)
    chunk = max(1, int(2e7 // max(permutations * kmax, 1)))
    for start in range(0, n, chunk):
        ids = np.arange(start, min(start + chunk, n))
        idx = draws[None, :, :] + (draws[None, :, :] >= ids[:, None, None])  # skip self
        sums = np.cumsum(values[idx], axis=2)
        kk = k[ids]
        sim = np.where(kk[:, None] > 0, sums[np.arange(ids.size), :, np.maximum(kk - 1, 0)], 0.0)
        sim += values[ids, None] * w.diagonal()[ids, None]
        obs = observed[ids, None]
        larger[ids] = (sim >= obs - 1e-9 * np.abs(obs)).sum(axis=1)
    folded = np.minimum(larger, permutations - larger)
    return (folded + 1) / (permutations + 1)


def bh_adjust(p: npt.ArrayLike) -> FloatArray:
    """Benjamini-Hochberg adjusted p-values (q-values): q ≤ α ⇔ rejected at FDR α."""
    pv = np.asarray(p, dtype=np.float64)
    n = pv.size
    if n == 0:
        return pv.copy()
    order = np.argsort(pv, kind="stable")
    scaled = pv[order] * n / np.arange(1, n + 1)
    q_sorted = np.minimum.accumulate(scaled[::-1])[::-1]
    q = np.empty(n)
    q[order] = np.minimum(q_sorted, 1.0)
    return q


def confidence_bins(z: npt.ArrayLike, p: npt.ArrayLike) -> npt.NDArray[np.int8]:
    """Esri's Gi_Bin from z and a (two-sided, possibly FDR-adjusted) p: −3..3."""
    zz = np.asarray(z, dtype=np.float64)
    pp = np.asarray(p, dtype=np.float64)
    level = np.zeros(zz.size, dtype=np.int8)
    for value, alpha in reversed(CONFIDENCE):
        level[pp <= alpha] = value
    return (np.sign(zz).astype(np.int8) * level).astype(np.int8)


def analyse(
    y: npt.ArrayLike,
    w: sp.spmatrix | sp.sparray,
    *,
    method: Method = "analytic",
    permutations: int = 999,
    seed: int | None = None,
    fdr: bool = True,
) -> pd.DataFrame:
    """Gi* with inference and classes for values ``y`` and weights ``w`` (self included).

    Columns: ``z``, ``p_norm`` (esda's one-sided analytic p), ``p`` (two-sided p the classes
    use: analytic, or 2 × the folded pseudo p with permutations), ``p_sim`` (permutations
    only), ``q`` (FDR-adjusted p, or p without FDR), ``gi_bin`` (−3..3), ``class``,
    ``neighbours`` (self included).
    """
    values = np.asarray(y, dtype=np.float64)
    check_features(values.size)
    g = gi_star(values, w)
    out = pd.DataFrame({"z": g.z, "p_norm": g.p_norm, "p": g.p})
    if method == "permutation":
        p_sim = permutation_p(values, w, permutations, seed)
        out["p_sim"] = p_sim
        out["p"] = np.minimum(2 * p_sim, 1.0)
    elif method != "analytic":
        raise InvalidInput(f"method must be 'analytic' or 'permutation', not {method!r}")
    out["q"] = bh_adjust(out["p"].to_numpy()) if fdr else out["p"]
    out["gi_bin"] = confidence_bins(g.z, out["q"].to_numpy())
    out["class"] = out["gi_bin"].map(CLASS_OF_BIN)
    out["neighbours"] = g.neighbours
    return out


# --------------------------------------------------------------------------- from the database


def _finish(
    frame: gpd.GeoDataFrame, f: AnalysisFilter, attrs: dict[str, object]
) -> gpd.GeoDataFrame:
    frame = in_view(frame, f)
    frame.attrs.update(attrs)
    return frame


def study_cells(
    conn: Connection, f: AnalysisFilter, res: int, as_of: dt.date | None = None
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Every cell of the study area (the area filter's polygon, else the whole coverage) with
    its report count, zeros included — as OHSA counts incidents in hexagons within bounding
    polygons (:func:`geo_service.analytics.h3sql.study_area_cells`)."""
    counts = cell_counts(conn, dataclasses.replace(f, bbox=None), res)
    counted = counts["h3"].to_numpy()
    cells = h3sql.study_area_cells(area_data.coverage(conn, f.area, as_of), res, counted)
    n = np.zeros(cells.size, dtype=np.int64)
    pos = np.searchsorted(cells, counted)
    hit = (pos < cells.size) & (cells[np.minimum(pos, cells.size - 1)] == counted)
    n[pos[hit]] = counts["n"].to_numpy()[hit]
    return cells, n


def hotspots_h3(
    conn: Connection,
    f: AnalysisFilter,
    res: int = 9,
    *,
    band_m: float | None = None,
    method: Method = "analytic",
    permutations: int = 999,
    seed: int | None = None,
    fdr: bool = True,
    as_of: dt.date | None = None,
) -> gpd.GeoDataFrame:
    """Gi* hot spots of report counts on the H3 cells of the study area at ``res`` (6-10).

    Fixed distance band between cell centres: ``band_m``, or chosen as OHSA does
    (:func:`geo_service.analytics.weights.auto_band`). ``attrs`` carry the band and its rule.
    A bbox in the filter only selects which cells are returned.
    """
    h3sql.check_res(res, h3sql.MIN_RES, 10)
    cells, n = study_cells(conn, f, res, as_of)
    check_features(cells.size, f"H3 cells at resolution {res}")
    lon, lat = h3sql.centres(cells)
    xy = projected(lon, lat)
    band = auto_band(xy, n) if band_m is None else Band(float(band_m), "given")
    if band.distance_m <= 0:
        raise InvalidInput("band_m must be positive")
    result = analyse(
        n,
        distance_band(xy, band.distance_m),
        method=method,
        permutations=permutations,
        seed=seed,
        fdr=fdr,
    )
    frame = gpd.GeoDataFrame(
        {"cell": h3sql.to_hex(cells), "n": n, **{c: result[c].to_numpy() for c in result}},
        geometry=list(h3sql.polygons(cells)),
        crs="EPSG:4326",
    )
    return _finish(
        frame,
        f,
        {
            "layer": "hotspots",
            "unit": "h3",
            "res": res,
            "features": int(cells.size),
            "distance_band_m": round(band.distance_m, 1),
            "band_rule": band.rule,
            "band_detail": band.detail,
            "method": method,
            "permutations": permutations if method == "permutation" else None,
            "fdr": fdr,
        },
    )


def hotspots_areas(
    conn: Connection,
    f: AnalysisFilter,
    level: str = "grid",
    *,
    rule: Contiguity = "queen",
    per_household: bool = False,
    method: Method = "analytic",
    permutations: int = 999,
    seed: int | None = None,
    fdr: bool = True,
    as_of: dt.date | None = None,
) -> gpd.GeoDataFrame:
    """Gi* hot spots on the official areas of ``level`` with queen or rook contiguity.

    The value is the report count, or reports per household (areas without households left
    out). An area filter restricts the analysis to the areas inside it.
    """
    polys = area_data.areas(conn, level, as_of)
    if f.area:
        polys = polys[polys["code"].str.startswith(f.area)].reset_index(drop=True)
    counts = area_counts(conn, dataclasses.replace(f, bbox=None), level)
    frame = polys.merge(counts, on="code", how="left")
    frame["n"] = frame["n"].fillna(0).astype("int64")
    value = frame["n"].astype("float64")
    if per_household:
        hh = pd.to_numeric(frame["households"], errors="coerce").astype("float64")
        frame = frame[hh > 0].reset_index(drop=True)
        value = frame["n"] / hh[hh > 0].to_numpy()
        frame["per_household"] = value.to_numpy()
    check_features(len(frame), f"{level} areas")
    w = contiguity(np.asarray(frame.geometry.values), rule)
    result = analyse(
        value.to_numpy(), w, method=method, permutations=permutations, seed=seed, fdr=fdr
    )
    for c in result:
        frame[c] = result[c].to_numpy()
    frame = gpd.GeoDataFrame(frame, geometry="geometry", crs="EPSG:4326")
    return _finish(
        frame,
        f,
        {
            "layer": "hotspots",
            "unit": level,
            "features": len(frame),
            "weights": rule,
            "value": "per_household" if per_household else "n",
            "method": method,
            "permutations": permutations if method == "permutation" else None,
            "fdr": fdr,
            "version": polys.attrs.get("version"),
        },
    )


def hotspots(
    conn: Connection,
    f: AnalysisFilter,
    *,
    res: int | None = None,
    zoom: float | None = None,
    level: str | None = None,
    rule: Contiguity = "queen",
    band_m: float | None = None,
    per_household: bool = False,
    method: Method = "analytic",
    permutations: int = 999,
    seed: int | None = None,
    fdr: bool = True,
    as_of: dt.date | None = None,
) -> gpd.GeoDataFrame:
    """One entry point: on the areas of ``level`` (contiguity ``rule``), else on H3 cells at
    ``res`` (or the resolution for ``zoom``, at most 10; default 9)."""
    if level is not None:
        return hotspots_areas(
            conn,
            f,
            level,
            rule=rule,
            per_household=per_household,
            method=method,
            permutations=permutations,
            seed=seed,
            fdr=fdr,
            as_of=as_of,
        )
    if per_household:
        raise InvalidInput(
            "per_household applies to areas: give level=grid|community|town|district"
        )
    if res is None:
        res = min(h3sql.res_for_zoom(zoom), 10) if zoom is not None else DEFAULT_RES
    return hotspots_h3(
        conn,
        f,
        res,
        band_m=band_m,
        method=method,
        permutations=permutations,
        seed=seed,
        fdr=fdr,
        as_of=as_of,
    )
