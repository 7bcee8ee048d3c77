"""Report payloads as callers send them (in) — validated before anything is located or stored."""

from __future__ import annotations

import datetime as dt
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator

from geo_service.reports.taxonomy import CATEGORY_BY_CODE

CHINA_TZ = ZoneInfo("Asia/Shanghai")
FUTURE_SLACK = dt.timedelta(minutes=5)  # phones' clocks run a little fast
Channel = Literal["grid_app", "wechat", "hotline_12345", "video_patrol", "visit"]


class Location(BaseModel):
    """Where the problem is, in the CRS the phone or map gave."""

    model_config = ConfigDict(extra="forbid")

    lon: float
    lat: float
    crs: str = "wgs84"


class Reporter(BaseModel):
    """Personal data: stored apart, shown only to roles that may see it."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=100)
    phone: str | None = Field(default=None, max_length=32, pattern=r"^\+?[0-9][0-9 \-]{2,30}$")


class ReportIn(BaseModel):
    """One report from any channel."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    channel: Channel
    category: str
    description: str = Field(min_length=1, max_length=5000)
    reported_at: dt.datetime
    location: Location
    photos: list[HttpUrl] = Field(default_factory=list, max_length=9)
    reporter: Reporter | None = None
    external_id: str | None = Field(default=None, min_length=1, max_length=200)
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
        return value
