"""Small-count suppression of the analysis layers: the threshold k is a setting
(``GEO_ANALYTICS_K_MIN``, default 5) that public callers, reporters and grid workers can raise
but never lower; operator, planner and admin keys may ask for less (down to 0, nothing hidden)
and otherwise get the setting too. No layer carries personal data, whatever the k.

This module's reports sit in res-10 cells; its apps let the public see cells that fine
(``GEO_PRIVACY_PUBLIC_H3_RES=10``, the default being 8: ``tests/test_privacy_public.py``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import h3
import numpy as np
import pytest
import shapely
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import Engine

from geo_service.app import create_app
from geo_service.locator import Locator
from geo_service.settings import AnalyticsSettings, DatabaseSettings, PrivacySettings, Settings
from tests.conftest import auth
from tests.test_heat import file_reports

BJ = ZoneInfo("Asia/Shanghai")
T0 = dt.datetime(2025, 2, 17, 9, tzinfo=BJ)  # this module's reports: two hours of that morning
K_MIN = 3  # the setting of this module's own app (the session client runs with the default 5)
CELL_COUNTS = (1, 2, 3, 4, 5, 7)  # reports in six res-10 cells of one grid
SECOND_GRID_REPORTS = 4  # the community's next grid: shown under k = 3, blanked under k = 5
PERSONAL = ("张三", "13900000000", "测试上报")  # what file_reports puts in every report
LAYERS = ("heat", "hotspots", "emerging-hotspots", "grid-stats")


FINE = PrivacySettings(public_h3_res=10)  # the public may see this module's res-10 cells


@pytest.fixture(scope="module")
def k3_client(database_url: str) -> Iterator[TestClient]:
    """The service configured with ``analytics.k_min = 3``."""
    settings = Settings(
        database=DatabaseSettings(url=database_url),
        analytics=AnalyticsSettings(k_min=K_MIN),
        privacy=FINE,
    )
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture(scope="module")
def k5_client(database_url: str) -> Iterator[TestClient]:
    """The service with the default ``analytics.k_min`` (5)."""
    settings = Settings(database=DatabaseSettings(url=database_url), privacy=FINE)
    with TestClient(create_app(settings)) as c:
        yield c


def _cells_inside(polygon: shapely.Polygon, res: int, want: int) -> list[str]:
    """``want`` res cells, pairwise not adjacent, whose centres lie well inside ``polygon``."""
    inner = polygon.buffer(-0.0004)
    lat, lon = inner.representative_point().y, inner.representative_point().x
    chosen: list[str] = []
    for cell in sorted(h3.grid_disk(h3.latlng_to_cell(lat, lon, res), 8)):
        clat, clon = h3.cell_to_latlng(cell)
        if inner.contains(shapely.Point(clon, clat)) and all(
            h3.grid_distance(cell, c) >= 2 for c in chosen
        ):
            chosen.append(cell)
        if len(chosen) == want:
            return chosen
    raise AssertionError(f"grid too small for {want} separate cells")


@pytest.fixture(scope="module")
def place(engine: Engine, demo_locator: Locator) -> dict[str, object]:
    """Reports at the centres of six cells of the largest grid (1, 2, 3, 4, 5 and 7 of them)
    and four in another grid of its community."""
    grids = demo_locator.grids
    big = grids.iloc[int(np.argmax(shapely.area(np.asarray(grids.geometry.values))))]
    cells = _cells_inside(big.geometry, 10, len(CELL_COUNTS))
    rows = []
    for cell, count in zip(cells, CELL_COUNTS, strict=True):
        lat, lon = h3.cell_to_latlng(cell)
        rows += [{"lon": lon + 2e-6 * i, "lat": lat} for i in range(count)]
    same_community = grids["community_code"] == big["community_code"]
    second = grids[same_community & (grids["code"] != big["code"])].iloc[0]
    p = second.geometry.representative_point()
    rows += [{"lon": p.x + 2e-6 * i, "lat": p.y} for i in range(SECOND_GRID_REPORTS)]
    for i, r in enumerate(rows):
        r["at"] = T0 + dt.timedelta(minutes=i)
    file_reports(engine, demo_locator, rows)
    return {
        "cells": dict(zip(cells, CELL_COUNTS, strict=True)),
        "grid": big["code"],
        "second": second["code"],
        "community": big["community_code"],
        "town": big["town_code"],
    }


WINDOW = {"from": "2025-02-17T00:00:00+08:00", "to": "2025-02-18T00:00:00+08:00"}


def _heat(client: TestClient, place, headers=None, **params) -> dict:  # type: ignore[no-untyped-def, type-arg]
    r = client.get(
        "/v1/analytics/heat",
        params={**WINDOW, "res": 10, "area": place["grid"], **params},
        headers=headers or {},
    )
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def _counts(body: dict) -> dict[str, int]:  # type: ignore[type-arg]
    return {f["id"]: f["properties"]["n"] for f in body["features"]}


# --------------------------------------------------------------------------- the setting


def test_k_min_defaults_to_five_and_is_read_from_the_environment(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("GEO_ANALYTICS_K_MIN", raising=False)
    assert Settings().analytics.k_min == 5
    monkeypatch.setenv("GEO_ANALYTICS_K_MIN", "8")
    assert Settings().analytics.k_min == 8


def test_a_negative_k_min_is_refused_when_settings_load(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("GEO_ANALYTICS_K_MIN", "-1")
    with pytest.raises(ValidationError, match="k_min"):
        Settings()


# --------------------------------------------------------------------------- who sees what


def test_public_heat_hides_cells_under_the_configured_k(k3_client, k5_client, place) -> None:  # type: ignore[no-untyped-def]
    exact = place["cells"]
    body = _heat(k3_client, place)
    assert _counts(body) == {c: n for c, n in exact.items() if n >= K_MIN}
    assert body["analysis"]["k"] == K_MIN
    assert body["analysis"]["suppressed"] == sum(1 for n in exact.values() if n < K_MIN)
    default = _heat(k5_client, place)  # an app with the default setting
    assert _counts(default) == {c: n for c, n in exact.items() if n >= 5}
    assert default["analysis"]["k"] == 5


def test_staff_get_the_setting_unless_they_ask_for_less(k3_client, keys, place) -> None:  # type: ignore[no-untyped-def]
    exact = place["cells"]
    for role in ("operator", "planner", "admin"):
        unasked = _heat(k3_client, place, auth(keys[role]))
        assert _counts(unasked) == {c: n for c, n in exact.items() if n >= K_MIN}, role
        everything = _heat(k3_client, place, auth(keys[role]), k=0)
        assert _counts(everything) == exact, role
        assert everything["analysis"]["suppressed"] == 0
    two = _heat(k3_client, place, auth(keys["operator"]), k=2)
    assert _counts(two) == {c: n for c, n in exact.items() if n >= 2}


def test_anyone_may_raise_k(k3_client, keys, place) -> None:  # type: ignore[no-untyped-def]
    exact = place["cells"]
    for headers in ({}, auth(keys["reporter"]), auth(keys["grid_worker"])):
        body = _heat(k3_client, place, headers, k=6)
        assert _counts(body) == {c: n for c, n in exact.items() if n >= 6}
        assert body["analysis"]["k"] == 6


@pytest.mark.parametrize("layer", LAYERS)
def test_lowering_k_below_the_setting_is_refused_without_a_staff_key(  # type: ignore[no-untyped-def]
    k3_client, keys, place, layer
) -> None:
    url = f"/v1/analytics/{layer}"
    params = {**WINDOW, "area": place["community"], "k": K_MIN - 1}
    public = k3_client.get(url, params=params)
    assert public.status_code == 401
    assert f"k below {K_MIN}" in public.json()["message"]
    for role in ("reporter", "grid_worker"):
        r = k3_client.get(url, params=params, headers=auth(keys[role]))
        assert r.status_code == 403, (role, r.text)
        assert f"k below {K_MIN}" in r.json()["message"] and role in r.json()["message"]
    negative = k3_client.get(url, params={**params, "k": -1}, headers=auth(keys["admin"]))
    assert negative.status_code == 422 and "k" in negative.json()["message"]


def test_grid_stats_blank_areas_under_the_setting(k3_client, client, keys, place) -> None:  # type: ignore[no-untyped-def]
    params = {**WINDOW, "area": place["community"]}

    def second_grid(c: TestClient, headers=None) -> dict:  # type: ignore[no-untyped-def, type-arg]
        body = c.get("/v1/analytics/grid-stats", params=params, headers=headers or {}).json()
        return next(f["properties"] for f in body["features"] if f["id"] == place["second"])

    shown = second_grid(k3_client)
    assert shown["reports"] == SECOND_GRID_REPORTS and shown["suppressed"] is False
    blanked = second_grid(client)  # default k = 5: the area keeps its shape, not its figures
    assert blanked["suppressed"] is True and blanked["reports"] is None
    assert blanked["open"] is None and blanked["code"] == place["second"]
    operator = second_grid(client, auth(keys["operator"]))  # unasked: the setting holds
    assert operator["suppressed"] is True and operator["reports"] is None


def test_operator_k0_shows_every_grid_figure(client, keys, place) -> None:  # type: ignore[no-untyped-def]
    r = client.get(
        "/v1/analytics/grid-stats",
        params={**WINDOW, "area": place["community"], "k": 0},
        headers=auth(keys["operator"]),
    )
    props = {f["id"]: f["properties"] for f in r.json()["features"]}
    assert props[place["second"]]["reports"] == SECOND_GRID_REPORTS
    assert props[place["grid"]]["reports"] == sum(CELL_COUNTS)
    assert not any(p["suppressed"] for p in props.values())


@pytest.mark.parametrize(
    ("layer", "extra"),
    [
        ("heat", {"res": 8}),
        ("heat", {"level": "grid"}),
        ("grid-stats", {}),
        ("hotspots", {"level": "grid"}),
    ],
)
def test_no_layer_carries_personal_data_even_unsuppressed(  # type: ignore[no-untyped-def]
    client, keys, place, layer, extra
) -> None:
    params = {**WINDOW, "area": place["town"], **extra}
    for headers, k in (({}, None), (auth(keys["admin"]), 0)):
        query = params if k is None else {**params, "k": k}
        r = client.get(f"/v1/analytics/{layer}", params=query, headers=headers)
        assert r.status_code == 200, r.text
        assert len(r.json()["features"]) > 0
        for word in PERSONAL:
            assert word not in r.text, (layer, word)
