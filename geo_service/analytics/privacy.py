"""Small-count suppression for public layers: a feature drawn from 1 to k − 1 reports could
point at a person, so public layers drop such cells (or blank such areas' figures).

Features with no report at all carry nothing about anyone and stay (a cold spot is mostly
zeros). Staff roles may ask for any k, down to 0 (no suppression).
"""

from __future__ import annotations

from typing import Final

import geopandas as gpd
import numpy as np
import numpy.typing as npt

DEFAULT_K: Final = 5
STAFF_ROLES: Final = frozenset({"operator", "planner", "admin"})
# columns that describe the area itself, never blanked
IDENTITY_COLUMNS: Final = frozenset(
    {"cell", "code", "name", "level", "parent_code", "households", "population", "geometry"}
)


def small(counts: npt.ArrayLike, k: int) -> npt.NDArray[np.bool_]:
    """Which counts are suppressed under threshold ``k``: 1 ≤ n < k."""
    n = np.asarray(counts)
    return (n >= 1) & (n < k)


def suppress(
    frame: gpd.GeoDataFrame, k: int, *, count: str = "n", drop: bool = True
) -> gpd.GeoDataFrame:
    """``frame`` without the features counted from 1 to k − 1 reports (``drop``), or with
    every figure of those features blanked and ``suppressed`` = True (areas keep their shape).
    ``attrs["suppressed"]`` says how many; k ≤ 1 changes nothing."""
    hidden = small(frame[count].to_numpy(), k) if k > 1 else np.zeros(len(frame), dtype=bool)
    if drop:
        out = frame[~hidden].reset_index(drop=True)
    else:
        out = frame.copy()
        figures = [c for c in out.columns if c not in IDENTITY_COLUMNS]
        out[figures] = out[figures].astype(object)
        out.loc[hidden, figures] = None
        out["suppressed"] = hidden
    out.attrs = {**frame.attrs, "k": k, "suppressed": int(hidden.sum())}
    return out
