"""Area codes and numbering order: the one place that fixes how areas are coded and numbered.

Codes follow the national pattern: a 6-digit county/district code (GB/T 2260), then 3 digits per
level below it (GB/T 10114 style). Town-level digits say what the unit is: subdistricts (街道)
001-099, towns (镇) 100-199, townships (乡) 200-399. Community (村/社区) and grid (网格) digits are
sequence numbers 001-999 given in reading order (:func:`reading_order`).

=========  ======  ===================  ====================
level      digits  example              parent
=========  ======  ===================  ====================
district   6       ``330411``           (none)
town       9       ``330411100``        district
community  12      ``330411100001``     town
grid       15      ``330411100001001``  community
=========  ======  ===================  ====================
"""

from __future__ import annotations

import re
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from geo_service.db.schema import AREA_LEVELS, AreaLevel

Level = AreaLevel
TownKind = Literal["subdistrict", "town", "township"]

LEVELS: Final = AREA_LEVELS
CODE_LENGTH: Final[dict[Level, int]] = {"district": 6, "town": 9, "community": 12, "grid": 15}
TOWN_KINDS: Final[dict[TownKind, tuple[int, int]]] = {
    "subdistrict": (1, 99),
    "town": (100, 199),
    "township": (200, 399),
}

# GB/T 2260 province prefixes; city and county digits are never "00" for a county-level code.
_DISTRICT = r"(?:1[1-5]|2[1-3]|3[1-7]|4[1-6]|5[0-4]|6[1-5]|71|81|82)(?!00)[0-9]{2}(?!00)[0-9]{2}"
_TOWN = r"(?!000)[0-3][0-9]{2}"  # 001-399
_SEQ = r"(?!000)[0-9]{3}"  # 001-999
_PATTERNS: Final[dict[str, re.Pattern[str]]] = {
    "district": re.compile(_DISTRICT),
    "town": re.compile(_DISTRICT + _TOWN),
    "community": re.compile(_DISTRICT + _TOWN + _SEQ),
    "grid": re.compile(_DISTRICT + _TOWN + _SEQ + _SEQ),
}


def parent_level(level: str) -> Level | None:
    """Level one step up from ``level`` (None for a district), so callers never hard-code it."""
    for i, known in enumerate(LEVELS):
        if known == level:
            return LEVELS[i - 1] if i > 0 else None
    raise ValueError(f"unknown level {level!r}: use one of {', '.join(LEVELS)}")


def is_valid_code(code: object, level: str) -> bool:
    """Whether ``code`` is a well-formed ``level`` code (digit count and per-level digit ranges)."""
    pattern = _PATTERNS.get(level)
    return isinstance(code, str) and pattern is not None and pattern.fullmatch(code) is not None


def level_of(code: object) -> Level | None:
    """Level a well-formed code belongs to (None when it is not a code), read off its length."""
    for level in LEVELS:
        if is_valid_code(code, level):
            return level
    return None


def parent_of(code: str) -> str | None:
    """Code of the parent area (the code minus its last 3 digits); None for a district code."""
    level = level_of(code)
    if level is None:
        raise ValueError(f"{code!r} is not an area code of the national pattern")
    return code[:-3] if level != "district" else None


def town_kind(code: str) -> TownKind:
    """Whether a town-level code is a subdistrict, town or township, from its 3 town digits."""
    if not is_valid_code(code, "town"):
        raise ValueError(f"{code!r} is not a 9-digit town-level code")
    number = int(code[6:9])
    return next(kind for kind, (lo, hi) in TOWN_KINDS.items() if lo <= number <= hi)


def child_code(parent_code: str, seq: int, level: str, *, kind: TownKind | None = None) -> str:
    """Code of the ``seq``-th (1-based) child at ``level`` under ``parent_code``, range-checked.

    For ``level="town"`` with ``kind`` given, ``seq`` counts within that kind (town 1 → ``100``);
    without ``kind`` it is the 3-digit number itself (1-399).
    """
    parent = parent_level(level)
    if parent is None:
        raise ValueError("a district code is not derived from a parent: it is its GB/T 2260 code")
    if not is_valid_code(parent_code, parent):
        raise ValueError(f"parent {parent_code!r} is not a valid {parent} code")
    if isinstance(seq, bool) or not isinstance(seq, int | np.integer):
        raise TypeError(f"seq must be an int, not {type(seq).__name__}")
    if kind is not None and level != "town":
        raise ValueError(f"kind applies to town-level codes only, not to {level!r}")
    lo, hi = TOWN_KINDS[kind] if kind is not None else ((1, 399) if level == "town" else (1, 999))
    number = lo + int(seq) - 1 if kind is not None else int(seq)
    if not lo <= number <= hi:
        what = f"{kind} " if kind else ""
        raise ValueError(f"{what}{level} number {number} is outside {lo:03d}-{hi:03d}")
    return f"{parent_code}{number:03d}"


def band_for(areas: npt.ArrayLike) -> float:
    """Band height for :func:`reading_order`: the median side (√area) of the siblings.

    Siblings of similar size then fall about one row per band. ``areas`` are in the square of the
    coordinate unit (m² for metric centroids); non-positive and non-finite values are ignored.
    """
    a = np.asarray(areas, dtype=np.float64).reshape(-1)
    a = a[np.isfinite(a) & (a > 0)]
    if a.size == 0:
        raise ValueError("band_for needs at least one positive, finite area")
    return float(np.median(np.sqrt(a)))


def reading_order(xs: npt.ArrayLike, ys: npt.ArrayLike, band: float) -> npt.NDArray[np.intp]:
    """Indices sorting features north→south, then west→east, as text is read: the numbering order.

    Centroids fall into horizontal bands of height ``band`` counted down from the northernmost
    centroid (band index = floor((max(ys) - y) / band)); bands go north to south, and within a
    band features go by increasing x (ties: northern first, then input order). Use metric
    coordinates (a local projection) so ``band`` means the same east-west and north-south.
    """
    x = np.asarray(xs, dtype=np.float64).reshape(-1)
    y = np.asarray(ys, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"xs and ys differ in length ({x.size} vs {y.size})")
    if not (np.isfinite(band) and band > 0):
        raise ValueError(f"band must be a positive finite number, not {band!r}")
    if x.size == 0:
        return np.empty(0, dtype=np.intp)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("centroid coordinates must be finite")
    rows = np.floor((y.max() - y) / band)
    order = np.lexsort((np.arange(x.size), -y, x, rows))
    return order.astype(np.intp, copy=False)
