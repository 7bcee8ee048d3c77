"""Workload balance: reports per grid worker (one worker per grid), its mean, max and spread."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt


def per_grid(grid_index: npt.NDArray[np.int32], n_grids: int) -> npt.NDArray[np.int64]:
    """How many of the located points fall in each grid (points outside coverage left out)."""
    inside = grid_index[grid_index >= 0]
    return np.bincount(inside, minlength=n_grids).astype(np.int64)


def cv(values: npt.ArrayLike) -> float | None:
    """Coefficient of variation (population standard deviation / mean); None when undefined."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0 or v.mean() == 0:
        return None
    return float(v.std() / v.mean())


def balance(counts: npt.ArrayLike, codes: npt.ArrayLike) -> dict[str, Any]:
    """Mean, max (and which grid), min, 90th percentile and CV of a per-grid count.

    Every grid counts, those with nothing included: an idle grid worker is part of the imbalance.
    """
    c = np.asarray(counts, dtype=np.float64)
    names = np.asarray(codes, dtype=object)
    if len(c) == 0:
        return {
            "grids": 0,
            "total": 0,
            "mean": None,
            "max": None,
            "max_grid": None,
            "min": None,
            "p90": None,
            "cv": None,
        }
    top = int(np.argmax(c))
    spread = cv(c)
    return {
        "grids": len(c),
        "total": int(c.sum()),
        "mean": round(float(c.mean()), 3),
        "max": int(c[top]),
        "max_grid": str(names[top]),
        "min": int(c.min()),
        "p90": round(float(np.percentile(c, 90)), 3),
        "cv": None if spread is None else round(spread, 4),
    }
