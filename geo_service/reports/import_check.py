"""Checking history rows before they are stored: types, vocabularies, times, loop consistency.

The same rules as intake (``ReportIn``) — known channel and category, a description, a time
not in the future, finite coordinates in a known CRS — plus what a closed loop must satisfy:
step times in loop order, a status matching the last step taken, a rating only on evaluated
cases. Checks are vectorised; a bad row is refused with its row number and every problem it
has, never raised, so one typo does not stop a year of history.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd

from geo_service.coords import rows_to_wgs84
from geo_service.db.schema import CLOSED_STATUSES, REPORT_STATUSES
from geo_service.demo.model import LOOP_STEPS, OTHER_TIMES, STEP_COLUMNS
from geo_service.errors import InvalidInput
from geo_service.reports.placement import base_levels
from geo_service.reports.schemas import CHINA_TZ, FUTURE_SLACK
from geo_service.reports.taxonomy import CATEGORY_BY_CODE, CHANNELS, HANDLING_LEVELS

REQUIRED: Final = ("channel", "category", "description", "reported_at", "lon", "lat")
OPTIONAL: Final = (
    "row",
    "crs",
    "external_id",
    "hard",
    "status",
    *STEP_COLUMNS,
    *OTHER_TIMES,
    "supervised",
    "rating",
    "read_problem",
)
STATUSES: Final = REPORT_STATUSES
KEY_PREFIX: Final = "import:"
MAX_EXTERNAL_ID: Final = 200 - len(KEY_PREFIX)
MAX_DESCRIPTION: Final = 5000
_TRUE: Final = frozenset({"true", "t", "yes", "y", "1", "是"})
_FALSE: Final = frozenset({"false", "f", "no", "n", "0", "否", ""})
# an offset after a time of day ("...09:30:00+08:00", "...T01:30Z"), not a date's "-05"
_ZONE: Final = r"\d\d:\d\d(?::\d\d(?:[.,]\d*)?)?\s*(?:[zZ]|[+-]\d\d(?::?\d\d)?)$"
UTC_US: Final = "datetime64[us, UTC]"
LOCAL_LAYOUTS: Final = ("%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y/%m/%d")


class Refusal(NamedTuple):
    """A row not stored: its number (from 1, as read) and every problem found in it."""

    row: int
    reason: str


@dataclass
class CheckedHistory:
    """Rows that passed, typed: times in UTC, coordinates both as given and in WGS84."""

    frame: pd.DataFrame
    refused: list[Refusal] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)


class _Problems:
    """Problems per row position, kept in the order they were found."""

    def __init__(self) -> None:
        self.by_pos: dict[int, list[str]] = defaultdict(list)

    def add(self, mask: npt.NDArray[np.bool_], message: Any) -> None:
        """Record ``message(pos)`` (or the fixed string) for every position in ``mask``."""
        for pos in np.flatnonzero(mask).tolist():
            self.by_pos[pos].append(message(pos) if callable(message) else message)

    def mask(self, n: int) -> npt.NDArray[np.bool_]:
        out = np.zeros(n, dtype=bool)
        out[list(self.by_pos)] = True
        return out


def _text(col: pd.Series) -> pd.Series:
    """Values as text without surrounding blanks; missing values and blanks are NA."""
    s = col.astype("string").str.strip()
    return s.mask(s == "")


def _objects(text: pd.Series) -> npt.NDArray[np.object_]:
    """The values as a numpy object array, None where missing (so ``==`` compares cleanly)."""
    out = text.to_numpy(dtype=object)
    out[text.isna().to_numpy(dtype=bool)] = None
    return out


def _present(col: pd.Series) -> npt.NDArray[np.bool_]:
    return col.notna().to_numpy(dtype=bool)


def parse_times(col: pd.Series) -> tuple[pd.Series, npt.NDArray[np.bool_]]:
    """UTC timestamps of a column, and where a value was given but is not a date-time.

    Aware values keep their offset; naive ones are Beijing time (the command centre's clock),
    as at intake. ISO 8601 is read in bulk; anything else is tried value by value.
    """
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        return col.dt.tz_convert("UTC").astype(UTC_US), np.zeros(len(col), dtype=bool)
    if pd.api.types.is_datetime64_dtype(col.dtype):
        local = col.dt.tz_localize(CHINA_TZ).dt.tz_convert("UTC")
        return local.astype(UTC_US), np.zeros(len(col), dtype=bool)
    text = _text(col)
    given = _present(text)
    zoned = given & text.str.contains(_ZONE, regex=True, na=False).to_numpy(dtype=bool)
    local = given & ~zoned
    result = pd.Series(pd.NaT, index=col.index, dtype=UTC_US)
    if zoned.any():
        aware = pd.to_datetime(text[zoned], format="ISO8601", utc=True, errors="coerce")
        result[zoned] = aware.astype(UTC_US)
    if local.any():
        naive = pd.to_datetime(text[local], format="ISO8601", errors="coerce")
        result[local] = naive.dt.tz_localize(CHINA_TZ).dt.tz_convert("UTC").astype(UTC_US)
    for layout in LOCAL_LAYOUTS:  # spreadsheets' spellings, still in bulk
        left = local & result.isna().to_numpy(dtype=bool)
        if not left.any():
            break
        naive = pd.to_datetime(text[left], format=layout, errors="coerce")
        result[left] = naive.dt.tz_localize(CHINA_TZ).dt.tz_convert("UTC").astype(UTC_US)
    for pos in np.flatnonzero(given & result.isna().to_numpy(dtype=bool)).tolist():
        one = _one_time(str(text.iloc[pos]))
        if one is not None:
            result.iloc[pos] = one
    return result, given & result.isna().to_numpy(dtype=bool)


def _one_time(value: str) -> pd.Timestamp | None:
    """A date-time in any other spelling pandas reads, or None (words like "now" too)."""
    if not any(ch.isdigit() for ch in value):
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError):
        return None
    if pd.isna(ts):
        return None
    if ts.tzinfo is None:
        ts = ts.tz_localize(CHINA_TZ)
    return ts.tz_convert("UTC")


def _booleans(col: pd.Series, name: str, problems: _Problems) -> npt.NDArray[np.bool_]:
    if pd.api.types.is_bool_dtype(col.dtype) and not col.isna().any():
        return col.to_numpy(dtype=bool)
    text = _text(col).str.lower()
    true = text.isin(_TRUE).to_numpy(dtype=bool)
    bad = ~(true | text.isin(_FALSE).to_numpy(dtype=bool) | text.isna().to_numpy(dtype=bool))
    raw = _objects(text)
    problems.add(bad, lambda i: f"{name} {raw[i]!r} is not true/false")
    return true


def _numbers(col: pd.Series, name: str, problems: _Problems) -> npt.NDArray[np.float64]:
    if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
        values = col.to_numpy(dtype=np.float64, na_value=np.nan)
        problems.add(np.isnan(values), f"{name} is missing")
        return values
    text = _text(col)
    values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    given = _present(text)
    raw = _objects(text)
    problems.add(given & np.isnan(values), lambda i: f"{name} {raw[i]!r} is not a number")
    problems.add(~given, f"{name} is missing")
    return values


def _vocabulary(
    col: pd.Series, name: str, allowed: Any, problems: _Problems
) -> npt.NDArray[np.object_]:
    text = _text(col)
    values = _objects(text)
    problems.add(~_present(text), f"{name} is missing")
    unknown = _present(text) & ~text.isin(list(allowed)).to_numpy(dtype=bool)
    choices = ", ".join(sorted(allowed))
    problems.add(unknown, lambda i: f"unknown {name} {values[i]!r}: use one of {choices}")
    return values


def _coordinates(
    lon: npt.NDArray[np.float64],
    lat: npt.NDArray[np.float64],
    crs_col: pd.Series | None,
    default_crs: str,
    problems: _Problems,
) -> tuple[npt.NDArray[np.object_], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Canonical CRS names and WGS84 lon/lat (NaN where refused), converted as intake does
    (:func:`~geo_service.coords.rows_to_wgs84`); rows without numbers are left alone."""
    n = len(lon)
    crs_raw = (
        _objects(_text(crs_col).fillna(default_crs))
        if crs_col is not None
        else np.full(n, default_crs, dtype=object)
    )
    converted = rows_to_wgs84(lon, lat, crs_raw, convert=~(np.isnan(lon) | np.isnan(lat)))
    unknown = np.zeros(n, dtype=bool)
    unknown[list(converted.crs_errors)] = True
    problems.add(unknown, converted.crs_errors.__getitem__)
    refused = np.zeros(n, dtype=bool)
    refused[list(converted.point_errors)] = True
    problems.add(
        refused,
        lambda i: (
            f"invalid coordinates (lon={float(lon[i])}, lat={float(lat[i])}) in {converted.crs[i]}"
        ),
    )
    return converted.crs, converted.lon, converted.lat


def _content_keys(frame: pd.DataFrame) -> npt.NDArray[np.object_]:
    """A stable key for rows without ``external_id``: a digest of what the report says."""
    parts = frame[["channel", "category", "description", "reported_at", "lon0", "lat0", "crs"]]
    out = np.empty(len(parts), dtype=object)
    for i, row in enumerate(parts.itertuples(index=False)):
        text = "\x1f".join(str(v) for v in row)
        out[i] = "sha1:" + hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()
    return out


def check_history(
    frame: pd.DataFrame, *, now: dt.datetime | None = None, default_crs: str = "wgs84"
) -> CheckedHistory:
    """Typed, valid rows of a history frame and a refusal (row number, reasons) for the rest.

    ``default_crs`` is the CRS of rows without a ``crs`` value. Raises :class:`InvalidInput`
    only for what no row can survive: a required column missing.
    """
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise InvalidInput(
            f"history has no column {', '.join(repr(c) for c in missing)}: "
            f"it needs {', '.join(REQUIRED)}"
        )
    ignored = [str(c) for c in frame.columns if c not in REQUIRED and c not in OPTIONAL]
    frame = frame.reset_index(drop=True)
    n = len(frame)
    rows = (
        pd.to_numeric(frame["row"], errors="coerce").fillna(-1).to_numpy(dtype=np.int64)
        if "row" in frame
        else np.arange(1, n + 1, dtype=np.int64)
    )
    clock = pd.Timestamp(now or dt.datetime.now(dt.UTC)).tz_convert("UTC") + FUTURE_SLACK
    p = _Problems()
    if "read_problem" in frame:
        read = _text(frame["read_problem"])
        p.add(_present(read), lambda i: str(read.iloc[i]))
    out = pd.DataFrame({"row": rows})
    out["channel"] = _vocabulary(frame["channel"], "channel", CHANNELS, p)
    out["category"] = _vocabulary(frame["category"], "category", CATEGORY_BY_CODE, p)
    desc = _text(frame["description"])
    p.add(~_present(desc), "description is empty")
    lengths = desc.str.len().fillna(0).to_numpy()
    p.add(lengths > MAX_DESCRIPTION, f"description is longer than {MAX_DESCRIPTION} characters")
    p.add(
        desc.str.contains("\x00", regex=False, na=False).to_numpy(dtype=bool),
        "description has a NUL character",
    )
    out["description"] = _objects(desc)
    times = _times(frame, clock, p)
    lon0 = _numbers(frame["lon"], "lon", p)
    lat0 = _numbers(frame["lat"], "lat", p)
    crs, lon, lat = _coordinates(lon0, lat0, frame.get("crs"), default_crs, p)
    out["reported_at"] = times["reported_at"]
    out["lon0"], out["lat0"], out["crs"], out["lon"], out["lat"] = lon0, lat0, crs, lon, lat
    no = np.zeros(n, dtype=bool)
    out["hard"] = _booleans(frame["hard"], "hard", p) if "hard" in frame else no
    _check_loop(frame, times, out, p)
    for col in (*STEP_COLUMNS, *OTHER_TIMES):
        out[col] = times[col]
    flagged = _booleans(frame["supervised"], "supervised", p) if "supervised" in frame else no
    out["supervised"] = flagged | _present(times["supervised_at"])
    _check_keys(frame, out, p)
    bad = p.mask(n)
    refused = [Refusal(int(rows[i]), "; ".join(p.by_pos[i])) for i in sorted(p.by_pos)]
    return CheckedHistory(out[~bad].reset_index(drop=True), refused, ignored)


def _times(frame: pd.DataFrame, clock: pd.Timestamp, p: _Problems) -> dict[str, pd.Series]:
    """Every time column in UTC (NaT where absent); unreadable and future values refused."""
    times: dict[str, pd.Series] = {}
    for col in ("reported_at", *STEP_COLUMNS, *OTHER_TIMES):
        if col not in frame:
            times[col] = pd.Series(pd.NaT, index=frame.index, dtype=UTC_US)
            continue
        parsed, bad = parse_times(frame[col])
        raw = frame[col]
        p.add(bad, lambda i, c=col, r=raw: f"{c} {r.iloc[i]!r} is not a date-time")
        future = (parsed > clock).fillna(False).to_numpy(dtype=bool)
        p.add(future, lambda i, c=col, t=parsed: f"{c} {t.iloc[i].isoformat()} is in the future")
        times[col] = parsed
        if col == "reported_at":
            p.add(~_present(parsed) & ~bad, "reported_at is missing")
    return times


def _check_loop(
    frame: pd.DataFrame, times: dict[str, pd.Series], out: pd.DataFrame, p: _Problems
) -> None:
    """Steps in loop order and not before the report; status and rating agree with them."""
    n = len(frame)
    earliest = times["reported_at"] - FUTURE_SLACK  # a phone's clock may run a little fast
    for col in (*STEP_COLUMNS, *OTHER_TIMES):
        early = (times[col] < earliest).fillna(False).to_numpy(dtype=bool)
        p.add(early, f"{col} is before reported_at")
    latest = pd.Series(pd.NaT, index=frame.index, dtype=UTC_US)
    latest_name = np.full(n, "", dtype=object)
    derived = np.full(n, "discovered", dtype=object)
    for col, status in LOOP_STEPS:
        t = times[col]
        given = _present(t)
        before = given & (t < latest).fillna(False).to_numpy(dtype=bool)
        names = latest_name.copy()
        p.add(before, lambda i, c=col, nm=names: f"{c} is before {nm[i]}")
        later = given & ~before
        latest = latest.where(~later, t)
        latest_name[later] = col
        derived[given] = status
    rejected = _present(times["rejected_at"])
    p.add(rejected & (derived != "discovered"), "a rejected case has no other loop steps")
    derived[rejected] = "rejected"
    _check_status(frame, derived, p)
    out["status"] = derived
    closed = times["evaluated_at"].where(derived == "evaluated", times["rejected_at"])
    out["closed_at"] = closed.where(np.isin(derived, CLOSED_STATUSES))
    moved = latest.where(_present(latest), times["reported_at"])
    out["status_at"] = moved.where(~rejected, times["rejected_at"])
    out["rating"] = _rating(frame, derived, p)
    escalated = _present(times["escalated_at"])
    p.add(escalated & rejected, "a rejected case cannot be escalated")
    known = out["category"].isin(list(CATEGORY_BY_CODE)).to_numpy(dtype=bool)
    county = np.zeros(n, dtype=bool)
    county[known] = (
        base_levels(out["category"][known].tolist(), out["hard"][known].tolist())
        == (HANDLING_LEVELS[-1])
    )
    p.add(
        escalated & county,
        "escalated_at is given but the case starts at county level: it cannot go higher",
    )


def _check_status(frame: pd.DataFrame, derived: npt.NDArray[np.object_], p: _Problems) -> None:
    if "status" not in frame:
        return
    text = _text(frame["status"])
    status = _objects(text)
    given = _present(text)
    known = text.isin(list(STATUSES)).to_numpy(dtype=bool)
    p.add(
        given & ~known, lambda i: f"unknown status {status[i]!r}: use one of {', '.join(STATUSES)}"
    )
    p.add(
        known & (status != derived),
        lambda i: f"status {status[i]!r} does not match the step times (they reach {derived[i]!r})",
    )


def _rating(frame: pd.DataFrame, derived: npt.NDArray[np.object_], p: _Problems) -> pd.Series:
    """Ratings 1-5 on evaluated cases (missing allowed: not every resident rates)."""
    n = len(frame)
    if "rating" not in frame:
        return pd.Series(pd.array([pd.NA] * n, dtype="Int16"))
    text = _text(frame["rating"])
    given = _present(text)
    value = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = given & ~np.isin(value, (1.0, 2.0, 3.0, 4.0, 5.0))
    raw = _objects(text)
    p.add(bad, lambda i: f"rating {raw[i]!r} is not 1-5")
    p.add(given & ~bad & (derived != "evaluated"), "a rating is given only to evaluated cases")
    ok = given & ~bad
    out = pd.array(np.where(ok, value, 0).astype(np.int16), dtype="Int16")
    out[~ok] = pd.NA
    return pd.Series(out)


def _check_keys(frame: pd.DataFrame, out: pd.DataFrame, p: _Problems) -> None:
    """``import:<external_id>`` (or a digest of the content); a repeated id is refused."""
    n = len(frame)
    ext = (
        _objects(_text(frame["external_id"]))
        if "external_id" in frame
        else np.full(n, np.nan, dtype=object)
    )
    has = np.array([isinstance(e, str) for e in ext], dtype=bool)
    long = np.array([isinstance(e, str) and len(e) > MAX_EXTERNAL_ID for e in ext], dtype=bool)
    p.add(long, f"external_id is longer than {MAX_EXTERNAL_ID} characters")
    keys = ext.copy()
    if (~has).any():
        keys[~has] = _content_keys(out.loc[~has])
    repeated = pd.Series(keys).duplicated(keep="first").to_numpy(dtype=bool)
    if repeated.any():
        first: dict[Any, int] = {}
        for i, k in enumerate(keys.tolist()):
            first.setdefault(k, i)
        rows = out["row"].to_numpy()
        p.add(
            repeated,
            lambda i: (
                f"external_id {ext[i]!r} repeats row {rows[first[keys[i]]]}"
                if has[i]
                else f"the same report as row {rows[first[keys[i]]]}"
            ),
        )
    out["key"] = [KEY_PREFIX + str(k) for k in keys.tolist()]
