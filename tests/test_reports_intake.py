"""Filing reports: located and routed at intake in one transaction; idempotent; bad input is a
4xx naming the problem and writes nothing."""

from __future__ import annotations

import datetime as dt
import threading
import uuid

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from geo_service.coords import wgs84_to_bd09, wgs84_to_gcj02
from geo_service.locator import Locator
from geo_service.stats import catalogue
from tests.conftest import auth

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def point_in(locator: Locator, i: int) -> tuple[float, float, str]:
    g = locator.grids.iloc[i]
    p = g.geometry.representative_point()
    return p.x, p.y, g["code"]


def report(lon: float, lat: float, crs: str = "wgs84", **kw) -> dict:  # type: ignore[no-untyped-def]
    body = {"channel": "grid_app", "category": "safety_hazard",
            "description": "路边广告牌有掉落趋势", "reported_at": NOW.isoformat(),
            "location": {"lon": lon, "lat": lat, "crs": crs},
            "photos": ["https://example.org/p/1.jpg"],
            "reporter": {"name": "陈康", "phone": "13800000000"}}
    body.update(kw)
    return body


def count_reports(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM reports")).scalar_one()


def test_report_is_located_routed_and_stored(client: TestClient, keys, demo_locator) -> None:
    x, y, code = point_in(demo_locator, 100)
    gx, gy = wgs84_to_gcj02([x], [y])
    r = client.post("/v1/reports", json=report(gx[0], gy[0], "gcj02", channel="wechat"),
                    headers=auth(keys["reporter"]))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["grid"]["code"] == code
    assert body["community_code"] == code[:12] and body["town_code"] == code[:9]
    assert body["status"] == "discovered" and body["in_coverage"] is True
    assert body["unit"]["type"] == "grid_team" and body["unit"]["code"] == f"grid_team:{code}"
    assert body["routed_by"] == "rule" and body["handling_level"] == "community"
    assert body["boundary_version"] == "demo-2025"
    assert abs(body["location"]["lon"] - x) < 1e-8
    due = dt.datetime.fromisoformat(body["due_at"])  # provisional: the limit from the report
    assert due == catalogue.provisional_due("safety_hazard", NOW) > NOW


def test_baidu_coordinates_are_accepted(client: TestClient, keys, demo_locator) -> None:
    x, y, code = point_in(demo_locator, 101)
    bx, by = wgs84_to_bd09([x], [y])
    r = client.post("/v1/reports", json=report(bx[0], by[0], "bd09", channel="hotline_12345"),
                    headers=auth(keys["operator"]))
    assert r.status_code == 201 and r.json()["grid"]["code"] == code


def test_category_without_rule_falls_back_to_the_territorial_unit(
    client: TestClient, keys, demo_locator
) -> None:
    x, y, code = point_in(demo_locator, 102)
    # river pollution has no town-level rule: the town's command centre answers (属地兜底)
    r = client.post("/v1/reports", json=report(x, y, category="river_pollution"),
                    headers=auth(keys["operator"]))
    assert r.status_code == 201
    body = r.json()
    assert body["handling_level"] == "town" and body["routed_by"] == "territorial"
    assert body["unit"]["code"] == f"town_centre:{code[:9]}"
    # illegal construction has one: the town's law-enforcement team
    r = client.post("/v1/reports", json=report(x, y, category="illegal_construction"),
                    headers=auth(keys["operator"]))
    assert r.json()["unit"]["code"] == f"town_law_enforcement:{code[:9]}"
    assert r.json()["routed_by"] == "rule"


def test_hard_cases_start_one_level_up(client: TestClient, keys, demo_locator) -> None:
    x, y, _ = point_in(demo_locator, 103)
    r = client.post("/v1/reports", json=report(x, y, category="illegal_construction", hard=True),
                    headers=auth(keys["operator"]))
    assert r.json()["handling_level"] == "county"
    assert r.json()["unit"]["code"] == "urban_management:330411"


def test_outside_coverage_is_stored_flagged_and_sent_to_the_district_centre(
    client: TestClient, keys
) -> None:
    r = client.post("/v1/reports", json=report(116.39, 39.91), headers=auth(keys["operator"]))
    assert r.status_code == 201
    body = r.json()
    assert body["in_coverage"] is False and body["grid"] is None
    assert body["routed_by"] == "outside_coverage"
    assert body["unit"]["code"] == "district_centre:330411"


@pytest.mark.parametrize(
    "change, fragment",
    [
        ({"category": "ufo_sighting"}, "unknown category 'ufo_sighting'"),
        ({"channel": "fax"}, "channel"),
        ({"reported_at": (NOW + dt.timedelta(days=1)).isoformat()}, "in the future"),
        ({"location": {"lon": 200, "lat": 30.7}}, "invalid coordinates"),
        ({"location": {"lon": 120.7, "lat": 30.7, "crs": "mars"}}, "unknown crs"),
        ({"description": ""}, "description"),
        ({"reporter": {"phone": "call me"}}, "reporter.phone"),
        ({"photos": ["not a url"]}, "photos.0"),
        ({"extra_field": 1}, "extra_field"),
    ],
)
def test_bad_reports_are_refused_naming_the_problem_and_write_nothing(
    client: TestClient, keys, engine, change, fragment
) -> None:
    before = count_reports(engine)
    body = report(120.75, 30.75)
    body.update(change)
    r = client.post("/v1/reports", json=body, headers=auth(keys["operator"]))
    assert r.status_code == 422, r.text
    assert fragment in r.json()["message"]
    assert count_reports(engine) == before


def test_malformed_json_and_oversize_bodies_are_refused(client: TestClient, keys) -> None:
    r = client.post("/v1/reports", content=b"{nope", headers=auth(keys["operator"]))
    assert r.status_code == 422 and "invalid report" in r.json()["message"]
    huge = b"[" + b" " * (33 * 1024 * 1024) + b"]"
    r = client.post("/v1/reports:bulk", content=huge, headers=auth(keys["operator"]))
    assert r.status_code == 413


def test_same_key_same_body_answers_the_first_response(client: TestClient, keys, engine,
                                                        demo_locator) -> None:
    x, y, _ = point_in(demo_locator, 104)
    body = report(x, y)
    h = {**auth(keys["reporter"]), "Idempotency-Key": str(uuid.uuid4())}
    first = client.post("/v1/reports", json=body, headers=h)
    before = count_reports(engine)
    again = client.post("/v1/reports", json=body, headers=h)
    assert first.status_code == 201 and again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert count_reports(engine) == before
    other = client.post("/v1/reports", json={**body, "description": "另一件事"}, headers=h)
    assert other.status_code == 409 and "different report" in other.json()["message"]


def test_twenty_concurrent_retries_store_exactly_one_row(live_server: str, keys, engine,
                                                          demo_locator) -> None:
    """20 clients retry one key at once against a real server: one row, one answer."""
    import httpx

    x, y, _ = point_in(demo_locator, 105)
    key = str(uuid.uuid4())
    body = orjson.dumps(report(x, y))
    h = {**auth(keys["reporter"]), "Idempotency-Key": key, "content-type": "application/json"}
    statuses: list[int] = []
    ids: list[int] = []
    barrier = threading.Barrier(20)

    def retry() -> None:
        with httpx.Client(base_url=live_server, timeout=30) as http:
            barrier.wait()
            r = http.post("/v1/reports", content=body, headers=h)
        statuses.append(r.status_code)
        ids.append(r.json()["id"])

    threads = [threading.Thread(target=retry) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200] * 19 + [201]
    assert len(set(ids)) == 1
    with engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM reports WHERE idempotency_key LIKE :k"),
                         {"k": f"%:{key}"}).scalar_one()
    assert n == 1


def test_bulk_answers_per_item_and_a_refused_item_blocks_nothing(
    client: TestClient, keys, engine, demo_locator
) -> None:
    x, y, code = point_in(demo_locator, 106)
    ext = uuid.uuid4().hex
    items = [report(x, y, external_id=f"{ext}-1"),
             report(x, y, category="nonsense", external_id=f"{ext}-2"),
             report(x, y, external_id=f"{ext}-3", location={"lon": 500, "lat": 30}),
             report(x, y, external_id=f"{ext}-4", category="sanitation")]
    before = count_reports(engine)
    r = client.post("/v1/reports:bulk", json=items, headers=auth(keys["operator"]))
    assert r.status_code == 200
    out = r.json()
    assert [i["status"] for i in out["items"]] == ["stored", "refused", "refused", "stored"]
    assert "unknown category" in out["items"][1]["reason"]
    assert "invalid coordinates" in out["items"][2]["reason"]
    assert out["items"][0]["report"]["grid"]["code"] == code
    assert count_reports(engine) == before + 2
    again = client.post("/v1/reports:bulk", json=items, headers=auth(keys["operator"])).json()
    assert [i["status"] for i in again["items"]] == ["duplicate", "refused", "refused",
                                                     "duplicate"]
    assert again["items"][0]["id"] == out["items"][0]["id"]
    assert count_reports(engine) == before + 2


def test_bulk_ndjson_with_a_malformed_line(client: TestClient, keys, demo_locator) -> None:
    x, y, _ = point_in(demo_locator, 107)
    lines = [orjson.dumps(report(x, y)), b"{this is not json", orjson.dumps(report(x, y))]
    r = client.post("/v1/reports:bulk", content=b"\n".join(lines),
                    headers={**auth(keys["grid_worker"]),
                             "content-type": "application/x-ndjson"})
    items = r.json()["items"]
    assert [i["status"] for i in items] == ["stored", "refused", "stored"]
    assert items[1]["reason"].startswith("line 2: malformed JSON")


def test_bulk_over_10000_is_413(client: TestClient, keys) -> None:
    r = client.post("/v1/reports:bulk", json=[{}] * 10_001, headers=auth(keys["operator"]))
    assert r.status_code == 413 and "10001 reports" in r.json()["message"]


def test_near_duplicate_is_linked_to_the_open_case(client: TestClient, keys,
                                                    demo_locator) -> None:
    x, y, _ = point_in(demo_locator, 108)
    first = client.post("/v1/reports", json=report(x, y, category="fire_risk"),
                        headers=auth(keys["operator"])).json()
    near = client.post("/v1/reports", json=report(x + 0.0002, y, category="fire_risk"),
                       headers=auth(keys["operator"])).json()  # ~19 m east
    far = client.post("/v1/reports", json=report(x + 0.002, y, category="fire_risk"),
                      headers=auth(keys["operator"])).json()  # ~190 m east
    other = client.post("/v1/reports", json=report(x, y, category="theft"),
                        headers=auth(keys["operator"])).json()
    assert near["suspected_duplicate_of"] == first["id"]
    assert far["suspected_duplicate_of"] is None
    assert other["suspected_duplicate_of"] is None
    stored = client.get(f"/v1/reports/{near['id']}", headers=auth(keys["operator"])).json()
    assert stored["duplicate_of"] == first["id"]
