"""History: a reproducible synthetic year with real structure (rhythms, moving hot places, the
closed loop), and its import — fast, idempotent, located and routed as intake does, keeping
statuses and step times — from a frame, CSV, GeoJSON or GeoParquet, refusing bad rows by number.

Imports go into a database of their own, so the shared test database keeps its counts."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, text

from geo_service.coords import wgs84_to_gcj02
from geo_service.db.engine import make_engine
from geo_service.demo.model import STEP_COLUMNS
from geo_service.demo.year import COLUMNS, synthesize_year
from geo_service.errors import InvalidInput
from geo_service.locator import Locator
from geo_service.reports.importer import (
    ImportStats,
    import_history,
    load_demo_history,
    read_history,
)
from geo_service.reports.taxonomy import CATEGORY_BY_CODE, CHANNELS
from geo_service.routing import RoutingTable
from geo_service.stats import catalogue
from geo_service.stats.calendar import to_epoch
from tests.support import load_demo

BJ = ZoneInfo("Asia/Shanghai")
END = dt.date(2025, 11, 24)  # the synthetic year: the 365 Beijing days before this date
START = pd.Timestamp(dt.datetime.combine(END - dt.timedelta(days=365), dt.time(0), BJ))
AS_OF = pd.Timestamp(dt.datetime.combine(END, dt.time(0), BJ))
N = 20_000


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def history_url(new_database) -> str:  # type: ignore[no-untyped-def]
    """A migrated database of its own with the demo boundaries published."""
    return load_demo(str(new_database("geo_history")))


@pytest.fixture(scope="module")
def history_engine(history_url: str) -> Iterator[Engine]:
    eng = make_engine(history_url)
    yield eng
    eng.dispose()


@pytest.fixture(scope="module")
def locator(history_url: str) -> Locator:
    return Locator.from_database(history_url)


@pytest.fixture(scope="module")
def routing(history_engine: Engine) -> RoutingTable:
    with history_engine.connect() as conn:
        return RoutingTable.load(conn)


@pytest.fixture(scope="module")
def year(locator: Locator) -> pd.DataFrame:
    return synthesize_year(locator, n=N, seed=7, end=END)


@pytest.fixture(scope="module")
def imported(
    history_engine: Engine, year: pd.DataFrame, locator: Locator, routing: RoutingTable
) -> ImportStats:
    calls: list[tuple[int, int]] = []
    stats = import_history(
        history_engine,
        year,
        locator,
        routing,
        chunk=6_000,
        progress=lambda d, t: calls.append((d, t)),
    )
    assert calls[0] == (0, N) and calls[-1] == (N, N)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    return stats


# --------------------------------------------------------------------------- helpers


def per_day(frame: pd.DataFrame, weekend: bool) -> float:
    """Reports per day on weekdays or weekends (Beijing time)."""
    days = frame["reported_at"].dt.tz_convert(BJ).dt.normalize()
    is_weekend = days.dt.day_of_week >= 5
    picked = days[is_weekend == weekend]
    return len(picked) / picked.nunique()


def top_cells(frame: pd.DataFrame, k: int) -> list[str]:
    cells = [h3.latlng_to_cell(y, x, 8) for x, y in zip(frame["lon"], frame["lat"], strict=True)]
    return list(pd.Series(cells).value_counts().index[:k])


def stored(engine: Engine, like: str) -> tuple[list[Any], list[Any]]:
    """Reports (without ids) and their events, by key then time, for keys matching ``like``."""
    with engine.connect() as conn:
        reports = conn.execute(
            text(
                "SELECT idempotency_key, channel, category, description, reported_at, "
                "lon_original, lat_original, crs_original, ST_AsText(geom), in_coverage, "
                "grid_code, community_code, town_code, district_code, handling_level, unit_id, "
                "routed_by, status, status_at, due_at, closed_at, supervised, hard, rating, "
                "h3_11 FROM reports WHERE idempotency_key LIKE :like ORDER BY idempotency_key"
            ),
            {"like": like},
        ).all()
        events = conn.execute(
            text(
                "SELECT r.idempotency_key, e.at, e.action, e.from_status, e.to_status, "
                "e.unit_id, e.actor, e.note FROM report_events e JOIN reports r "
                "ON r.id = e.report_id WHERE r.idempotency_key LIKE :like "
                "ORDER BY r.idempotency_key, e.id"
            ),
            {"like": like},
        ).all()
    return [tuple(r) for r in reports], [tuple(e) for e in events]


# --------------------------------------------------------------------------- the synthetic year


def test_the_same_seed_gives_the_same_year(locator: Locator) -> None:
    a = synthesize_year(locator, n=3_000, seed=11, end=END)
    b = synthesize_year(locator, n=3_000, seed=11, end=END)
    pd.testing.assert_frame_equal(a, b)
    c = synthesize_year(locator, n=3_000, seed=12, end=END)
    assert not np.array_equal(a["lon"].to_numpy(), c["lon"].to_numpy())


def test_the_year_has_the_shape_asked(year: pd.DataFrame) -> None:
    assert len(year) == N and list(year.columns) == list(COLUMNS)
    assert set(year["channel"]) == set(CHANNELS)
    assert set(year["category"]) == set(CATEGORY_BY_CODE)
    assert year["channel"].value_counts().index[0] == "grid_app"
    assert (year["crs"] == "wgs84").all()
    assert year["external_id"].iloc[0] == "demo-000001" and year["external_id"].is_unique
    assert year["reported_at"].is_monotonic_increasing
    assert year["reported_at"].min() >= START and year["reported_at"].max() < AS_OF
    assert year["description"].str.len().min() > 5
    # one month of the year is a twelfth of it, give or take the seasons
    assert year["reported_at"].dt.month.value_counts().max() < 0.15 * N


def test_weekly_and_daily_rhythms(year: pd.DataFrame) -> None:
    app = year[year["channel"] == "grid_app"]
    assert per_day(app, weekend=False) / per_day(app, weekend=True) > 1.5
    wechat = year[year["channel"] == "wechat"]
    assert per_day(wechat, weekend=True) > per_day(wechat, weekend=False)
    hour = year["reported_at"].dt.tz_convert(BJ).dt.hour
    assert ((hour >= 22) | (hour < 6)).mean() < 0.05
    per_hour = hour.value_counts().reindex(range(24), fill_value=0)
    assert per_hour.idxmax() in (9, 10, 14, 15, 16)
    assert per_hour[[9, 10, 14, 15, 16]].sum() > 0.4 * N  # 5 hours of 24: peaks
    assert per_hour[12] < 0.7 * per_hour[10] and per_hour[3] < 0.05 * per_hour[10]


def test_hot_places_exist_and_move(year: pd.DataFrame) -> None:
    q1 = year[year["reported_at"] < START + pd.Timedelta(days=91)]
    q4 = year[year["reported_at"] >= AS_OF - pd.Timedelta(days=91)]
    # clustered: the ten busiest of ~9,000 res-8 cells hold far more than their share
    busiest = set(top_cells(year, 10))
    cells = pd.Series(
        [h3.latlng_to_cell(y, x, 8) for x, y in zip(year["lon"], year["lat"], strict=True)]
    )
    assert cells.isin(busiest).mean() > 0.12
    first, last = top_cells(q1, 5), top_cells(q4, 5)
    assert set(first) != set(last)
    # a hot spot of the last quarter that was not one in the first (a new one, or one moved)
    assert set(last) - set(top_cells(q1, 20))
    # and one of the first quarter gone by the last (faded, or moved away)
    assert set(first) - set(top_cells(q4, 20))


def test_the_loop_is_ordered_closed_and_realistic(year: pd.DataFrame) -> None:
    times = year[["reported_at", *STEP_COLUMNS]]
    before = times.iloc[:, 0]
    for col in STEP_COLUMNS:  # each step taken is no earlier than the one before it
        t = times[col]
        assert not (t < before).any(), col
        before = t.where(t.notna(), before)
    last = pd.Series("discovered", index=year.index)
    for col in STEP_COLUMNS:
        last[year[col].notna()] = col.removesuffix("_at")
    last[year["rejected_at"].notna()] = "rejected"
    assert (last == year["status"]).all()
    dispatch_min = (year["dispatched_at"] - year["reported_at"]).dt.total_seconds() / 60
    assert 4 <= dispatch_min.median() <= 9  # Tongxiang: 6 minutes
    old = year[year["reported_at"] < AS_OF - pd.Timedelta(days=30)]
    share = old["status"].value_counts(normalize=True)
    assert 0.9 <= share["evaluated"] <= 0.98 and 0.02 <= share["rejected"] <= 0.07
    recent = year[year["reported_at"] >= AS_OF - pd.Timedelta(days=2)]
    assert recent["status"].nunique() >= 5  # open at various steps
    rated = year["rating"].notna()
    assert (rated == (year["status"] == "evaluated")).all()
    assert year.loc[rated, "rating"].between(1, 5).all()
    assert (year["supervised"] == year["supervised_at"].notna()).all()
    assert 0.02 < year["supervised"].mean() < 0.2
    escalated = year[year["escalated_at"].notna()]
    handle_due = catalogue.deadlines(
        escalated["category"].to_numpy(object), "handle", to_epoch(escalated["accepted_at"])
    )  # the handling deadline acceptance fixed (working time)
    assert len(escalated) > 100 and (to_epoch(escalated["escalated_at"]) >= handle_due).all()
    for col in (*STEP_COLUMNS, "rejected_at", "escalated_at", "supervised_at"):
        assert not (year[col] > AS_OF).any(), col  # nothing after the end of the year


# --------------------------------------------------------------------------- import


def test_import_stores_the_year_once(
    history_engine: Engine, year: pd.DataFrame, imported: ImportStats, locator: Locator,
    routing: RoutingTable,
) -> None:  # fmt: skip
    assert imported.stored == N and imported.refused == [] and imported.skipped == 0
    assert imported.events == N + int(
        year[[*STEP_COLUMNS, "rejected_at", "escalated_at", "supervised_at"]].notna().sum().sum()
    )
    with history_engine.connect() as conn:
        count = conn.execute(text("SELECT count(*) FROM reports")).scalar_one()
        events = conn.execute(text("SELECT count(*) FROM report_events")).scalar_one()
    assert count == N and events == imported.events
    again = import_history(history_engine, year, locator, routing)
    assert again.stored == 0 and again.skipped == N and again.events == 0
    with history_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM reports")).scalar_one() == N
        assert conn.execute(text("SELECT count(*) FROM report_events")).scalar_one() == events


def test_import_keeps_statuses_times_and_flags(
    history_engine: Engine, year: pd.DataFrame, imported: ImportStats
) -> None:
    with history_engine.connect() as conn:
        rows = pd.DataFrame(
            conn.execute(
                text(
                    "SELECT idempotency_key, status, status_at, closed_at, rating, supervised, "
                    "hard, reported_at, due_at, handling_level, id, handle_due_at FROM reports"
                )
            ).all()
        ).set_index("idempotency_key")
    frame = year.set_index("import:" + year["external_id"])
    rows = rows.loc[frame.index]
    assert (rows["status"] == frame["status"]).all()
    closed = frame["evaluated_at"].fillna(frame["rejected_at"])
    assert rows["closed_at"].isna().equals(closed.isna())
    assert (rows["closed_at"].dropna() == closed.dropna()).all()
    assert (rows["rating"].fillna(0).astype(int) == frame["rating"].fillna(0).astype(int)).all()
    assert (rows["supervised"] == frame["supervised"]).all()
    assert (rows["hard"] == frame["hard"]).all()
    assert (rows["reported_at"] == frame["reported_at"]).all()
    assert rows["id"].is_monotonic_increasing  # ids follow time
    plain = frame["escalated_at"].isna()
    expected = catalogue.history_deadlines(
        frame["category"].to_numpy(object),
        *(to_epoch(frame[c]) for c in ("reported_at", "accepted_at", "escalated_at")),
    )
    # due when acceptance said (or from the report, never accepted); escalated when overdue:
    # one level up, due again one handling limit later (as escalate_overdue does)
    assert np.array_equal(to_epoch(rows["due_at"]), expected.due_at)
    assert np.array_equal(to_epoch(rows["handle_due_at"]), expected.handle_due_at, equal_nan=True)
    assert expected.overdue_escalation[~plain.to_numpy()].any()
    levels = {"community": 0, "town": 1, "county": 2}
    base = frame["category"].map(lambda c: levels[CATEGORY_BY_CODE[c].level]) + frame["hard"]
    stored_level = rows["handling_level"].map(levels)
    assert (stored_level[plain] == base[plain].clip(upper=2)).all()
    assert (stored_level[~plain] == base[~plain] + 1).all()


def test_import_writes_one_event_per_step_in_time_order(
    history_engine: Engine, year: pd.DataFrame, imported: ImportStats
) -> None:
    sample = year.sample(300, random_state=3)
    _, events = stored(history_engine, "import:demo-%")
    by_key: dict[str, list[tuple[Any, ...]]] = {}
    for e in events:
        by_key.setdefault(e[0], []).append(e)
    names = {"accept": "accepted_at", "dispatch": "dispatched_at", "start": "handling_at",
             "complete": "handled_at", "verify": "verified_at", "feed_back": "fed_back_at",
             "evaluate": "evaluated_at", "reject": "rejected_at", "supervise": "supervised_at",
             "escalate_overdue": "escalated_at", "discover": "reported_at"}  # fmt: skip
    for row in sample.itertuples(index=False):
        evs = by_key["import:" + row.external_id]
        assert evs[0][2] == "discover" and evs[0][3] is None and evs[0][1] == row.reported_at
        assert [e[1] for e in evs] == sorted(e[1] for e in evs)
        assert {e[6] for e in evs} == {"history import"}
        for e in evs:
            assert getattr(row, names[e[2]]) == e[1]
        assert evs[-1][4] == row.status
        for prev, cur in itertools.pairwise(evs):
            assert cur[3] == prev[4]  # from = the status the previous step left


def test_import_locates_and_routes_as_intake(
    history_engine: Engine, year: pd.DataFrame, imported: ImportStats, locator: Locator
) -> None:
    with history_engine.connect() as conn:
        rows = pd.DataFrame(
            conn.execute(
                text(
                    "SELECT idempotency_key, grid_code, in_coverage, routed_by, h3_11 FROM reports"
                )
            ).all()
        ).set_index("idempotency_key")
        rolled = conn.execute(text("SELECT sum(n) FROM heat_rollup")).scalar_one()
    frame = year.set_index("import:" + year["external_id"])
    rows = rows.loc[frame.index]
    expected = locator.locate(frame["lon"].to_numpy(), frame["lat"].to_numpy()).grid_code
    assert [None if pd.isna(c) else c for c in rows["grid_code"]] == list(expected)
    outside = ~rows["in_coverage"]
    assert int(outside.sum()) == imported.outside_coverage
    assert (rows.loc[outside, "routed_by"] == "outside_coverage").all()
    assert rows["h3_11"].notna().all() and rolled == N  # heat analyses see the history


def test_csv_geojson_and_geoparquet_give_the_same_stored_result(
    tmp_path: Path, history_engine: Engine, locator: Locator, routing: RoutingTable
) -> None:
    frame = synthesize_year(locator, n=1_500, seed=5, end=END, prefix="fmt")
    csv_path = tmp_path / "history.csv"
    frame.to_csv(csv_path, index=False)
    points = gpd.GeoDataFrame(
        frame.drop(columns=["lon", "lat"]),
        geometry=gpd.points_from_xy(frame["lon"], frame["lat"]),
        crs="EPSG:4326",
    )
    geojson_path = tmp_path / "history.geojson"
    points.to_file(geojson_path, driver="GeoJSON")
    parquet_path = tmp_path / "history.parquet"
    points.to_parquet(parquet_path)
    results = []
    for source in (frame, csv_path, geojson_path, parquet_path):
        data = source if isinstance(source, pd.DataFrame) else read_history(source)
        stats = import_history(history_engine, data, locator, routing)
        assert stats.stored == len(frame) and stats.refused == [], source
        results.append(stored(history_engine, "import:fmt-%"))
        with history_engine.begin() as conn:
            conn.execute(text("DELETE FROM reports WHERE idempotency_key LIKE 'import:fmt-%'"))
    assert results[0][0] and results[0][1]
    for other in results[1:]:
        assert other == results[0]


def test_bad_rows_are_refused_by_number_and_the_rest_stored(
    tmp_path: Path, history_engine: Engine, locator: Locator, routing: RoutingTable
) -> None:
    g = locator.grids.iloc[500].geometry.representative_point()
    gx, gy = wgs84_to_gcj02([g.x], [g.y])
    future = (dt.datetime.now(BJ) + dt.timedelta(days=2)).isoformat()
    header = (
        "external_id,channel,category,description,reported_at,lon,lat,crs,status,"
        "accepted_at,handled_at,rating"
    )
    at = "2025-03-01 09:00"
    lines = [
        f"bad-1,grid_app,sanitation,垃圾满溢,2025-03-01 09:00:00,{g.x},{g.y},,,,,",
        f"bad-2,grid_app,sanitation,垃圾满溢,2025-03-01T09:00:00+08:00,abc,{g.y},,,,,",
        f"bad-3,wechat,theft,电瓶被盗,{at},{gx[0]},{gy[0]},gcj02,accepted,2025-03-01 09:05,,",
        f"bad-4,grid_app,ufo_sighting,不明飞行物,2025-03-01 09:00:00,{g.x},{g.y},,,,,",
        f"bad-5,grid_app,sanitation,垃圾满溢,{future},{g.x},{g.y},,,,,",
        f"bad-6,grid_app,sanitation,垃圾满溢,{at},{g.x},{g.y},,handled,{at}:30,2025-03-01 08:59,",
        f"bad-7,grid_app,sanitation,垃圾满溢,{at},{g.x},{g.y},,accepted,{at}:30,,4",
        f"bad-1,grid_app,sanitation,垃圾满溢,2025-03-01 09:00:00,{g.x},{g.y},,,,,",
        "bad-9,hotline_12345,other,北京来电,2025-03-03 11:00,116.39,39.91,,,,,",
        f"bad-10,grid_app,sanitation,垃圾满溢,2025-03-01 09:00,{g.x},{g.y},mars,,,,",
        f"bad-11,grid_app,sanitation,多了一列,2025-03-01 09:00,{g.x},{g.y},,,,,,extra",
    ]
    path = tmp_path / "bad.csv"
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    stats = import_history(history_engine, read_history(path), locator, routing)
    reasons = dict(stats.refused)
    assert sorted(reasons) == [2, 4, 5, 6, 7, 8, 10, 11]
    assert "lon 'abc' is not a number" in reasons[2]
    assert "unknown category 'ufo_sighting'" in reasons[4]
    assert "in the future" in reasons[5]
    assert "handled_at is before accepted_at" in reasons[6]
    assert "a rating is given only to evaluated cases" in reasons[7]
    assert "repeats row 1" in reasons[8]
    assert "unknown crs 'mars'" in reasons[10]
    assert "13 fields" in reasons[11]
    assert stats.stored == 3 and stats.outside_coverage == 1
    with history_engine.connect() as conn:
        got = {
            r.idempotency_key: r
            for r in conn.execute(
                text(
                    "SELECT idempotency_key, grid_code, reported_at, status, in_coverage, "
                    "routed_by, crs_original FROM reports WHERE idempotency_key LIKE 'import:bad-%'"
                )
            )
        }
    assert sorted(got) == ["import:bad-1", "import:bad-3", "import:bad-9"]
    code = locator.locate([g.x], [g.y]).grid_code[0]
    # naive times are Beijing time, as at intake
    assert got["import:bad-1"].reported_at == dt.datetime(2025, 3, 1, 1, 0, tzinfo=dt.UTC)
    assert got["import:bad-1"].grid_code == code
    assert got["import:bad-3"].grid_code == code and got["import:bad-3"].crs_original == "gcj02"
    assert got["import:bad-3"].status == "accepted"
    assert got["import:bad-9"].in_coverage is False
    assert got["import:bad-9"].routed_by == "outside_coverage"


def test_files_that_cannot_be_history_are_refused_whole(
    tmp_path: Path, history_engine: Engine, locator: Locator, routing: RoutingTable
) -> None:
    path = tmp_path / "no_lon.csv"
    path.write_text("channel,category,description,reported_at,lat\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match="no column 'lon'"):
        import_history(history_engine, read_history(path), locator, routing)
    sheet = tmp_path / "history.xlsx"
    sheet.write_bytes(b"PK")
    with pytest.raises(InvalidInput, match=r"use a \.csv"):
        read_history(sheet)
    # Excel in China saves CSV as GB18030
    gbk = tmp_path / "gbk.csv"
    gbk.write_bytes("channel,category,description\ngrid_app,other,中文描述\n".encode("gb18030"))
    assert read_history(gbk)["description"].iloc[0] == "中文描述"


def test_geojson_features_that_are_not_points_are_refused(
    tmp_path: Path, history_engine: Engine, locator: Locator, routing: RoutingTable
) -> None:
    g = locator.grids.iloc[700]
    p = g.geometry.representative_point()
    layer = gpd.GeoDataFrame(
        {
            "external_id": ["geo-1", "geo-2"],
            "channel": ["grid_app", "grid_app"],
            "category": ["sanitation", "sanitation"],
            "description": ["点", "面"],
            "reported_at": ["2025-04-01T09:00:00+08:00"] * 2,
        },
        geometry=[p, g.geometry],
        crs="EPSG:4326",
    )
    path = tmp_path / "mixed.geojson"
    layer.to_file(path, driver="GeoJSON")
    stats = import_history(history_engine, read_history(path), locator, routing)
    assert stats.stored == 1
    assert stats.refused == [(2, f"geometry is a {g.geometry.geom_type}, not a Point")]


def test_the_demo_year_is_loaded_once(
    history_engine: Engine, locator: Locator, routing: RoutingTable
) -> None:
    first = load_demo_history(history_engine, locator, routing, n=400, end=END, prefix="once")
    assert first is not None and first.stored == 400
    assert load_demo_history(history_engine, locator, routing, n=400, prefix="once") is None
