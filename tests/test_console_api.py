"""The console's own JSON calls: who may read them, the live poll's ETag (304 while nothing
moved, a new token and the new report once one is filed), figures equal to
``/v1/stats/indicators``, no personal data, and nothing written on the read path."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from geo_service.app import create_app
from geo_service.locator import Locator
from geo_service.settings import DatabaseSettings, Settings
from tests.conftest import auth
from tests.support import read_only

SUMMARY = "/v1/console/summary"


def _file(client: TestClient, key: str, locator: Locator) -> int:
    grid = locator.grids.iloc[11]
    p = grid.geometry.representative_point()
    body = {
        "channel": "hotline_12345",
        "category": "sanitation",
        "description": "垃圾堆积",
        "reported_at": dt.datetime.now(dt.UTC).isoformat(),
        "location": {"lon": p.x, "lat": p.y, "crs": "wgs84"},
        "reporter": {"name": "张伟", "phone": "13900000000"},
        "external_id": uuid.uuid4().hex,
    }
    r = client.post("/v1/reports", json=body, headers=auth(key))
    assert r.status_code in (200, 201), r.text
    return int(r.json()["id"])


@pytest.mark.parametrize("path", [SUMMARY, "/v1/console/figures", "/v1/console/areas"])
def test_console_calls_need_a_staff_caller(
    client: TestClient, keys: dict[str, str], path: str
) -> None:
    assert client.get(path).status_code == 401
    assert client.get(path, headers=auth(keys["reporter"])).status_code == 403
    assert client.get(path, headers=auth(keys["grid_worker"])).status_code == 403
    assert client.get(path, headers=auth(keys["planner"])).status_code == 200


def test_the_console_page_sends_anonymous_visitors_to_sign_in(client: TestClient) -> None:
    r = client.get("/console", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/login?next=%2Fconsole"


def test_the_poll_answers_304_until_a_report_is_filed(
    client: TestClient, keys: dict[str, str], demo_locator: Locator
) -> None:
    op = auth(keys["operator"])
    first = client.get(SUMMARY, headers=op)
    assert first.status_code == 200
    etag = first.headers["etag"]
    again = client.get(SUMMARY, headers={**op, "If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    new_id = _file(client, keys["operator"], demo_locator)
    moved = client.get(SUMMARY, headers={**op, "If-None-Match": etag})
    assert moved.status_code == 200 and moved.headers["etag"] != etag
    body = moved.json()
    assert body["token"] != first.json()["token"]
    assert new_id in [r["id"] for r in body["latest"]]
    # another caller never shares a screen's ETag
    other = client.get(SUMMARY, headers=auth(keys["admin"]))
    assert other.headers["etag"] != moved.headers["etag"]


def test_the_latest_reports_carry_no_personal_data(
    client: TestClient, keys: dict[str, str], demo_locator: Locator
) -> None:
    _file(client, keys["operator"], demo_locator)
    latest: list[dict[str, Any]] = client.get(SUMMARY, headers=auth(keys["admin"])).json()["latest"]
    assert latest
    for r in latest:
        assert set(r) == {"id", "reported_at", "category", "channel", "status", "lon", "lat",
                          "grid_code", "supervised"}  # fmt: skip
        assert "张伟" not in str(r) and "13900000000" not in str(r)


@pytest.mark.parametrize("period", ["day", "week", "month"])
def test_figures_are_the_indicators_api_row(
    client: TestClient, keys: dict[str, str], demo_locator: Locator, period: str
) -> None:
    _file(client, keys["operator"], demo_locator)
    op = auth(keys["operator"])
    mine = client.get("/v1/console/figures", params={"period": period}, headers=op).json()
    api = client.get("/v1/stats/indicators", headers=op,
                     params={"period": period, "by": "area", "level": "district"}).json()
    total = dict(mine["total"])
    expected = dict(api["items"][0])
    assert total == expected
    assert mine["period"]["start"] == api["period"]["start"]
    assert sum(c["reported"] for c in mine["channels"].values()) == total["reported"] >= 1
    for channel, row in mine["channels"].items():
        one = client.get("/v1/stats/indicators", headers=op, params={
            "period": period, "by": "area", "level": "district", "channel": channel}).json()
        assert row["reported"] == one["items"][0]["reported"]


def test_a_bad_figures_parameter_is_a_422_naming_it(
    client: TestClient, keys: dict[str, str]
) -> None:
    r = client.get("/v1/console/figures", params={"period": "decade"},
                   headers=auth(keys["operator"]))  # fmt: skip
    assert r.status_code == 422 and "period" in r.text


def test_areas_name_every_town_and_community_with_a_point_inside(
    client: TestClient, keys: dict[str, str]
) -> None:
    r = client.get("/v1/console/areas", headers=auth(keys["operator"]))
    body = r.json()
    levels = [a["level"] for a in body["items"]]
    assert levels.count("town") == 9 and levels.count("community") == 95
    west, south, east, north = body["bounds"]
    assert all(west <= a["lon"] <= east and south <= a["lat"] <= north for a in body["items"])
    again = client.get("/v1/console/areas",
                       headers={**auth(keys["operator"]), "If-None-Match": r.headers["etag"]})
    assert again.status_code == 304


def test_the_console_calls_write_nothing(database_url: str, keys: dict[str, str]) -> None:
    settings = Settings(database=DatabaseSettings(url=read_only(database_url)))
    with TestClient(create_app(settings)) as ro:
        op = auth(keys["operator"])
        for path in (SUMMARY, "/v1/console/figures?period=week", "/v1/console/areas"):
            assert ro.get(path, headers=op).status_code == 200, path


def test_a_status_and_a_channel_have_one_chinese_name_on_every_surface() -> None:
    """The wall screen, Open311's status notes and the printed reports read one vocabulary
    (the printed report once said 已立案 where the screen said 已受理)."""
    from geo_service.console.i18n import channels, statuses
    from geo_service.db.schema import CHANNELS, REPORT_STATUSES
    from geo_service.protocols.open311 import status_notes
    from geo_service.reports.taxonomy import CHANNEL_NAMES, STATUS_NAMES

    assert set(STATUS_NAMES) == set(REPORT_STATUSES) and set(CHANNEL_NAMES) == set(CHANNELS)
    assert statuses("zh") == {s: STATUS_NAMES[s] for s in REPORT_STATUSES}
    assert channels("zh") == {c: CHANNEL_NAMES[c] for c in CHANNELS}
    for status in REPORT_STATUSES:
        assert status_notes(status, None, False).startswith(f"{STATUS_NAMES[status]} ({status})")
