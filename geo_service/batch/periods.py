"""Beijing-time days, weeks and months of report times, as column arrays.

One definition with the service: a report's day is its ``reported_at`` in Asia/Shanghai
(``heat_rollup.day``), a week starts on Monday and a month on its first day (the emerging
hot-spot slices). Times without a zone are Beijing time, as the history import reads them.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa

from geo_service.errors import InvalidInput

LOCAL_TZ: Final = "Asia/Shanghai"
PERIODS: Final = ("day", "week", "month")
NO_DAY: Final = np.datetime64("NaT", "D")
Days = npt.NDArray[np.datetime64]


def local_days(column: pa.ChunkedArray | pa.Array) -> Days:
    """The Beijing day (``datetime64[D]``, NaT where missing) of each timestamp.

    Zone-aware timestamps are converted (with the zone's full history, as PostgreSQL's
    ``AT TIME ZONE`` does); naive ones and strings are read as Beijing time already.
    """
    series = column.to_pandas()
    if not pd.api.types.is_datetime64_any_dtype(series.dtype):
        try:
            series = pd.to_datetime(series, format="ISO8601")
        except (ValueError, TypeError) as exc:
            raise InvalidInput(f"reported_at is not a time: {exc}") from exc
    if getattr(series.dt, "tz", None) is not None:
        series = series.dt.tz_convert(LOCAL_TZ).dt.tz_localize(None)
    stamps = np.asarray(series.to_numpy(dtype="datetime64[us]"))
    return stamps.astype("datetime64[D]")  # numpy floors to the day


def floor_period(days: Days, period: str) -> Days:
    """The first day of each day's ``period`` (day, ISO week from Monday, month)."""
    if period not in PERIODS:
        raise InvalidInput(f"unknown period {period!r}: use one of {', '.join(PERIODS)}")
    d = days.astype("datetime64[D]")
    if period == "week":
        # 1970-01-01 was a Thursday: (days + 3) % 7 is 0 on Mondays
        weekday = (d.astype(np.int64) + 3) % 7
        out: Days = np.where(np.isnat(d), NO_DAY, d - weekday.astype("timedelta64[D]"))
        return out
    if period == "month":
        return d.astype("datetime64[M]").astype("datetime64[D]")
    return d


def month_keys(days: Days) -> npt.NDArray[np.object_]:
    """``YYYY-MM`` of each day (None where missing): the ``month=`` partition value."""
    months = days.astype("datetime64[M]")
    distinct, index = np.unique(months, return_inverse=True)  # a few months: format those
    names = np.array(
        [None if np.isnat(m) else str(np.datetime_as_string(m, unit="M")) for m in distinct],
        dtype=object,
    )
    out: npt.NDArray[np.object_] = names[index.reshape(-1)]
    return out
