"""Spatial weights as scipy.sparse matrices: distance bands, contiguity, space-time, and the
automatic distance band of Esri's Optimized Hot Spot Analysis.

All weights are binary; Gi* includes each feature in its own neighbourhood, so the builders
put ones on the diagonal unless ``self_weight=False``. Distances are metres in a local
equal-area projection (``geo_service.metric``), measured between centroids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
import shapely
from scipy.spatial import cKDTree

from geo_service.metric import local_metric

ISA_STEPS: Final = 10  # distances tried by the incremental spatial autocorrelation
ISA_MIN_Z: Final = 1.96  # a peak must be significant (p < 0.05, two-sided)
Contiguity = Literal["queen", "rook"]
FloatArray = npt.NDArray[np.float64]


def projected(lon: npt.ArrayLike, lat: npt.ArrayLike) -> FloatArray:
    """Points in metres (local Lambert azimuthal equal-area centred on their extent)."""
    x = np.asarray(lon, dtype=np.float64)
    y = np.asarray(lat, dtype=np.float64)
    if x.size == 0:
        return np.empty((0, 2))
    t = local_metric((x.min(), y.min(), x.max(), y.max()))
    px, py = t.transform(x, y)
    return np.column_stack([px, py])


def _binary(
    n: int, i: npt.NDArray[np.int64], j: npt.NDArray[np.int64], self_weight: bool
) -> sp.csr_matrix:
    """Symmetric binary weights from pairs i < j (and the diagonal when ``self_weight``)."""
    if self_weight:
        diag = np.arange(n, dtype=np.int64)
        rows = np.concatenate([i, j, diag])
        cols = np.concatenate([j, i, diag])
    else:
        rows, cols = np.concatenate([i, j]), np.concatenate([j, i])
    w = sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(n, n))
    w.sum_duplicates()
    w.data[:] = 1.0
    return w


def distance_band(xy: FloatArray, band: float, *, self_weight: bool = True) -> sp.csr_matrix:
    """Features within ``band`` metres (inclusive) are neighbours."""
    n = len(xy)
    if n == 0:
        return sp.csr_matrix((0, 0))
    pairs = cKDTree(xy).query_pairs(band, output_type="ndarray").astype(np.int64)
    return _binary(n, pairs[:, 0], pairs[:, 1], self_weight)


def contiguity(
    geoms: npt.ArrayLike, rule: Contiguity = "queen", *, self_weight: bool = True
) -> sp.csr_matrix:
    """Polygons sharing a boundary point (queen) or a stretch of boundary (rook)."""
    g = np.asarray(geoms, dtype=object)
    n = len(g)
    if rule not in ("queen", "rook"):
        raise ValueError(f"contiguity must be 'queen' or 'rook', not {rule!r}")
    tree = shapely.STRtree(g)
    left, right = tree.query(g, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    if rule == "rook" and left.size:
        shared = shapely.intersection(shapely.boundary(g[left]), shapely.boundary(g[right]))
        touch = shapely.length(shared) > 0
        left, right = left[touch], right[touch]
    return _binary(n, left.astype(np.int64), right.astype(np.int64), self_weight)


def space_time(w_space: sp.csr_matrix, n_slices: int, time_steps: int = 1) -> sp.csr_matrix:
    """Space-time neighbours of Emerging Hot Spot Analysis: bin (slice t, location i) sees the
    spatial neighbours of i (itself included) in slices t - time_steps .. t. Bins are ordered
    slice-major (index t * n_locations + i); the matrix is not symmetric (time looks back)."""
    if time_steps < 0:
        raise ValueError("time_steps must be >= 0")
    back = sp.diags(
        [np.ones(n_slices - k) for k in range(min(time_steps, n_slices - 1) + 1)],
        [-k for k in range(min(time_steps, n_slices - 1) + 1)],
        shape=(n_slices, n_slices),
    )
    return sp.kron(back, w_space, format="csr")


def neighbour_counts(w: sp.csr_matrix) -> npt.NDArray[np.int64]:
    """Neighbours per feature (row non-zeros, the feature itself included when on the diagonal)."""
    return np.diff(w.indptr).astype(np.int64)


# --------------------------------------------------------------------------- automatic band


def moran_z_by_distance(xy: FloatArray, y: npt.ArrayLike, radii: npt.ArrayLike) -> FloatArray:
    """Global Moran's I z-scores (randomisation null, binary distance-band weights without
    self) for each distance in ``radii``: the Incremental Spatial Autocorrelation curve.

    Never builds a weights matrix: pair sums come from a k-d tree's weighted pair counts,
    so hundreds of neighbours per feature cost no memory.
    """
    values = np.asarray(y, dtype=np.float64)
    r = np.asarray(radii, dtype=np.float64)
    n = len(values)
    z = values - values.mean()
    m2 = float((z * z).sum())
    if n < 4 or m2 == 0:
        return np.full(r.shape, np.nan)
    tree = cKDTree(xy)
    cross = np.asarray(tree.count_neighbors(tree, r, weights=z), dtype=np.float64) - m2
    s0 = np.asarray(tree.count_neighbors(tree, r), dtype=np.float64) - n
    sq_degrees = np.array(
        [float(((tree.query_ball_point(xy, d, return_length=True) - 1) ** 2).sum()) for d in r]
    )
    s1 = 2.0 * s0
    s2 = 4.0 * sq_degrees
    with np.errstate(divide="ignore", invalid="ignore"):
        moran = n / s0 * cross / m2
        ei = -1.0 / (n - 1)
        kurt = (n * (z**4).sum()) / (m2 * m2)
        n2 = n * n
        a = n * ((n2 - 3 * n + 3) * s1 - n * s2 + 3 * s0 * s0)
        b = kurt * ((n2 - n) * s1 - 2 * n * s2 + 6 * s0 * s0)
        var = (a - b) / ((n - 1) * (n - 2) * (n - 3) * s0 * s0) - ei * ei
        out = (moran - ei) / np.sqrt(var)
    return np.where(s0 > 0, out, np.nan)


@dataclass(frozen=True)
class Band:
    """A distance band and how it was chosen."""

    distance_m: float
    rule: str  # isa_first_peak | mean_distance_to_k_neighbours | given
    detail: dict[str, object] = field(default_factory=dict)


def auto_band(xy: FloatArray, y: npt.ArrayLike) -> Band:
    """The scale of analysis as Esri's Optimized Hot Spot Analysis picks it.

    Incremental spatial autocorrelation over ten distances, starting at the smallest distance
    that gives every feature a neighbour and growing by the mean nearest-neighbour distance;
    the first significant peak of Moran's I z-score wins. Without one, the mean distance to the
    K nearest neighbours, K = 5 % of the features kept within 3..30 (and never less than the
    start, so every feature still has a neighbour).
    """
    n = len(xy)
    tree = cKDTree(xy)
    nn = tree.query(xy, k=2)[0][:, 1]
    start, step = float(nn.max()), float(nn.mean())
    radii = start + step * np.arange(ISA_STEPS)
    zs = moran_z_by_distance(xy, y, radii)
    for i in range(1, ISA_STEPS - 1):
        if zs[i] > zs[i - 1] and zs[i] >= zs[i + 1] and zs[i] >= ISA_MIN_Z:
            return Band(
                float(radii[i]),
                "isa_first_peak",
                {"distances_m": radii.round(1).tolist(), "z": np.round(zs, 3).tolist()},
            )
    k = int(min(max(round(0.05 * n), 3), 30, n - 1))
    mean_k = float(tree.query(xy, k=k + 1)[0][:, k].mean())
    return Band(
        max(mean_k, start),
        "mean_distance_to_k_neighbours",
        {"k": k, "distances_m": radii.round(1).tolist(), "z": np.round(zs, 3).tolist()},
    )
