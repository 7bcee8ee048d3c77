"""A synthetic year of reports over a Locator's grids, for the demo and for analysis tests.

Why synthetic: heat maps, Getis-Ord hot spots and emerging hot spots need a year of history
with real structure to show anything. The year has

* a background spread over every grid by households (urban-leaning categories in dense grids,
  rural-leaning ones in sparse grids), with seasons (plum rains and typhoons for flooding,
  straw burning and the Spring Festival for fire, summer for pollution and sanitation);
* eight hot places, Gaussian clusters of 250-800 m: two persistent (a market, a coach
  station), one that moves twice (a night market chased from street to street), one new in
  the last three months (a construction site), one fading out by mid-year (a factory outfall
  drifting downstream), one intensifying (a resettlement estate) and two seasonal, switching on
  and off (a low-lying area in the rains, fields at burning time);
* Beijing-time rhythms: grid workers file on weekdays, residents on WeChat more at weekends;
  peaks at 9-11 h and 14-17 h, few reports at night;
* the closed loop up to the end of the year: accepted minutes after, dispatched ~6 minutes
  after the report (Tongxiang's figure), handled in hours to days by category; some over their
  SLA, escalated one level and/or supervised; ~85 % of old cases evaluated (with a rating),
  a few rejected, the rest and the recent ones open at various steps.

Everything is drawn from one seeded generator, vectorised: the same seed, ``n``, ``end`` and
grids give the identical frame (200,000 reports in about a second).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from geo_service.demo import model as m
from geo_service.demo.places import Geography, Spot, metres_to_deg, place_spots
from geo_service.demo.texts import LANDMARKS, ROADS, describe
from geo_service.errors import InvalidInput
from geo_service.locator import Locator
from geo_service.reports.schemas import CHINA_TZ
from geo_service.reports.taxonomy import CATEGORIES, CATEGORY_BY_CODE, CHANNELS, HANDLING_LEVELS
from geo_service.stats import catalogue

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
ObjectArray = npt.NDArray[np.object_]

DEFAULT_SEED: Final = 20251124
DAYS: Final = 365
HOUR: Final = 3600.0
DAY: Final = 86400.0
COLUMNS: Final = m.COLUMNS
LOOP_STEPS: Final = m.LOOP_STEPS


@dataclass(frozen=True)
class _Calendar:
    """The 365 Beijing days before ``end``: epoch seconds of the first midnight, per-day facts."""

    start: float
    as_of: float  # the end of the year: nothing happens after it
    weekday: IntArray
    doy: FloatArray
    t: FloatArray  # fraction of the year at each day's start

    @classmethod
    def ending(cls, end: dt.date) -> _Calendar:
        first = end - dt.timedelta(days=DAYS)
        start = dt.datetime.combine(first, dt.time(0), tzinfo=CHINA_TZ).timestamp()
        days = [first + dt.timedelta(days=i) for i in range(DAYS)]
        return cls(
            start,
            start + DAYS * DAY,
            np.array([d.weekday() for d in days], dtype=np.int64),
            np.array([d.timetuple().tm_yday - 1 for d in days], dtype=np.float64),
            np.arange(DAYS, dtype=np.float64) / DAYS,
        )

    def day_weight(self, channel: str, weekend: float = 1.0) -> FloatArray:
        """Relative activity of a channel on each day (its week, WeChat's growth)."""
        w = np.asarray(m.WEEKLY[channel])[self.weekday]
        w = np.where(self.weekday >= 5, w * weekend, w)
        if channel == "wechat":  # the mini-program takes over from the hotline during the year
            w = w * (0.8 + 0.4 * self.t)
        return w


@dataclass
class _Draws:
    """Reports drawn so far, as parallel arrays (concatenated at the end)."""

    channel: list[ObjectArray] = field(default_factory=list)
    category: list[ObjectArray] = field(default_factory=list)
    day: list[IntArray] = field(default_factory=list)
    hours: list[ObjectArray] = field(default_factory=list)  # hourly profile name
    x: list[FloatArray] = field(default_factory=list)
    y: list[FloatArray] = field(default_factory=list)
    spot: list[IntArray] = field(default_factory=list)  # -1: background

    def add(self, channel: str, category: ObjectArray, day: IntArray, hours: str,
            xy: tuple[FloatArray, FloatArray], spot: int) -> None:  # fmt: skip
        k = len(day)
        self.channel.append(np.full(k, channel, dtype=object))
        self.category.append(category)
        self.day.append(day)
        self.hours.append(np.full(k, hours, dtype=object))
        self.x.append(xy[0])
        self.y.append(xy[1])
        self.spot.append(np.full(k, spot, dtype=np.int64))


def _choose(rng: np.random.Generator, k: int, weight: npt.ArrayLike) -> IntArray:
    w = np.asarray(weight, dtype=np.float64)
    return rng.choice(len(w), size=k, p=w / w.sum())


def _background(
    rng: np.random.Generator, cal: _Calendar, geo: Geography, k: int, draws: _Draws
) -> None:
    """Reports spread over all grids by households, leaning urban or rural by category."""
    codes = [c.code for c in CATEGORIES]
    shares = np.array([m.CATEGORY_SHARES[c] for c in codes])
    lean = 0.8 * (geo.urban - 0.5) * 2
    channels = _choose(rng, k, [m.CHANNEL_SHARES[c] for c in CHANNELS])
    for ci, channel in enumerate(CHANNELS):
        bias = np.array([m.CHANNEL_BIAS[channel].get(c, 1.0) for c in codes])
        cats = _choose(rng, int((channels == ci).sum()), bias * shares)
        week = cal.day_weight(channel)
        for ki, code in enumerate(codes):
            j = int((cats == ki).sum())
            if j == 0:
                continue
            day = _choose(rng, j, week * m.season(cal.doy, code))
            grid = _choose(rng, j, geo.weight * (1.0 + m.URBAN_AFFINITY.get(code, 0) * lean))
            xy = geo.points_in(rng, grid)
            draws.add(channel, np.full(j, code, dtype=object), day, channel, xy, -1)


def _hot(
    rng: np.random.Generator, cal: _Calendar, spots: list[Spot], n: int, draws: _Draws
) -> None:
    """Reports around the hot places, on the days each is active, around its centre then."""
    for si, spot in enumerate(spots):
        p = spot.place
        rest = 1.0 - p.video
        mix = {"grid_app": 0.45 * rest, "wechat": 0.3 * rest, "hotline_12345": 0.2 * rest,
               "visit": 0.05 * rest, "video_patrol": p.video}  # fmt: skip
        names = list(mix)
        chans = _choose(rng, max(1, round(n * p.share)), list(mix.values()))
        categories = np.array(list(p.categories), dtype=object)
        life = m.intensity(p.kind, cal.t, cal.doy)
        for ci, channel in enumerate(names):
            j = int((chans == ci).sum())
            if j == 0:
                continue
            day = _choose(rng, j, life * cal.day_weight(channel, p.weekend))
            cats = categories[_choose(rng, j, list(p.categories.values()))]
            cx, cy = spot.centre((day + rng.random(j)) / DAYS)
            dx, dy = metres_to_deg(rng.normal(0, p.sigma_m, j), rng.normal(0, p.sigma_m, j), cy)
            draws.add(channel, cats, day, p.hours or channel, (cx + dx, cy + dy), si)


def _times(
    rng: np.random.Generator, cal: _Calendar, day: IntArray, hours: ObjectArray
) -> FloatArray:
    """Epoch seconds: the day, an hour from the profile, a uniform second within it."""
    hour = np.zeros(len(day), dtype=np.int64)
    for name in sorted(set(hours.tolist())):
        sel = hours == name
        hour[sel] = _choose(rng, int(sel.sum()), m.HOURLY[name])
    return cal.start + day * DAY + hour * HOUR + rng.integers(0, 3600, len(day))


def _lognormal(
    rng: np.random.Generator, median: FloatArray | float, sigma: float, k: int
) -> FloatArray:
    return np.asarray(median) * np.exp(sigma * rng.standard_normal(k))


def _loop(
    rng: np.random.Generator,
    cal: _Calendar,
    reported: FloatArray,
    channel: ObjectArray,
    category: ObjectArray,
    hard: npt.NDArray[np.bool_],
) -> dict[str, FloatArray]:
    """Each step's time (epoch seconds, NaN when not taken by the end of the year), and
    ``due`` (the handling deadline, in working time from acceptance) and ``late`` (over it)."""
    k = len(reported)
    top = len(HANDLING_LEVELS) - 1
    rank = np.array([HANDLING_LEVELS.index(CATEGORY_BY_CODE[c].level) for c in category])
    rank = np.minimum(rank + hard.astype(int), top)
    start_min = np.array([m.START_MIN[lvl] for lvl in HANDLING_LEVELS])
    accept = reported + 60 * _lognormal(rng, np.array([m.ACCEPT_MIN[c] for c in channel]), 0.7, k)
    accept = np.round(accept)  # whole seconds, as stored: the deadline is the import's
    due = catalogue.deadlines(category, "handle", accept)  # as acceptance fixes it
    dispatch = accept + 60 * _lognormal(rng, m.DISPATCH_MIN, 0.6, k)
    start = dispatch + 60 * _lognormal(rng, start_min[rank], 0.9, k)
    share = _lognormal(rng, np.array([m.HANDLING_SHARE[c] for c in category]),
                       m.HANDLING_SIGMA, k)  # fmt: skip
    handled = np.maximum(catalogue.deadlines(category, "handle", accept, fraction=share),
                         start + 600)  # fmt: skip
    work = handled - start
    # a share of cases stop at some step (0: accepted .. 5: fed back) and stay there
    stall = np.where(
        rng.random(k) < m.STALL_SHARE,
        _choose(rng, k, m.STALL_STEPS),
        len(m.LOOP_STEPS),
    )
    rejected = rng.random(k) < np.array([m.REJECT_SHARE[c] for c in channel])
    never_handled = stall < 3
    late = ~rejected & ((handled > due) | never_handled) & (due < cal.as_of)
    # overdue below the county: the overdue job takes it one level up, where it restarts
    escalated = np.where(
        late & (rank < top) & (rng.random(k) < m.ESCALATE_SHARE),
        due + rng.uniform(0, 900, k),
        np.nan,
    )
    escalated[
        (escalated >= np.where(never_handled, np.inf, handled)) | (escalated >= cal.as_of)
    ] = np.nan
    restart = ~np.isnan(escalated) & (escalated > start)
    new_start = escalated + 60 * _lognormal(rng, start_min[np.minimum(rank + 1, top)], 0.9, k)
    start = np.where(restart, new_start, start)
    handled = np.where(restart, np.maximum(handled, new_start + 0.3 * work), handled)
    verified = handled + HOUR * _lognormal(rng, 2.0, 0.9, k)
    fed_back = verified + 60 * _lognormal(rng, 25.0, 0.7, k)
    evaluated = fed_back + HOUR * _lognormal(rng, 6.0, 1.0, k)
    steps = np.column_stack([accept, dispatch, start, handled, verified, fed_back, evaluated])
    steps[np.arange(len(m.LOOP_STEPS))[None, :] > stall[:, None]] = np.nan
    steps[rejected] = np.nan
    steps[steps > cal.as_of] = np.nan
    reject_at = np.where(rejected, reported + 60 * _lognormal(rng, 25.0, 0.8, k), np.nan)
    reject_at[reject_at > cal.as_of] = np.nan
    # supervision (督办) presses open cases: overdue ones, and some hard ones early on
    open_until = np.fmin(steps[:, 3], cal.as_of)  # until handled, or the end of the year
    pressed = late & (rng.random(k) < m.SUPERVISE_SHARE)
    sup_late = np.where(pressed, due + HOUR * _lognormal(rng, 4.0, 0.8, k), np.nan)
    sup_hard = np.where(
        hard & (rng.random(k) < m.SUPERVISE_HARD),
        reported + HOUR * _lognormal(rng, 3.0, 0.8, k),
        np.nan,
    )
    supervised = np.fmin(sup_late, sup_hard)
    supervised[(supervised >= open_until) | rejected] = np.nan
    out = {col: steps[:, i] for i, col in enumerate(m.STEP_COLUMNS)}
    out.update(rejected_at=reject_at, escalated_at=escalated, supervised_at=supervised, due=due)
    out["late"] = (np.fmin(steps[:, 3], cal.as_of) > due).astype(np.float64)
    return out


def _statuses(loop: dict[str, FloatArray]) -> ObjectArray:
    status = np.full(len(loop["rejected_at"]), "discovered", dtype=object)
    for col, name in m.LOOP_STEPS:
        status[~np.isnan(loop[col])] = name
    status[~np.isnan(loop["rejected_at"])] = "rejected"
    return status


def _timestamps(seconds: FloatArray) -> pd.Series:
    """Epoch seconds (NaN: none) → Beijing-time timestamps in whole seconds."""
    missing = np.isnan(seconds)
    whole = np.where(missing, 0, np.round(seconds)).astype("int64").astype("datetime64[s]")
    whole[missing] = np.datetime64("NaT")
    return pd.Series(whole.astype("datetime64[us]")).dt.tz_localize("UTC").dt.tz_convert(CHINA_TZ)


def _descriptions(
    rng: np.random.Generator,
    geo: Geography,
    spots: list[Spot],
    category: ObjectArray,
    spot: IntArray,
    xy: tuple[FloatArray, FloatArray],
) -> list[str]:
    """A text per report: its community and a road, or at a hot place the town's landmark
    (with the place's typical complaint more often)."""
    k = len(category)
    grid = geo.grid_of(*xy)
    inside = grid >= 0
    community = np.where(inside, geo.community[np.maximum(grid, 0)], "")
    town = np.where(inside, geo.town[np.maximum(grid, 0)], "")
    road = rng.integers(len(ROADS), size=k)
    template = np.where((spot >= 0) & (rng.random(k) < 0.6), 0, rng.integers(12, size=k))
    count = rng.integers(2, 9, size=k)
    where = [
        f"{t or spots[s].town}{LANDMARKS[spots[s].place.kind]}" if s >= 0 else f"{c}{ROADS[r]}"
        for s, t, c, r in zip(
            spot.tolist(), town.tolist(), community.tolist(), road.tolist(), strict=True
        )
    ]
    return [
        describe(c, t, w, nn)
        for c, t, w, nn in zip(
            category.tolist(), template.tolist(), where, count.tolist(), strict=True
        )
    ]


def synthesize_year(
    locator: Locator,
    *,
    n: int = 200_000,
    seed: int = DEFAULT_SEED,
    end: dt.date | None = None,
    prefix: str = "demo",
) -> pd.DataFrame:
    """``n`` reports over the 365 Beijing days before ``end`` (default: today), by time.

    Columns (:data:`COLUMNS`): ``external_id`` (``<prefix>-000001`` ...), the report fields
    flattened (``channel, category, description, reported_at, lon, lat, crs='wgs84', hard``),
    ``status`` at the end of the year (midnight starting ``end``), the time of each step taken
    (``accepted_at`` ... ``evaluated_at``, ``rejected_at``, ``escalated_at``; NaT if not),
    ``supervised``, ``supervised_at`` and ``rating`` (1-5 on evaluated cases). Times are
    Beijing time in whole seconds; coordinates are WGS84 rounded to 1e-7° (1 cm) so that CSV,
    GeoJSON and GeoParquet all carry them exactly.
    """
    if n < 1:
        raise InvalidInput(f"n must be at least 1, not {n}")
    cal = _Calendar.ending(end or dt.datetime.now(CHINA_TZ).date())
    rng = np.random.default_rng(seed)
    geo = Geography.of(locator)
    spots = place_spots(rng, geo)
    draws = _Draws()
    _hot(rng, cal, spots, n, draws)
    hot = sum(len(d) for d in draws.day)
    _background(rng, cal, geo, max(0, n - hot), draws)
    day = np.concatenate(draws.day)
    reported = _times(rng, cal, day, np.concatenate(draws.hours))
    keep = rng.permutation(len(day))[:n]  # a tiny n: fewer than the hot places' minimum
    order = keep[np.argsort(reported[keep], kind="stable")]
    channel = np.concatenate(draws.channel)[order]
    category = np.concatenate(draws.category)[order]
    spot = np.concatenate(draws.spot)[order]
    reported = reported[order]
    xy = (np.round(np.concatenate(draws.x)[order], 7), np.round(np.concatenate(draws.y)[order], 7))
    hard = rng.random(len(order)) < np.array(
        [m.HARD_SHARE.get(c, m.HARD_DEFAULT) for c in category]
    )
    loop = _loop(rng, cal, reported, channel, category, hard)
    status = _statuses(loop)
    frame = pd.DataFrame(
        {
            "external_id": [f"{prefix}-{i:06d}" for i in range(1, len(order) + 1)],
            "channel": channel,
            "category": category,
            "description": _descriptions(rng, geo, spots, category, spot, xy),
            "reported_at": _timestamps(reported),
            "lon": xy[0],
            "lat": xy[1],
            "crs": "wgs84",
            "hard": hard,
            "status": status,
        }
    )
    for col in (*m.STEP_COLUMNS, "rejected_at", "escalated_at", "supervised_at"):
        frame[col] = _timestamps(loop[col])
    frame["supervised"] = frame["supervised_at"].notna()
    on_time = _choose(rng, len(order), m.RATINGS[0]) + 1
    over = _choose(rng, len(order), m.RATINGS[1]) + 1
    rating = np.where(loop["late"] > 0, over, on_time)
    frame["rating"] = pd.array(np.where(status == "evaluated", rating, 0), dtype="Int8")
    frame.loc[status != "evaluated", "rating"] = pd.NA
    for col in ("external_id", "channel", "category", "description", "crs", "status"):
        frame[col] = frame[col].astype(str)
    return frame[list(COLUMNS)]
