"""The demo year lands near a real centre's figures: most cases handled within their time
limit (the catalogue's, in working time), a few per cent late, few cases left open and
overdue at the end of the year, dispatch in minutes."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from geo_service.db.schema import UNHANDLED_STATUSES
from geo_service.demo.year import synthesize_year
from geo_service.locator import Locator
from geo_service.reports.schemas import CHINA_TZ
from geo_service.settings import PROJECT_ROOT
from geo_service.stats import catalogue
from geo_service.stats.calendar import to_epoch

END = dt.date(2026, 6, 1)
N = 20_000


@pytest.fixture(scope="module")
def year():  # type: ignore[no-untyped-def]
    locator = Locator.from_file(PROJECT_ROOT / "boundaries" / "xiuzhou_demo.geojson")
    return synthesize_year(locator, n=N, end=END)


def test_most_cases_are_handled_on_time_and_few_are_overdue(year) -> None:  # type: ignore[no-untyped-def]
    as_of = dt.datetime.combine(END, dt.time(0), CHINA_TZ).timestamp()
    category = year["category"].to_numpy(object)
    due = catalogue.deadlines(category, "handle", to_epoch(year["accepted_at"]))
    handled = to_epoch(year["handled_at"])
    done = ~np.isnan(handled)
    late = done & (handled > due)
    assert 0.01 < late.sum() / done.sum() < 0.10  # a few per cent run over their limit
    status = year["status"]
    overdue = status.isin(UNHANDLED_STATUSES).to_numpy() & (due < as_of)
    assert overdue.mean() < 0.01  # the old demo year: 9.7 % (19,372 of 200,000)
    open_cases = ~status.isin(("evaluated", "rejected"))
    assert open_cases.mean() < 0.02
    evaluated = (status == "evaluated").to_numpy()
    on_time = evaluated & (handled <= due)
    assert on_time.sum() / evaluated.sum() > 0.9
    minutes = (to_epoch(year["dispatched_at"]) - to_epoch(year["reported_at"])) / 60
    assert 4 <= np.nanmedian(minutes) <= 9  # Tongxiang: 6 minutes
