"""Report payloads as callers send them (in) — validated before anything is located or stored."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator

from geo_service.db.schema import Channel as Channel
from geo_service.errors import StorableText
from geo_service.reports.taxonomy import CATEGORY_BY_CODE

CHINA_TZ = ZoneInfo("Asia/Shanghai")
FUTURE_SLACK = dt.timedelta(minutes=5)  # phones' clocks run a little fast


class Location(BaseModel):
    """Where the problem is, in the CRS the phone or map gave."""

    model_config = ConfigDict(extra="forbid")

    lon: float
    lat: float
    crs: StorableText = Field(default="wgs84", max_length=32)


class Reporter(BaseModel):
    """Personal data: stored apart, shown only to roles that may see it."""

    model_config = ConfigDict(extra="forbid")

    name: StorableText | None = Field(default=None, max_length=100)
    phone: StorableText | None = Field(
        default=None, max_length=32, pattern=r"^\+?[0-9][0-9 \-]{2,30}$"
    )


class ReportIn(BaseModel):
    """One report from any channel."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    channel: Channel
    category: StorableText = Field(json_schema_extra={"enum": [*sorted(CATEGORY_BY_CODE)]})
    description: StorableText = Field(min_length=1, max_length=5000)
    reported_at: dt.datetime
    location: Location
    photos: list[HttpUrl] = Field(default_factory=list, max_length=9)
    reporter: Reporter | None = None
    # stored as "<key id>:ext:<external_id>" in 200 characters
    external_id: StorableText | None = Field(default=None, min_length=1, max_length=180)
    hard: bool = False

    @field_validator("category")
    @classmethod
    def _known_category(cls, value: str) -> str:
        if value not in CATEGORY_BY_CODE:
            raise ValueError(
                f"unknown category {value!r}: use one of {', '.join(sorted(CATEGORY_BY_CODE))}"
            )
        return value

    @field_validator("reported_at")
    @classmethod
    def _not_in_future(cls, value: dt.datetime) -> dt.datetime:
        if value.tzinfo is None:
            value = value.replace(tzinfo=CHINA_TZ)  # local time of the command centre
        if value > dt.datetime.now(dt.UTC) + FUTURE_SLACK:
            raise ValueError(f"reported_at {value.isoformat()} is in the future")
        from geo_service.stats.calendar import FIRST_YEAR  # it imports this module

        if value < dt.datetime(FIRST_YEAR, 1, 1, tzinfo=CHINA_TZ):  # due dates start there
            raise ValueError(f"reported_at {value.isoformat()} is before {FIRST_YEAR}")
        return value
