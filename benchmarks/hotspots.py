"""Hot-spot benchmark: our sparse Getis-Ord Gi* against ``esda.G_Local(star=True)``.

50,000 resolution-9 H3 cells around Xiuzhou with synthetic report counts (a Poisson background,
six Gaussian hot clusters, one empty patch), one binary distance-band weights matrix (self
included) built once and handed to both: to ours as the scipy CSR matrix, to esda as the
libpysal ``W`` made from that very matrix. Both compute analytic z-scores and p-values
(no permutations); the answers must agree to 1e-9.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Final

import esda
import h3
import libpysal
import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from rich.console import Console

from benchmarks._common import CpuSnapshot, ResultTable, best_of, timed
from geo_service.analytics import h3sql
from geo_service.analytics.hotspots import analyse, gi_star
from geo_service.analytics.weights import distance_band, projected
from geo_service.settings import PROJECT_ROOT

N_CELLS: Final = 50_000
RES: Final = 9
CENTRE: Final = (30.7649, 120.7071)  # lat, lon: Xiuzhou
BAND_M: Final = 1_000.0  # about 37 neighbours per res-9 cell
SEED: Final = 20250417
REPS: Final = 5
BUDGET_S: Final = 30.0
TARGET_RATIO: Final = 10.0
TOLERANCE: Final = 1e-9

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Study:
    """The cells (as projected centres), their counts and the shared weights."""

    xy: FloatArray
    y: FloatArray
    w: sp.csr_matrix
    w_pysal: libpysal.weights.W
    build_s: float
    to_w_s: float


def make_cells() -> FloatArray:
    """Centres (metres) of the ``N_CELLS`` res-9 cells nearest Xiuzhou's centre."""
    rings = 1
    while 3 * rings * (rings + 1) + 1 < N_CELLS:  # cells in a disk of ``rings`` rings
        rings += 1
    disk = h3.grid_disk(h3.latlng_to_cell(*CENTRE, RES), rings)
    lon, lat = h3sql.centres(np.sort(np.array([h3.str_to_int(c) for c in disk], dtype=np.int64)))
    xy = projected(lon, lat)
    nearest = np.argsort(np.hypot(*(xy - xy.mean(axis=0)).T), kind="stable")[:N_CELLS]
    return xy[np.sort(nearest)]


def make_counts(xy: FloatArray) -> FloatArray:
    """Report counts: Poisson(1.2) background, six hot clusters (300-1,500 m), one cold patch."""
    rng = np.random.default_rng(SEED)
    y = rng.poisson(1.2, len(xy)).astype(np.float64)
    span = np.ptp(xy, axis=0)
    low = xy.min(axis=0)
    for _ in range(6):
        centre = low + rng.uniform(0.15, 0.85, 2) * span
        sigma = rng.uniform(300, 1_500)
        d2 = ((xy - centre) ** 2).sum(axis=1)
        y += rng.poisson(8 * np.exp(-d2 / (2 * sigma**2)))
    cold = low + 0.3 * span
    y[np.hypot(*(xy - cold).T) < 2_000] = 0
    return y


def make_study() -> Study:
    """Cells, counts and one weights matrix; esda's W is made from that same matrix."""
    xy = make_cells()
    y = make_counts(xy)
    build_s, w = timed(lambda: distance_band(xy, BAND_M))
    to_w_s, w_pysal = timed(lambda: libpysal.weights.W.from_sparse(w))
    return Study(xy, y, w, w_pysal, build_s, to_w_s)


def run() -> None:
    """Run the Gi* benchmark, print the table and write ``bench-results/hotspots.md``."""
    console = Console(width=None if sys.stdout.isatty() else 140)
    console.print("[dim]making 50,000 cells, counts and the distance band ...[/dim]")
    study = make_study()
    n = len(study.y)
    neighbours = np.diff(study.w.indptr)
    if not (study.w.diagonal() == 1).all():
        raise AssertionError("the shared weights must carry each cell in its own neighbourhood")

    cpu_start, wall_start = CpuSnapshot.take(), time.perf_counter()
    ours_s, ours = best_of(lambda: gi_star(study.y, study.w), REPS, BUDGET_S, warmup=1)
    full_s, full = best_of(lambda: analyse(study.y, study.w), REPS, BUDGET_S, warmup=1)
    esda_s, ref = best_of(
        lambda: esda.G_Local(study.y, study.w_pysal, transform="B", star=True, permutations=0),
        REPS,
        BUDGET_S,
        warmup=1,
    )
    others_s, steal_s = CpuSnapshot.take().others_since(cpu_start)
    timing_s = time.perf_counter() - wall_start

    dz = float(np.max(np.abs(ours.z - ref.Zs)))
    dp = float(np.max(np.abs(ours.p_norm - ref.p_norm)))
    dz_full = float(np.max(np.abs(full["z"].to_numpy() - ref.Zs)))
    ratio = esda_s / ours_s
    hot = int((full["gi_bin"] > 0).sum())
    cold = int((full["gi_bin"] < 0).sum())

    table = ResultTable(
        title=(
            f"Getis-Ord Gi* on {n:,} H3 res-{RES} cells, distance band {BAND_M:,.0f} m "
            f"(mean {neighbours.mean():.1f} neighbours, self included), analytic inference"
        ),
        columns=["method", "seconds", "cells/s (k/s)", "ratio to esda", "max abs Δz", "max abs Δp"],
        right_aligned=["seconds", "cells/s (k/s)", "ratio to esda", "max abs Δz", "max abs Δp"],
    )
    table.add("ours gi_star (z, p)", f"{ours_s:.4f}", f"{n / ours_s / 1e3:,.0f}",
              f"{ratio:.1f}×", f"{dz:.1e}", f"{dp:.1e}")
    table.add("ours analyse (z, p, FDR q, Gi_Bin)", f"{full_s:.4f}", f"{n / full_s / 1e3:,.0f}",
              f"{esda_s / full_s:.1f}×", f"{dz_full:.1e}", "")
    table.add("esda.G_Local(star=True)", f"{esda_s:.4f}", f"{n / esda_s / 1e3:,.0f}", "1.0×",
              "", "")
    ok_speed = ratio >= TARGET_RATIO
    ok_equal = dz <= TOLERANCE and dp <= TOLERANCE
    table.verdicts = [
        ("target met: " if ok_speed else "target missed: ")
        + f"gi_star {ratio:.1f}× esda (target ≥ {TARGET_RATIO:g}×)",
        ("target met: " if ok_equal else "target missed: ")
        + f"max |Δz| {dz:.1e}, max |Δp_norm| {dp:.1e} (target ≤ {TOLERANCE:g})",
    ]
    table.notes = [
        f"one weights matrix: weights.distance_band (scipy CSR, cKDTree pairs, "
        f"{study.build_s:.2f} s, not timed); esda gets libpysal.weights.W.from_sparse of that "
        f"matrix ({study.to_w_s:.2f} s, not timed), whose diagonal of ones makes G_Local use it "
        "as the Gi* weights unchanged; transform='B', permutations=0",
        "Δ are against esda's Zs and p_norm (one-sided normal p); our two-sided p is 2·p_norm",
        f"best of up to {REPS} after one untimed call each; FDR (Benjamini-Hochberg) classes of "
        f"`analyse`: {hot:,} hot and {cold:,} cold cells at 90 % or more",
        f"machine: {os.cpu_count()} CPUs; during the {timing_s:.0f} s of timings other processes "
        f"used {others_s:.1f} CPU s (steal {steal_s:.1f} s); both run on one core "
        "(scipy sparse product)",
    ]
    console.print()
    table.show(console)
    path = table.write_markdown("hotspots")
    console.print(f"[dim]written to {path.relative_to(PROJECT_ROOT)}[/dim]", highlight=False)
