"""Working time and the catalogue's deadlines: the State Council calendar with its make-up
days, configurable working hours, urgent cases in calendar hours, Monday to Friday outside
the calendar's years (logged once), and the array functions agreeing with the scalar ones."""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pytest

from geo_service.reports.schemas import CHINA_TZ
from geo_service.settings import StatsSettings
from geo_service.stats import calendar as cal_mod
from geo_service.stats import catalogue
from geo_service.stats.calendar import KNOWN_YEARS, WorkCalendar, is_workday, work_calendar

CAL = work_calendar()
HOUR = 3600.0


def bj(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=CHINA_TZ)


@pytest.mark.parametrize(
    "day, working",
    [
        (dt.date(2025, 9, 26), True),  # Friday
        (dt.date(2025, 9, 27), False),  # Saturday
        (dt.date(2025, 9, 28), True),  # Sunday, worked for National Day
        (dt.date(2025, 10, 1), False),  # National Day
        (dt.date(2025, 10, 8), False),  # the holiday's last day (a Wednesday)
        (dt.date(2025, 10, 9), True),
        (dt.date(2025, 10, 11), True),  # Saturday, worked for National Day
        (dt.date(2025, 10, 12), False),  # Sunday
        (dt.date(2026, 2, 16), False),  # Spring Festival eve 2026
    ],
)
def test_working_days_follow_the_state_council(day: dt.date, working: bool) -> None:
    assert is_workday(day) is working


@pytest.mark.parametrize(
    "start, hours, due",
    [
        (bj(2025, 9, 30, 16), 1, bj(2025, 9, 30, 17)),  # inside the afternoon
        (bj(2025, 9, 30, 17), 1, bj(2025, 10, 9, 9)),  # over the whole holiday
        (bj(2025, 9, 27, 10), 1, bj(2025, 9, 28, 9, 30)),  # Saturday → the make-up Sunday
        (bj(2025, 10, 10, 17), 1, bj(2025, 10, 11, 9)),  # Friday → the make-up Saturday
        (bj(2025, 10, 10, 17), 0.5, bj(2025, 10, 10, 17, 30)),  # ends at the day's end
        (bj(2025, 10, 10, 11, 30), 1, bj(2025, 10, 10, 14)),  # over lunch
        (bj(2025, 10, 10, 6), 7.5, bj(2025, 10, 10, 17, 30)),  # from before work: one day
    ],
)
def test_adding_working_hours(start: dt.datetime, hours: float, due: dt.datetime) -> None:
    assert CAL.add_one(start, hours * HOUR) == due
    assert CAL.between([start.timestamp()], [due.timestamp()])[0] == pytest.approx(hours * HOUR)


def test_working_hours_are_a_setting() -> None:
    settings = StatsSettings(working_hours="09:00-12:00,14:00-18:00")
    cal = WorkCalendar(settings.working_periods())
    assert cal.day_seconds == 7 * HOUR
    assert cal.add_one(bj(2025, 10, 10, 17, 30), HOUR) == bj(2025, 10, 11, 9, 30)
    with pytest.raises(ValueError, match="GEO_STATS_WORKING_HOURS"):
        StatsSettings(working_hours="13:00-12:00")
    with pytest.raises(ValueError, match="GEO_STATS_WORKING_HOURS"):
        StatsSettings(working_hours="08:00-12:00,11:00-17:00")


def test_arrays_agree_with_one_at_a_time() -> None:
    rng = np.random.default_rng(7)
    starts = rng.uniform(bj(2024, 1, 1).timestamp(), bj(2026, 12, 1).timestamp(), 500)
    limits = rng.uniform(0, 40 * HOUR, 500)
    ends = CAL.add(starts, limits)
    for s, lim, e in zip(starts[:50], limits[:50], ends[:50], strict=True):
        one = CAL.add_one(dt.datetime.fromtimestamp(s, CHINA_TZ), lim)
        assert one.timestamp() == pytest.approx(e, abs=1e-3)
    assert np.allclose(CAL.between(starts, ends), limits, atol=1e-3)
    assert np.isnan(CAL.add(np.array([np.nan]), np.array([HOUR]))[0])


def test_outside_the_known_years_monday_to_friday_logged_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cal_mod, "_warned", type(cal_mod._warned)())
    year = KNOWN_YEARS[1] + 1
    first_monday = next(d for d in (dt.date(year, 1, i) for i in range(1, 8)) if d.weekday() == 0)
    assert is_workday(first_monday) and not is_workday(first_monday + dt.timedelta(days=5))
    friday = dt.datetime.combine(first_monday + dt.timedelta(days=4), dt.time(17), CHINA_TZ)
    with caplog.at_level(logging.WARNING, logger="geo_service.stats.calendar"):
        due = CAL.add_one(friday, HOUR)
        CAL.add_one(friday, 2 * HOUR)
    assert due == friday + dt.timedelta(days=3, hours=-8)  # Monday 09:00
    warnings = [r for r in caplog.records if "Monday to Friday" in r.getMessage()]
    assert len(warnings) == 1


def test_urgent_categories_run_on_calendar_time() -> None:
    # fire risk is urgent: 2 hours round the clock, even on National Day
    due = catalogue.deadline("fire_risk", "handle", bj(2025, 10, 1, 23))
    assert due == bj(2025, 10, 2, 1)
    accepted = catalogue.on_accept("fire_risk", bj(2025, 10, 1, 23))
    assert accepted["urgency"] == "urgent"
    assert accepted["dispatch_due_at"] == bj(2025, 10, 1, 23, 10)
    # the same category accepted as normal runs on working time
    normal = catalogue.deadline("fire_risk", "handle", bj(2025, 10, 1, 23), "normal")
    assert normal == bj(2025, 10, 9, 17, 30)


def test_catalogue_entries_say_when_a_case_is_accepted_and_closed() -> None:
    for entry in catalogue.ENTRIES:
        assert entry.accept_condition and entry.close_condition and entry.supervisor
        assert entry.normal.handle.working and not entry.urgent.handle.working
        assert entry.handlers() or entry.code == "other"
    limit = catalogue.entry("sanitation").limits().handle
    assert (limit.label_zh(), limit.label_en()) == ("1个工作日", "1 working day")
    with pytest.raises(ValueError, match="unknown category"):
        catalogue.entry("ufo")


def test_array_deadlines_match_the_scalar_ones() -> None:
    cats = np.array(["sanitation", "fire_risk", "illegal_construction", "road_occupation"])
    start = bj(2025, 9, 30, 16, 45)
    arr = catalogue.deadlines(cats, "handle", np.full(4, start.timestamp()))
    for c, e in zip(cats.tolist(), arr.tolist(), strict=True):
        assert catalogue.deadline(c, "handle", start).timestamp() == pytest.approx(e)
    given = catalogue.deadlines(cats, "handle", np.full(4, start.timestamp()), ["urgent"] * 4)
    assert np.allclose(given - start.timestamp(), [4 * HOUR, 2 * HOUR, 24 * HOUR, HOUR])
    with pytest.raises(ValueError, match="urgency"):
        catalogue.deadlines(cats, "handle", np.full(4, start.timestamp()), ["soon"] * 4)
