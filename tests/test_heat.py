"""Heat: per H3 cell (resolutions 6-11) and per area, answered from a roll-up that triggers keep
equal to a direct count of the reports — checked against an independent count (the h3 library
on the stored points) for several filters, resolutions and every kind of change to reports."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from zoneinfo import ZoneInfo

import h3
import numpy as np
import pytest
from alembic import command
from alembic.script import ScriptDirectory
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from geo_service.analytics import h3sql, heat
from geo_service.analytics.filters import STATUS_ALIASES, make_filter
from geo_service.app import create_app
from geo_service.db.engine import make_engine
from geo_service.db.migrate import alembic_config, upgrade
from geo_service.locator import Locator
from geo_service.reports.intake import ingest
from geo_service.reports.schemas import ReportIn
from geo_service.reports.taxonomy import CATEGORY_BY_CODE, CHANNELS
from geo_service.routing import RoutingTable
from geo_service.settings import DatabaseSettings, PrivacySettings, Settings
from tests.conftest import auth
from tests.support import read_only

BJ = ZoneInfo("Asia/Shanghai")
START = dt.datetime(2025, 1, 1, tzinfo=BJ)  # this module's reports live in January 2025
CATEGORIES = sorted(CATEGORY_BY_CODE)


def file_reports(engine: Engine, locator: Locator, rows: list[dict]) -> list[int]:  # type: ignore[type-arg]
    """Store reports through intake (the production path); their ids."""
    items = [
        ReportIn.model_validate(
            {
                "channel": r.get("channel", "grid_app"),
                "category": r.get("category", "sanitation"),
                "description": "测试上报",
                "reported_at": r["at"].isoformat(),
                "location": {"lon": r["lon"], "lat": r["lat"], "crs": "wgs84"},
                "reporter": {"name": "张三", "phone": "13900000000"},
            }
        )
        for r in rows
    ]
    with engine.begin() as conn:
        outcomes = ingest(conn, items, [None] * len(items), locator, RoutingTable.load(conn))
    assert all(o.status == "stored" for o in outcomes), [o.reason for o in outcomes]
    return [o.report["id"] for o in outcomes if o.report]


@pytest.fixture(scope="module")
def january(engine: Engine, demo_locator: Locator) -> list[int]:
    """~900 reports over 20 days of January 2025: 60 grids, clustered and scattered, every
    category and channel, a few outside coverage; then some move along the loop."""
    rng = np.random.default_rng(20250101)
    grids = demo_locator.grids
    chosen = grids.iloc[rng.choice(len(grids), 60, replace=False)]
    samples = chosen.geometry.sample_points(rng.integers(1, 30, len(chosen)), rng=rng)
    rows = []
    for k, (pts, g) in enumerate(zip(samples, chosen.geometry, strict=True)):
        rows += [{"lon": p.x, "lat": p.y} for p in getattr(pts, "geoms", [pts])]
        if k % 7 == 0:  # a tight cluster: many reports in one cell
            c = g.representative_point()
            rows += [{"lon": c.x + 1e-5 * i, "lat": c.y} for i in range(12)]
    rows += [{"lon": 121.6 + 0.01 * i, "lat": 31.4} for i in range(5)]  # outside Xiuzhou
    for i, r in enumerate(rows):
        r["at"] = START + dt.timedelta(minutes=int(rng.integers(0, 20 * 24 * 60)))
        r["category"] = CATEGORIES[i % len(CATEGORIES)]
        r["channel"] = CHANNELS[(i // 3) % len(CHANNELS)]
    ids = file_reports(engine, demo_locator, rows)
    with engine.begin() as conn:  # some cases move on, and a few are re-categorised
        conn.execute(
            text("UPDATE reports SET status = 'accepted' WHERE id = ANY(:ids)"), {"ids": ids[::4]}
        )
        conn.execute(
            text("UPDATE reports SET status = 'rejected' WHERE id = ANY(:ids)"), {"ids": ids[1::9]}
        )
        conn.execute(
            text("UPDATE reports SET category = 'theft' WHERE id = ANY(:ids)"), {"ids": ids[2::11]}
        )
    return ids


def _all_reports(conn) -> list:  # type: ignore[no-untyped-def,type-arg]
    return conn.execute(
        text(
            "SELECT id, ST_X(geom) AS lon, ST_Y(geom) AS lat, reported_at, category, channel, "
            "status, grid_code, h3_11 FROM reports WHERE h3_11 IS NOT NULL"
        )
    ).all()


def _reference_cells(rows, f, res) -> dict[int, int]:  # type: ignore[no-untyped-def]
    """Independent count: the h3 library on each stored point (parent of its res-11 cell)."""
    since, until = f.window()
    out: Counter[int] = Counter()
    for r in rows:
        if (since and r.reported_at < since) or (until and r.reported_at >= until):
            continue
        if f.categories and r.category not in f.categories:
            continue
        if f.channels and r.channel not in f.channels:
            continue
        if f.statuses and r.status not in f.statuses:
            continue
        if f.area and not (r.grid_code or "").startswith(f.area):
            continue
        cell11 = h3.latlng_to_cell(r.lat, r.lon, 11)
        cell = h3.str_to_int(h3.cell_to_parent(cell11, res))
        if f.bbox:
            lat, lon = h3.cell_to_latlng(h3.int_to_str(cell))
            if not (f.bbox[0] <= lon <= f.bbox[2] and f.bbox[1] <= lat <= f.bbox[3]):
                continue
        out[cell] += 1
    return dict(out)


def test_sql_h3_parent_equals_the_h3_library(engine: Engine) -> None:
    rng = np.random.default_rng(7)
    lat, lon = rng.uniform(-80, 80, 300), rng.uniform(-179, 179, 300)
    cells = [h3.str_to_int(h3.latlng_to_cell(a, b, 11)) for a, b in zip(lat, lon, strict=True)]
    with engine.connect() as conn:
        for res in range(0, 12):
            got = conn.execute(
                text("SELECT h3_parent(c, :r) FROM unnest(CAST(:cells AS bigint[])) AS c"),
                {"cells": cells, "r": res},
            ).scalars().all()
            want = [h3.str_to_int(h3.cell_to_parent(h3.int_to_str(c), res)) for c in cells]
            assert got == want, res
            assert h3sql.parent(cells, res).tolist() == want


def test_zoom_maps_to_resolution() -> None:
    table = {0: 6, 8: 6, 9: 7, 10: 7, 11: 8, 12: 8, 13: 9, 14: 10, 15: 11, 22: 11}
    assert {z: h3sql.res_for_zoom(z) for z in table} == table


def test_intake_stores_the_res11_cell(engine: Engine, january: list[int]) -> None:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT ST_X(geom) AS lon, ST_Y(geom) AS lat, h3_11 FROM reports "
                 "WHERE id = ANY(:ids)"),
            {"ids": january},
        ).all()
    assert len(rows) == len(january)
    for r in rows:
        assert r.h3_11 == h3.str_to_int(h3.latlng_to_cell(r.lat, r.lon, 11))


FILTERS = [
    {},
    {"since": dt.datetime(2025, 1, 3, 7, 30), "until": dt.datetime(2025, 1, 15, 18, 0)},
    {"since": dt.datetime(2025, 1, 2, 0, 0), "until": dt.datetime(2025, 1, 9)},
    # no whole day
    {"since": dt.datetime(2025, 1, 5, 16, 0), "until": dt.datetime(2025, 1, 5, 22, 0)},
    {"until": dt.datetime(2025, 1, 11, 12, 0, tzinfo=dt.UTC)},
    {"category": "theft,sanitation,fire_risk", "channel": "wechat,grid_app"},
    {"status": "open", "since": dt.datetime(2025, 1, 1, 9, 0)},
    {"status": "accepted,rejected"},
    {"bbox": "120.60,30.65,120.75,30.80"},
]


@pytest.mark.parametrize("kw", FILTERS)
def test_cell_heat_equals_a_direct_count(engine: Engine, january: list[int], kw: dict) -> None:  # type: ignore[type-arg]
    f = make_filter(**kw)
    with engine.connect() as conn:
        rows = _all_reports(conn)
        for res in range(6, 12):
            got = heat.cell_counts(conn, f, res)
            want = _reference_cells(rows, f, res)
            assert want and dict(zip(got["h3"].tolist(), got["n"].tolist(), strict=True)) == want


def test_area_heat_equals_a_direct_count(engine: Engine, january: list[int], demo_locator) -> None:  # type: ignore[no-untyped-def]
    town = demo_locator.grids["town_code"].iloc[500]
    for kw in [*FILTERS[:3], {"area": town, "since": dt.datetime(2025, 1, 4, 12)}]:
        f = make_filter(**kw)
        since, until = f.window()
        with engine.connect() as conn:
            rows = [r for r in _all_reports(conn) if r.grid_code]
            for level, length in (("grid", 15), ("community", 12), ("town", 9), ("district", 6)):
                want = Counter(
                    r.grid_code[:length]
                    for r in rows
                    if (since is None or r.reported_at >= since)
                    and (until is None or r.reported_at < until)
                    and (not f.area or r.grid_code.startswith(f.area))
                )
                got = heat.area_counts(conn, f, level)
                assert dict(zip(got["code"], got["n"].tolist(), strict=True)) == dict(want)


def _rollup_mismatch(conn) -> list:  # type: ignore[no-untyped-def,type-arg]
    """Rows where the roll-up and a direct grouping of reports disagree (none expected)."""
    return conn.execute(
        text("""
        WITH direct AS (
            SELECT (reported_at AT TIME ZONE 'Asia/Shanghai')::date AS day,
                   h3_parent(h3_11, 9) AS h3_9, coalesce(grid_code, '') AS grid_code,
                   category, channel, status, count(*)::bigint AS n
            FROM reports WHERE h3_11 IS NOT NULL GROUP BY 1, 2, 3, 4, 5, 6),
        rolled AS (
            SELECT day, h3_9, grid_code, category, channel, status, sum(n)::bigint AS n
            FROM heat_rollup GROUP BY 1, 2, 3, 4, 5, 6 HAVING sum(n) <> 0)
        (SELECT * FROM direct EXCEPT SELECT * FROM rolled)
        UNION ALL (SELECT * FROM rolled EXCEPT SELECT * FROM direct)
        """)
    ).all()


def test_rollup_follows_every_change_to_reports(engine: Engine, january: list[int]) -> None:
    ids = january
    with engine.connect() as conn:
        trans = conn.begin()
        try:
            assert _rollup_mismatch(conn) == []
            steps = [
                ("UPDATE reports SET status = 'dispatched' WHERE id = ANY(:ids)", ids[::3]),
                ("UPDATE reports SET category = 'flood_risk', channel = 'visit' "
                 "WHERE id = ANY(:ids)", ids[1::5]),
                ("UPDATE reports SET grid_code = NULL WHERE id = ANY(:ids)", ids[2::13]),
                ("UPDATE reports SET reported_at = reported_at + interval '20 hours' "
                 "WHERE id = ANY(:ids)", ids[3::7]),
                ("UPDATE reports SET description = 'x' WHERE id = ANY(:ids)", ids),  # no change
                ("UPDATE reports SET geom = ST_Translate(geom, 0.01, 0) WHERE id = ANY(:ids)",
                 ids[4::10]),  # moved: cell cleared, uncounted until recomputed
                ("UPDATE reports SET duplicate_of = NULL WHERE duplicate_of = ANY(:ids)", ids),
                ("DELETE FROM reports WHERE id = ANY(:ids)", ids[5::17]),
                # another writer storing reports with their cell already computed
                ("INSERT INTO reports (id, channel, category, description, reported_at, "
                 "lon_original, lat_original, crs_original, geom, in_coverage, grid_code, "
                 "handling_level, routed_by, status, due_at, h3_11) "
                 "SELECT nextval('reports_id_seq'), channel, category, description, "
                 "reported_at, lon_original, lat_original, crs_original, geom, in_coverage, "
                 "grid_code, handling_level, routed_by, status, due_at, h3_11 "
                 "FROM reports WHERE id = ANY(:ids)", ids[6::5]),
            ]
            for sql, chosen in steps:
                conn.execute(text(sql), {"ids": chosen})
                assert _rollup_mismatch(conn) == [], sql
            moved = conn.execute(
                text("SELECT count(*) FROM reports WHERE h3_11 IS NULL AND id = ANY(:ids)"),
                {"ids": ids[4::10]},
            ).scalar_one()
            assert moved > 0
            assert heat.backfill_h3(conn) >= moved
            assert _rollup_mismatch(conn) == []
            conn.execute(text("TRUNCATE reports CASCADE"))
            assert conn.execute(text("SELECT count(*) FROM heat_rollup")).scalar_one() == 0
        finally:
            trans.rollback()


def test_rebuild_gives_the_same_rollup(engine: Engine, january: list[int]) -> None:
    with engine.connect() as conn:
        trans = conn.begin()
        try:
            before = conn.execute(text("SELECT sum(n) FROM heat_rollup")).scalar_one()
            heat.rebuild_heat_rollup(conn)
            assert conn.execute(text("SELECT sum(n) FROM heat_rollup")).scalar_one() == before
            assert _rollup_mismatch(conn) == []
        finally:
            trans.rollback()


def test_split_window_separates_whole_days_from_the_ends() -> None:
    days, edges = heat.split_window(
        dt.datetime(2025, 1, 3, 7, 30, tzinfo=BJ), dt.datetime(2025, 1, 6, 18, tzinfo=BJ)
    )
    assert days == (dt.date(2025, 1, 4), dt.date(2025, 1, 6))
    assert edges == [
        (dt.datetime(2025, 1, 3, 7, 30, tzinfo=BJ), dt.datetime(2025, 1, 4, tzinfo=BJ)),
        (dt.datetime(2025, 1, 6, tzinfo=BJ), dt.datetime(2025, 1, 6, 18, tzinfo=BJ)),
    ]
    # a UTC midnight is 08:00 in Beijing: not a whole day
    days, edges = heat.split_window(dt.datetime(2025, 1, 3, tzinfo=dt.UTC), None)
    assert days == (dt.date(2025, 1, 4), None) and len(edges) == 1
    assert heat.split_window(None, None) == ((None, None), [])


WINDOW = {"from": "2025-01-01T00:00:00+08:00", "to": "2025-01-21T00:00:00+08:00"}
XIUZHOU = "120.5,30.55,120.85,31.0"


def test_public_heat_suppresses_cells_under_k(client: TestClient, keys, january) -> None:  # type: ignore[no-untyped-def]
    # resolution 8: the finest the public may see (GEO_PRIVACY_PUBLIC_H3_RES)
    full = client.get("/v1/analytics/heat", params={**WINDOW, "res": 8, "bbox": XIUZHOU, "k": 0},
                      headers=auth(keys["operator"]))
    assert full.status_code == 200, full.text
    counts = {f["id"]: f["properties"]["n"] for f in full.json()["features"]}
    assert any(n < 5 for n in counts.values()) and any(n >= 5 for n in counts.values())
    public = client.get("/v1/analytics/heat", params={**WINDOW, "res": 8, "bbox": XIUZHOU})
    assert public.status_code == 200
    assert public.headers["content-type"].startswith("application/geo+json")
    body = public.json()
    assert {f["id"]: f["properties"]["n"] for f in body["features"]} == {
        c: n for c, n in counts.items() if n >= 5
    }
    assert body["analysis"]["k"] == 5
    assert body["analysis"]["suppressed"] == sum(1 for n in counts.values() if n < 5)
    stricter = client.get("/v1/analytics/heat",
                          params={**WINDOW, "res": 8, "bbox": XIUZHOU, "k": 10})
    assert {f["id"] for f in stricter.json()["features"]} == {
        c for c, n in counts.items() if n >= 10
    }


def test_lowering_k_needs_a_staff_key(client: TestClient, keys) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/v1/analytics/heat", params={"k": 0}).status_code == 401
    r = client.get("/v1/analytics/heat", params={"k": 2}, headers=auth(keys["reporter"]))
    assert r.status_code == 403 and "k below 5" in r.json()["message"]
    for role in ("planner", "admin"):
        assert client.get("/v1/analytics/heat", params={"k": 0},
                          headers=auth(keys[role])).status_code == 200
    assert client.get("/v1/analytics/heat", headers=auth("Bearer nope")).status_code == 401


def test_heat_geojson_is_lon_lat_hexagons(client: TestClient, keys, january) -> None:  # type: ignore[no-untyped-def]
    r = client.get("/v1/analytics/heat", params={**WINDOW, "zoom": 12, "k": 0},
                   headers=auth(keys["admin"]))
    body = r.json()
    assert body["type"] == "FeatureCollection" and body["analysis"]["res"] == 8
    f = body["features"][0]
    assert h3.get_resolution(f["id"]) == 8 and f["geometry"]["type"] == "Polygon"
    ring = np.array(f["geometry"]["coordinates"][0])
    assert len(ring) == 7 and np.allclose(ring[0], ring[-1])
    assert (ring[:, 0] > 119).all() and (ring[:, 0] < 122).all()  # longitude first
    lat, lon = h3.cell_to_latlng(f["id"])
    assert abs(ring[:-1, 0].mean() - lon) < 0.01 and abs(ring[:-1, 1].mean() - lat) < 0.01
    assert set(f["properties"]) == {"cell", "n"}


def test_per_household_heat_per_area(client: TestClient, keys, january, demo_locator) -> None:  # type: ignore[no-untyped-def]
    r = client.get("/v1/analytics/heat",
                   params={**WINDOW, "level": "grid", "per_household": True, "k": 0},
                   headers=auth(keys["operator"]))
    assert r.status_code == 200, r.text
    feats = r.json()["features"]
    assert len(feats) == len(demo_locator.grids)  # every grid, zeros included
    households = dict(zip(demo_locator.grids["code"], demo_locator.grids["households"],
                          strict=True))
    with_reports = [f for f in feats if f["properties"]["n"] > 0]
    assert with_reports
    for f in with_reports:
        p = f["properties"]
        assert p["per_household"] == pytest.approx(p["n"] / households[p["code"]], rel=1e-12)
        assert not {"grid_worker", "grid_leader", "reporter", "phone"} & set(p)
    town = client.get("/v1/analytics/heat",
                      params={**WINDOW, "level": "town", "per_household": True, "k": 0},
                      headers=auth(keys["operator"])).json()["features"]
    assert sum(f["properties"]["n"] for f in town) == sum(f["properties"]["n"] for f in feats)
    public = client.get("/v1/analytics/heat", params={**WINDOW, "level": "grid"}).json()
    blanked = [f for f in public["features"] if f["properties"]["suppressed"]]
    assert blanked and all(f["properties"]["n"] is None for f in blanked)
    assert all(f["properties"]["n"] in (0, None) or f["properties"]["n"] >= 5
               for f in public["features"])


def test_bad_filters_are_named(client: TestClient, keys) -> None:  # type: ignore[no-untyped-def]
    for params, word in (
        ({"category": "ufo"}, "category"),
        ({"status": "lost"}, "status"),
        ({"channel": "fax"}, "channel"),
        ({"from": "2025-02-01", "to": "2025-01-01"}, "before"),
        ({"bbox": "1,2,3"}, "bbox"),
        ({"area": "12"}, "area"),
        ({"per_household": True}, "per_household"),
        ({"res": 12}, "res"),
        ({"res": 11}, "bbox"),
    ):
        r = client.get("/v1/analytics/heat", params=params, headers=auth(keys["operator"]))
        assert r.status_code == 422, params
        assert word in r.text, (params, r.text)


def test_status_aliases() -> None:
    assert make_filter(status="open").statuses == STATUS_ALIASES["open"]
    assert make_filter(status="closed,accepted").statuses == ("evaluated", "rejected", "accepted")


# --------------------------------------------------------------------------- reads never write

RAGGED = {"from": "2025-01-02T06:30:00+08:00", "to": "2025-01-20T18:00:00+08:00"}


def test_analytics_layers_and_map_pages_write_nothing(database_url: str, january) -> None:  # type: ignore[no-untyped-def]
    """Layers and pages are reads: served by an app whose every database session is read only
    (where any write, or SELECT ... FOR UPDATE, fails), each answers as usual."""
    url = read_only(database_url)
    probe = make_engine(url, pool_size=1)
    try:
        with probe.connect() as conn, pytest.raises(DBAPIError, match="read-only transaction"):
            conn.execute(text("UPDATE reports SET status = status WHERE id < 0"))
    finally:
        probe.dispose()
    reads = [
        ("/v1/analytics/heat", {**WINDOW, "res": 9}),
        ("/v1/analytics/heat", {**RAGGED, "res": 7}),  # roll-up days and the ragged ends
        ("/v1/analytics/heat", {**RAGGED, "res": 10, "bbox": XIUZHOU}),  # reports one by one
        ("/v1/analytics/heat", {**RAGGED, "level": "grid", "per_household": True}),
        ("/v1/analytics/hotspots", {**WINDOW, "res": 8}),
        ("/v1/analytics/hotspots", {**WINDOW, "level": "grid"}),
        ("/v1/analytics/emerging-hotspots", {**WINDOW, "slice": "day", "res": 8}),
        ("/v1/analytics/grid-stats", RAGGED),
        ("/maps/heat", WINDOW),
        ("/maps/hotspots", WINDOW),
        ("/maps/grids", WINDOW),
    ]
    fine = PrivacySettings(public_h3_res=11)  # the public may ask for fine cells here
    with TestClient(create_app(Settings(database=DatabaseSettings(url=url), privacy=fine))) as ro:
        for path, params in reads:
            r = ro.get(path, params=params)
            assert r.status_code == 200, (path, params, r.text[:300])


def test_migration_0009_gives_reports_stored_without_a_cell_theirs(new_database) -> None:  # type: ignore[no-untyped-def]
    """Reports a foreign writer stored without ``h3_11`` get the cell the h3 library gives
    their point when 0009 runs, and the roll-up counts them from then on."""
    url = new_database("geo_h3_fill")
    upgrade(url)
    points = [(120.7512, 30.7634), (120.7513, 30.7634), (120.9, 30.6), (121.6, 31.4)]
    engine = make_engine(url, pool_size=1)
    try:
        with engine.begin() as conn:
            for lon, lat in points:
                conn.execute(
                    text(
                        "INSERT INTO reports (channel, category, description, reported_at, "
                        "lon_original, lat_original, crs_original, geom, in_coverage, "
                        "handling_level, routed_by, due_at) VALUES ('visit', 'sanitation', "
                        "'x', now(), :lon, :lat, 'wgs84', ST_SetSRID(ST_Point(:lon, :lat), 4326), "
                        "false, 'community', 'fallback', now())"
                    ),
                    {"lon": lon, "lat": lat},
                )
            assert conn.execute(text("SELECT count(h3_11) FROM reports")).scalar_one() == 0
            assert conn.execute(text("SELECT count(*) FROM heat_rollup")).scalar_one() == 0
        cfg = alembic_config(url)
        below = ScriptDirectory.from_config(cfg).get_revision("0009").down_revision
        command.downgrade(cfg, str(below))
        upgrade(url)
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT h3_11, ST_X(geom) AS lon, ST_Y(geom) AS lat FROM reports")
            ).all()
            counted = conn.execute(text("SELECT sum(n) FROM heat_rollup")).scalar_one()
    finally:
        engine.dispose()
    assert sorted(r.h3_11 for r in rows) == sorted(
        h3.str_to_int(h3.latlng_to_cell(lat, lon, 11)) for lon, lat in points
    )
    assert counted == len(points)
