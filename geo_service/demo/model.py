"""The synthetic year's model: column layout, shares, rhythms, step times and hot places.

Numbers are plausible for a Yangtze-delta district (Xiuzhou): grid workers' app files most,
WeChat grows over the year, the hotline takes disputes and thefts, cameras spot street
vending; a case is dispatched ~6 minutes after it is reported (Tongxiang's figure) and
handled well within its time limit (the catalogue's, in working time) in most cases: a few
per cent run over, fewer than one in two hundred stalls, as at real centres (Suzhou's
12345 closes 99.3 %).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

# the loop steps a history row carries a time for, in loop order, with the status each reaches
LOOP_STEPS: Final = (
    ("accepted_at", "accepted"),
    ("dispatched_at", "dispatched"),
    ("handling_at", "handling"),
    ("handled_at", "handled"),
    ("verified_at", "verified"),
    ("fed_back_at", "fed_back"),
    ("evaluated_at", "evaluated"),
)
STEP_COLUMNS: Final = tuple(c for c, _ in LOOP_STEPS)
OTHER_TIMES: Final = ("rejected_at", "escalated_at", "supervised_at")
COLUMNS: Final = (
    "external_id", "channel", "category", "description", "reported_at", "lon", "lat", "crs",
    "hard", "status", *STEP_COLUMNS, "rejected_at", "escalated_at", "supervised",
    "supervised_at", "rating",
)  # fmt: skip

CHANNEL_SHARES: Final = {
    "grid_app": 0.46, "wechat": 0.22, "hotline_12345": 0.17, "video_patrol": 0.09, "visit": 0.06,
}  # fmt: skip
# fmt: off
WEEKLY: Final = {  # Monday .. Sunday
    "grid_app":      (1.0, 1.0, 1.0, 1.0, 0.95, 0.42, 0.33),
    "wechat":        (1.0, 0.95, 0.95, 0.95, 1.0, 1.35, 1.4),
    "hotline_12345": (1.05, 1.0, 1.0, 1.0, 1.0, 0.85, 0.8),
    "video_patrol":  (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0),
    "visit":         (1.0, 1.0, 1.0, 1.0, 0.9, 0.2, 0.1),
}
HOURLY: Final = {  # 0 .. 23 h, Beijing time
    "grid_app":      (0.2, 0.1, 0.1, 0.1, 0.1, 0.3, 1, 3, 7, 10, 10, 8,
                      4, 5, 8, 9, 9, 7, 3, 1.5, 1, 0.6, 0.4, 0.3),
    "wechat":        (0.5, 0.2, 0.1, 0.1, 0.1, 0.2, 1, 3, 5, 7, 8, 7,
                      6, 5, 6, 6, 6, 6, 6, 7, 7, 5, 2.5, 1.2),
    "hotline_12345": (0.4, 0.2, 0.2, 0.1, 0.1, 0.3, 1, 3, 7, 9, 9, 7,
                      4, 5, 8, 8, 7, 6, 4, 3, 2.5, 2, 1, 0.6),
    "video_patrol":  (0.4, 0.3, 0.2, 0.2, 0.2, 0.5, 2, 4, 6, 7, 7, 6,
                      5, 5, 6, 6, 6, 6, 5, 4, 3, 2, 1, 0.6),
    "visit":         (0, 0, 0, 0, 0, 0, 0.2, 1, 5, 9, 9, 5,
                      1, 3, 8, 9, 7, 3, 0.5, 0.2, 0, 0, 0, 0),
    # night markets: the evening, closing before the night
    "evening":       (0.1, 0, 0, 0, 0, 0, 0.2, 0.5, 1, 1, 1, 1,
                      1, 1, 1, 1.5, 2.5, 4, 7, 9, 8, 5, 1, 0.3),
}
CATEGORY_SHARES: Final = {
    "sanitation": 0.20, "road_occupation": 0.16, "safety_hazard": 0.14, "facility_damage": 0.10,
    "neighbour_dispute": 0.08, "illegal_construction": 0.07, "other": 0.06,
    "river_pollution": 0.05, "fire_risk": 0.05, "theft": 0.03, "housing_safety": 0.03,
    "flood_risk": 0.03,
}
# what each channel sees more (or less) of than the shares above
CHANNEL_BIAS: Final[dict[str, dict[str, float]]] = {
    "grid_app": {},
    "wechat": {"sanitation": 1.3, "facility_damage": 1.5, "road_occupation": 1.2,
               "neighbour_dispute": 1.2},
    "hotline_12345": {"neighbour_dispute": 2.5, "theft": 2.0, "other": 2.0,
                      "facility_damage": 1.3, "road_occupation": 0.7},
    "video_patrol": {"road_occupation": 3.0, "sanitation": 1.5, "fire_risk": 1.5,
                     "river_pollution": 1.2, "neighbour_dispute": 0.0, "theft": 0.5,
                     "housing_safety": 0.2, "other": 0.3},
    "visit": {"neighbour_dispute": 3.0, "housing_safety": 2.0, "safety_hazard": 1.5,
              "other": 1.5},
}
# +1: more in dense (urban) grids, -1: more in sparse (rural) ones
URBAN_AFFINITY: Final = {
    "road_occupation": 1, "theft": 1, "neighbour_dispute": 1, "facility_damage": 1,
    "sanitation": 0.5, "river_pollution": -1, "illegal_construction": -1, "fire_risk": -1,
    "flood_risk": -0.5, "housing_safety": -0.5,
}
# seasons: (day of year of a peak, width in days, height) added to a base of 1
SEASONS: Final[dict[str, tuple[tuple[int, float, float], ...]]] = {
    "flood_risk": ((171, 15, 4.0), (237, 20, 2.5)),  # plum rains mid-June, typhoons late August
    "fire_risk": ((32, 10, 1.2), (156, 10, 1.5), (298, 12, 0.8)),  # festival, straw burning
    "river_pollution": ((196, 40, 0.8),),
    "sanitation": ((200, 45, 0.4),),
    "road_occupation": ((30, 10, 0.3),),  # markets before the Spring Festival
    "theft": ((25, 15, 0.4),),
}
# loop step delays: medians of log-normal draws
ACCEPT_MIN: Final = {"grid_app": 1.5, "wechat": 4.0, "hotline_12345": 3.0,
                     "video_patrol": 2.0, "visit": 2.0}
DISPATCH_MIN: Final = 3.5
START_MIN: Final = {"community": 25.0, "town": 70.0, "county": 180.0}
# handling takes this share of the category's handling limit (catalogue; working time for
# normal cases), log-normal: the median case uses about a third of its time, ~4 % run over
HANDLING_SHARE: Final = {
    "safety_hazard": 0.30, "illegal_construction": 0.45, "river_pollution": 0.40,
    "road_occupation": 0.30, "facility_damage": 0.35, "neighbour_dispute": 0.40,
    "fire_risk": 0.30, "theft": 0.35, "sanitation": 0.30, "housing_safety": 0.40,
    "flood_risk": 0.35, "other": 0.30,
}
HANDLING_SIGMA: Final = 0.55
REJECT_SHARE: Final = {"grid_app": 0.02, "wechat": 0.06, "hotline_12345": 0.05,
                       "video_patrol": 0.08, "visit": 0.02}
HARD_SHARE: Final = {"illegal_construction": 0.08, "river_pollution": 0.08,
                     "housing_safety": 0.08}
# ratings 1..5: on time, and for cases that ran over their SLA
RATINGS: Final = ((0.02, 0.04, 0.09, 0.25, 0.60), (0.06, 0.10, 0.20, 0.30, 0.34))
# fmt: on
HARD_DEFAULT: Final = 0.02
STALL_SHARE: Final = 0.004  # cases that stop at some step (long-running, never rated)
STALL_STEPS: Final = (0.05, 0.10, 0.45, 0.10, 0.10, 0.20)  # where: accepted .. fed_back
ESCALATE_SHARE: Final = 0.7  # of overdue cases below the county
SUPERVISE_SHARE: Final = 0.5  # of overdue cases
SUPERVISE_HARD: Final = 0.3  # of hard cases, early on


@dataclass(frozen=True)
class HotPlace:
    """A cluster of reports: what, how wide, how many, where, and how it lives over the year."""

    kind: str
    categories: dict[str, float]
    sigma_m: float
    share: float  # of all reports
    setting: str  # urban | rural
    moves: int = 0  # jumps to a new street over the year
    drift_m: float = 0.0  # continuous drift while active
    weekend: float = 1.0
    hours: str | None = None  # an hourly profile of its own
    video: float = 0.12  # share filed by video patrol


HOT_PLACES: Final = (
    # persistent
    HotPlace("market", {"road_occupation": 0.6, "sanitation": 0.3, "other": 0.1}, 300, 0.05,
             "urban", weekend=1.5, video=0.25),
    HotPlace("station", {"theft": 0.6, "road_occupation": 0.25, "other": 0.15}, 250, 0.025,
             "urban"),
    # chased from street to street twice
    HotPlace("night_market", {"road_occupation": 0.7, "sanitation": 0.2,
                              "neighbour_dispute": 0.1}, 250, 0.04, "urban", moves=2,
             weekend=1.3, hours="evening", video=0.25),
    # new in the last three months
    HotPlace("construction", {"illegal_construction": 0.5, "safety_hazard": 0.3,
                              "sanitation": 0.2}, 400, 0.03, "rural"),
    # fading out by mid-year, drifting downstream
    HotPlace("factory", {"river_pollution": 0.7, "sanitation": 0.2, "other": 0.1}, 600, 0.035,
             "rural", drift_m=2000),
    # intensifying
    HotPlace("estate", {"neighbour_dispute": 0.4, "facility_damage": 0.35,
                        "housing_safety": 0.25}, 350, 0.04, "urban"),
    # seasonal, switching on and off
    HotPlace("lowland", {"flood_risk": 0.7, "housing_safety": 0.15, "facility_damage": 0.15},
             800, 0.025, "rural"),
    HotPlace("fields", {"fire_risk": 0.8, "safety_hazard": 0.2}, 800, 0.025, "rural"),
)  # fmt: skip


def bump(doy: FloatArray, peak: float, width: float) -> FloatArray:
    """A Gaussian bump around day-of-year ``peak``, wrapping over New Year."""
    d = np.abs(doy - peak)
    d = np.minimum(d, 365.0 - d)
    return np.exp(-0.5 * (d / width) ** 2)


def intensity(kind: str, t: FloatArray, doy: FloatArray) -> FloatArray:
    """How active a hot place is each day (``t``: fraction of the year, ``doy``: day of year)."""
    ones = np.ones_like(t)
    table: dict[str, Callable[[], FloatArray]] = {
        "market": lambda: ones,
        "station": lambda: 1.0 + 1.2 * bump(doy, 25, 12),
        "night_market": lambda: ones,
        "construction": lambda: np.clip((t - 0.72) / 0.08, 0.0, 1.0),
        "factory": lambda: np.where(t < 0.5, np.clip(1.0 - t / 0.5, 0.0, 1.0) ** 0.8, 0.0),
        "estate": lambda: 0.1 + 1.9 * t**1.5,
        "lowland": lambda: bump(doy, 171, 15) + 0.8 * bump(doy, 237, 18),
        "fields": lambda: bump(doy, 32, 8) + bump(doy, 156, 10) + 0.8 * bump(doy, 298, 10),
    }
    return table[kind]()


def season(doy: FloatArray, category: str) -> FloatArray:
    """The seasonal factor of a category on each day of year (1 where it has no season)."""
    s = np.ones_like(doy)
    for peak, width, height in SEASONS.get(category, ()):
        s = s + height * bump(doy, peak, width)
    return s
