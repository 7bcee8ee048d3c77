"""Emerging hot spots: Mann-Kendall equals scipy's Kendall test, every Esri category comes out
of a small cube built to be exactly that, slices are whole calendar units, and the layer finds
a planted new hot spot in the database."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from fastapi.testclient import TestClient
from scipy import stats
from sqlalchemy import Engine

from geo_service.analytics.emerging import (
    CODE_OF,
    PATTERNS,
    classify,
    emerging,
    mann_kendall,
    pattern_name,
    slices,
)
from geo_service.analytics.filters import make_filter
from geo_service.analytics.weights import contiguity, distance_band
from geo_service.errors import InvalidInput
from geo_service.locator import Locator
from tests.conftest import auth
from tests.test_heat import file_reports

BJ = ZoneInfo("Asia/Shanghai")


# --------------------------------------------------------------------------- Mann-Kendall


def test_mann_kendall_by_hand() -> None:
    t = mann_kendall([[1, 2, 3, 4, 5], [5, 4, 3, 2, 1], [3, 3, 3, 3, 3]])
    var = 5 * 4 * 15 / 18
    assert t.s.tolist() == [10, -10, 0]
    assert t.z[0] == pytest.approx(9 / np.sqrt(var)) and t.z[1] == pytest.approx(-9 / np.sqrt(var))
    assert t.p[0] == pytest.approx(0.027486, abs=1e-6) and t.z[2] == 0 and t.p[2] == 1
    assert t.tau.tolist() == [1.0, -1.0, 0.0]
    # ties: [1, 1, 2] has S = 2, Var = (3·2·11 − 2·1·9)/18 = 48/18
    tied = mann_kendall([[1, 1, 2]], continuity=False)
    assert tied.s[0] == 2 and tied.z[0] == pytest.approx(2 / np.sqrt(48 / 18))


def test_mann_kendall_equals_scipy_kendall_tau() -> None:
    rng = np.random.default_rng(1)
    series = np.vstack([
        rng.normal(size=(20, 15)),
        rng.integers(0, 4, size=(20, 15)).astype(float),  # many ties
        np.cumsum(rng.normal(0.3, 1, size=(5, 15)), axis=1),
    ])
    ours = mann_kendall(series, continuity=False)
    for row, z, p in zip(series, ours.z, ours.p, strict=True):
        ref = stats.kendalltau(np.arange(row.size), row, method="asymptotic")
        if np.isnan(ref.pvalue):
            assert z == 0
            continue
        assert p == pytest.approx(ref.pvalue, abs=1e-12)
        assert np.sign(z) == np.sign(ref.statistic)
    corrected = mann_kendall(series)
    assert (np.abs(corrected.z) <= np.abs(ours.z) + 1e-12).all()


# --------------------------------------------------------------------------- categories


def _bins(s: str) -> tuple[np.ndarray, np.ndarray]:
    """'..+--+' → hot and cold rows."""
    return np.array([[c == "+" for c in s]]), np.array([[c == "-" for c in s]])


@pytest.mark.parametrize(
    ("bins", "trend", "expected"),
    [
        ("..........", 0.0, "no_pattern"),
        (".........+", 0.0, "new_hot_spot"),
        ("......++++", 0.0, "consecutive_hot_spot"),
        (".+++++++++", 3.0, "intensifying_hot_spot"),
        ("++++++++++", 0.5, "persistent_hot_spot"),
        ("++++++++++", -3.0, "diminishing_hot_spot"),
        ("..+..+..++", 0.0, "sporadic_hot_spot"),
        ("+.......++", 0.0, "sporadic_hot_spot"),  # hot before the final run
        ("..-......+", 0.0, "oscillating_hot_spot"),
        ("..-...++++", 0.0, "oscillating_hot_spot"),
        ("+++++++++.", 0.0, "historical_hot_spot"),
        (".........-", 0.0, "new_cold_spot"),
        ("........--", 0.0, "consecutive_cold_spot"),
        ("----------", -3.0, "intensifying_cold_spot"),
        ("----------", 0.0, "persistent_cold_spot"),
        ("----------", 3.0, "diminishing_cold_spot"),
        ("-..-.....-", 0.0, "sporadic_cold_spot"),
        ("..+......-", 0.0, "oscillating_cold_spot"),
        ("---------.", 0.0, "historical_cold_spot"),
        ("+++++++++-", 0.0, "oscillating_cold_spot"),  # the final slice wins over historical
        ("+++++++...", 0.0, "no_pattern"),  # 70 % hot, not hot now
    ],
)
def test_classify_follows_esri_definitions(bins: str, trend: float, expected: str) -> None:
    hot, cold = _bins(bins)
    p = np.array([0.001 if abs(trend) > 2 else 0.5])
    code = classify(hot, cold, np.array([trend]), p)[0]
    assert pattern_name(int(code)) == expected


def test_pattern_codes() -> None:
    assert [pattern_name(c) for c in (1, -8, 0)] == [
        "new_hot_spot", "historical_cold_spot", "no_pattern"]
    assert {p: i + 1 for i, p in enumerate(PATTERNS)} == CODE_OF


S, T = 8, 20
LATTICE = np.column_stack([g.ravel() for g in np.meshgrid(np.arange(S), np.arange(S))]) * 1.0
CENTRE = 3 * S + 3
BLOCK = [(3 + dy) * S + (3 + dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]


def _cube(kind: str) -> np.ndarray:
    """20 slices × 64 lattice locations of steady background counts (4-6, no trend); the 3×3
    block around the centre made hot or cold by construction."""
    t, i = np.arange(T)[:, None], np.arange(S * S)[None, :]
    c = (5 + (i * 7 + t * 3) % 3 - 1).astype(float)
    steps = np.arange(T)[:, None]
    if kind == "new_hot_spot":
        c[19, BLOCK] = 35
    elif kind == "consecutive_hot_spot":
        c[16:, BLOCK] = 35
    elif kind == "intensifying_hot_spot":
        c[:, BLOCK] += 20 + 3 * steps
    elif kind == "persistent_hot_spot":
        c[:, BLOCK] += 25
    elif kind == "diminishing_hot_spot":
        c[:, BLOCK] += 80 - 3 * steps
    elif kind == "sporadic_hot_spot":
        for s in (3, 9, 14, 19):
            c[s, BLOCK] = 35
    elif kind == "oscillating_hot_spot":
        c[5:7, BLOCK] = 0
        c[19, BLOCK] = 35
    elif kind == "historical_hot_spot":
        c[:18, BLOCK] += 25
    elif kind == "new_cold_spot":
        c[19, BLOCK] = 0
    elif kind == "consecutive_cold_spot":
        c[16:, BLOCK] = 0
    elif kind == "intensifying_cold_spot":
        c[:, BLOCK] = np.maximum(0, 2.0 - 0.1 * steps)
    elif kind == "persistent_cold_spot":
        c[:, BLOCK] = 0
    elif kind == "diminishing_cold_spot":
        c[:, BLOCK] = 0.1 * steps
    elif kind == "sporadic_cold_spot":
        for s in (3, 9, 14, 19):
            c[s, BLOCK] = 0
    elif kind == "oscillating_cold_spot":
        c[5:7, BLOCK] = 35
        c[19, BLOCK] = 0
    elif kind == "historical_cold_spot":
        c[:18, BLOCK] = 0
    return c


@pytest.mark.parametrize(
    "kind", [f"{p}_{side}_spot" for side in ("hot", "cold") for p in PATTERNS] + ["no_pattern"]
)
def test_constructed_cubes_get_their_category(kind: str) -> None:
    result = emerging(_cube(kind), distance_band(LATTICE, 1.5))
    row = result.iloc[CENTRE]
    assert row["category"] == kind, row.to_dict()
    assert len(row["bins"]) == T and row["n"] == _cube(kind)[:, CENTRE].sum()
    if kind == "no_pattern":
        assert (result["category"] == "no_pattern").all()


def test_the_space_time_window_reaches_back() -> None:
    cube = _cube("new_hot_spot")
    cube[19, BLOCK] = 5
    cube[18, BLOCK] = 35  # hot in slice 18 only: seen again by slice 19's bins
    one = emerging(cube, distance_band(LATTICE, 1.5), time_steps=1).iloc[CENTRE]
    none = emerging(cube, distance_band(LATTICE, 1.5), time_steps=0).iloc[CENTRE]
    assert one["bins"][18] == 3 and one["bins"][19] > 0
    assert none["bins"][19] == 0 and none["category"] == "no_pattern"


def test_slices_are_whole_calendar_units() -> None:
    f = make_filter(since=dt.datetime(2025, 6, 4, 10), until=dt.datetime(2025, 8, 27, 9))
    weeks = slices(f, "week")
    assert weeks[0] == dt.date(2025, 6, 9) and weeks[-1] == dt.date(2025, 8, 25)
    assert all(d.weekday() == 0 for d in weeks) and len(weeks) - 1 == 11
    months = slices(make_filter(until=dt.datetime(2025, 11, 15)), "month")
    assert months[0] == dt.date(2024, 11, 1) and months[-1] == dt.date(2025, 11, 1)
    days = slices(make_filter(), "day", now=dt.datetime(2025, 3, 1, 12, tzinfo=BJ))
    assert days[0] == dt.date(2025, 1, 30) and days[-1] == dt.date(2025, 3, 1)
    with pytest.raises(InvalidInput, match="at least 10 whole week slices"):
        slices(make_filter(since=dt.datetime(2025, 6, 1), until=dt.datetime(2025, 7, 1)), "week")


# --------------------------------------------------------------------------- through the API

SUMMER = {"from": "2025-06-02T00:00:00+08:00", "to": "2025-08-25T00:00:00+08:00"}  # 12 weeks


@pytest.fixture(scope="module")
def summer(engine: Engine, demo_locator: Locator) -> dict[str, str]:
    """A grid and its neighbours flare up in the last of twelve weeks; elsewhere in the
    town a steady trickle of reports."""
    grids = demo_locator.grids
    town = grids["town_code"].iloc[2000]
    in_town = grids[grids["town_code"] == town].reset_index(drop=True)
    w = contiguity(np.asarray(in_town.geometry.values), "queen")
    target = len(in_town) // 2
    flare = w[target].indices
    rng = np.random.default_rng(5)
    rows = []
    week0 = dt.datetime(2025, 6, 2, 9, tzinfo=BJ)
    for week in range(12):
        for g in rng.choice(len(in_town), 60, replace=False):
            p = in_town.geometry.iloc[g].representative_point()
            at = week0 + dt.timedelta(weeks=week, hours=int(g))
            rows.append({"lon": p.x, "lat": p.y, "at": at})
    for g in flare:
        p = in_town.geometry.iloc[g].representative_point()
        rows += [{"lon": p.x, "lat": p.y, "at": week0 + dt.timedelta(weeks=11, hours=h)}
                 for h in range(12)]
    for r in rows:
        r["category"] = "neighbour_dispute"
    file_reports(engine, demo_locator, rows)
    return {"town": town, "grid": in_town["code"].iloc[target]}


def test_emerging_layer_finds_a_new_hot_spot(client: TestClient, keys, summer) -> None:  # type: ignore[no-untyped-def]
    params = {**SUMMER, "level": "grid", "area": summer["town"], "slice": "week", "k": 0}
    r = client.get("/v1/analytics/emerging-hotspots", params=params,
                   headers=auth(keys["operator"]))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["analysis"]["slices"][0] == "2025-06-02" and len(body["analysis"]["slices"]) == 12
    feats = {f["id"]: f["properties"] for f in body["features"]}
    target = feats[summer["grid"]]
    assert target["category"] == "new_hot_spot", target
    assert target["bins"][-1] > 0 and len(target["bins"]) == 12
    assert {p["category"] for p in feats.values()} <= {
        pattern_name(c) for c in range(-8, 9)
    }


def test_emerging_on_h3_cells(client: TestClient, keys, summer) -> None:  # type: ignore[no-untyped-def]
    r = client.get("/v1/analytics/emerging-hotspots",
                   params={**SUMMER, "res": 8, "area": summer["town"], "k": 0},
                   headers=auth(keys["admin"]))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["analysis"]["unit"] == "h3" and body["analysis"]["distance_band_m"] > 0
    assert any(f["properties"]["category"].endswith("hot_spot") for f in body["features"])
    public = client.get("/v1/analytics/emerging-hotspots",
                        params={**SUMMER, "res": 8, "area": summer["town"]}).json()
    assert all(not 0 < f["properties"]["n"] < 5 for f in public["features"])


def test_too_few_slices_is_a_clear_422(client: TestClient) -> None:
    r = client.get("/v1/analytics/emerging-hotspots",
                   params={"from": "2025-06-02", "to": "2025-07-01", "slice": "week"})
    assert r.status_code == 422 and "at least 10 whole week slices" in r.json()["message"]
    r = client.get("/v1/analytics/emerging-hotspots", params={"slice": "year"})
    assert r.status_code == 422
