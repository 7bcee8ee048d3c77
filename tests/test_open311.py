"""The Open311 GeoReport v2 facade: services from the taxonomy, requests filed through the same
intake as /v1 and read back, errors in Open311's format, and never any personal data.

Reads here go through an operator key (:data:`STAFF`), which sees every report exactly, so the
filters are checked on exact points; what the public sees (coarse cells, no text) is
``tests/test_privacy_public.py``'s."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from geo_service.coords import wgs84_to_gcj02
from geo_service.locator import Locator
from geo_service.reports.taxonomy import CATEGORIES, CHANNELS
from geo_service.stats import catalogue
from tests.conftest import auth

BASE = "/open311/v2"
PHONE = "13912345678"
FIRST, LAST = "小明", "欧阳"  # stored as 欧阳小明
REQUEST_FIELDS = {
    "service_request_id", "status", "status_notes", "service_name", "service_code",
    "description", "agency_responsible", "service_notice", "requested_datetime",
    "updated_datetime", "expected_datetime", "address", "address_id", "zipcode", "lat",
    "long", "media_url",
}  # fmt: skip


def point(locator: Locator, i: int) -> tuple[float, float, str]:
    """A point inside demo grid ``i`` (indexes 2000+ are used by no other test module)."""
    g = locator.grids.iloc[i]
    p = g.geometry.representative_point()
    return p.x, p.y, g["code"]


def box(x: float, y: float, d: float = 1e-5) -> str:
    return f"{x - d},{y - d},{x + d},{y + d}"


def form(key: str, x: float, y: float, **kw: str) -> dict[str, str]:
    """A POST body as an Open311 client sends it (form fields)."""
    body = {"api_key": key, "service_code": "safety_hazard", "lat": repr(y), "long": repr(x),
            "description": "楼道堆放杂物堵塞消防通道", "media_url": "https://example.org/p/9.jpg",
            "first_name": FIRST, "last_name": LAST, "phone": PHONE,
            "email": "ouyang@example.org", "device_id": "dev-1"}  # fmt: skip
    body.update(kw)
    return body


def file(client: TestClient, body: dict[str, str]) -> str:
    r = client.post(f"{BASE}/requests.json", data=body)
    assert r.status_code == 200, r.text
    return str(r.json()[0]["service_request_id"])


STAFF: dict[str, str] = {}  # Authorization of an operator key, set for the module


@pytest.fixture(scope="module", autouse=True)
def _staff(keys: dict[str, str]) -> None:
    STAFF.update(auth(keys["operator"]))


def one(client: TestClient, rid: str) -> dict[str, Any]:
    r = client.get(f"{BASE}/requests/{rid}.json", headers=STAFF)
    assert r.status_code == 200, r.text
    body = r.json()
    assert isinstance(body, list) and len(body) == 1
    return body[0]


def ids(client: TestClient, **params: str) -> list[str]:
    r = client.get(f"{BASE}/requests.json", params=params, headers=STAFF)
    assert r.status_code == 200, r.text
    return [x["service_request_id"] for x in r.json()]


def count_reports(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM reports")).scalar_one())


def open311_error(r: Any, status: int, fragment: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert isinstance(body, list) and len(body) == 1 and body[0]["code"] == status, body
    assert fragment in body[0]["description"], body


# --- services ---------------------------------------------------------------------------------


def test_services_list_covers_every_category(client: TestClient) -> None:
    r = client.get(f"{BASE}/services.json")
    assert r.status_code == 200
    services = r.json()
    assert [s["service_code"] for s in services] == [c.code for c in CATEGORIES]
    for s, c in zip(services, CATEGORIES, strict=True):
        assert s["service_name"] == c.name
        assert s["metadata"] is False and s["type"] == "realtime"
        limit = catalogue.entry(c.code).limits().handle  # the catalogue's handling limit
        assert c.name_en in s["description"] and limit.label_zh() in s["description"]
        assert c.code in s["keywords"] and c.level in s["group"]


def test_service_definition_asks_no_extra_attributes(client: TestClient) -> None:
    r = client.get(f"{BASE}/services/theft.json")
    assert r.status_code == 200
    assert r.json() == {"service_code": "theft", "attributes": []}


def test_unknown_service_is_a_404_in_open311_error_format(client: TestClient) -> None:
    open311_error(client.get(f"{BASE}/services/ufo_sighting.json"), 404, "ufo_sighting")


def test_unknown_resources_and_formats_answer_in_open311_error_format(client: TestClient) -> None:
    open311_error(client.get(f"{BASE}/nothing/here"), 404, "GET 'nothing/here'")
    open311_error(client.post(f"{BASE}/services.json"), 404, "POST 'services.json'")
    open311_error(client.get(f"{BASE}/services.yaml"), 400, "format 'yaml' is not supported")
    open311_error(client.get(f"{BASE}/requests/999999999999.json"), 404, "999999999999")
    open311_error(client.get(f"{BASE}/requests/abc.json"), 404, "'abc' not found")


# --- filing -----------------------------------------------------------------------------------


def test_form_encoded_request_round_trips_and_is_the_same_report_on_v1(
    client: TestClient, keys: dict[str, str], demo_locator: Locator
) -> None:
    x, y, code = point(demo_locator, 2000)
    r = client.post(f"{BASE}/requests.json", data=form(keys["reporter"], x, y))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    (answer,) = r.json()
    assert set(answer) == {"service_request_id", "service_notice", "account_id"}
    assert answer["account_id"] is None and "网格工作组" in answer["service_notice"]
    rid = answer["service_request_id"]
    assert isinstance(rid, str) and rid.isdigit()

    got = one(client, rid)
    assert set(got) == REQUEST_FIELDS
    assert got["status"] == "open" and got["service_code"] == "safety_hazard"
    assert got["service_name"] == "安全隐患"
    assert abs(got["lat"] - y) < 1e-9 and abs(got["long"] - x) < 1e-9
    assert got["address_id"] == code and got["address"].startswith("秀洲区 / ")
    assert got["media_url"] == "https://example.org/p/9.jpg"
    assert got["description"] == "楼道堆放杂物堵塞消防通道"
    assert "已上报 (discovered)" in got["status_notes"]
    requested = dt.datetime.fromisoformat(got["requested_datetime"])
    expected = dt.datetime.fromisoformat(got["expected_datetime"])
    assert got["requested_datetime"].endswith("+08:00")
    # expected: the handling limit (1 working day) counted from the report, in working time
    assert expected == catalogue.provisional_due("safety_hazard", requested)

    v1 = client.get(f"/v1/reports/{rid}", headers=auth(keys["reporter"]))
    assert v1.status_code == 200, v1.text
    report = v1.json()
    assert report["unit"]["code"] == f"grid_team:{code}"
    assert got["agency_responsible"] == report["unit"]["name"]
    assert report["channel"] == "wechat" and report["grid_code"] == code
    assert report["reporter"] == {"name": "欧阳小明", "phone": PHONE}  # stored, shown on /v1 only


def test_json_body_bearer_key_gcj02_and_channel_attribute_are_accepted(
    client: TestClient, keys: dict[str, str], demo_locator: Locator
) -> None:
    x, y, code = point(demo_locator, 2001)
    gx, gy = wgs84_to_gcj02([x], [y])
    body = {"service_code": "sanitation", "lat": float(gy[0]), "long": float(gx[0]),
            "crs": "gcj02", "description": "垃圾桶满溢", "attribute": {"channel": "hotline_12345"},
            "address_string": "洪兴路 88 号"}  # fmt: skip
    r = client.post(f"{BASE}/requests.json", json=body, headers=auth(keys["operator"]))
    assert r.status_code == 200, r.text
    rid = r.json()[0]["service_request_id"]
    got = one(client, rid)
    assert abs(got["lat"] - y) < 1e-7 and abs(got["long"] - x) < 1e-7
    assert got["address_id"] == code
    assert got["description"] == "垃圾桶满溢\n地址：洪兴路 88 号"
    v1 = client.get(f"/v1/reports/{rid}", headers=auth(keys["operator"])).json()
    assert v1["channel"] == "hotline_12345" and v1["location"]["crs_original"] == "gcj02"
    assert "reporter" not in v1


def test_a_request_outside_coverage_goes_to_the_district_centre_without_an_address(
    client: TestClient, keys: dict[str, str]
) -> None:
    r = client.post(f"{BASE}/requests.json", data=form(keys["operator"], 116.39, 39.91))
    assert r.status_code == 200, r.text
    assert "不在网格覆盖范围内" in r.json()[0]["service_notice"]
    got = one(client, r.json()[0]["service_request_id"])
    assert got["address"] is None and got["address_id"] is None
    assert got["agency_responsible"] == "秀洲区社会治理综合指挥中心"


def test_a_request_without_description_takes_the_service_name(
    client: TestClient, keys: dict[str, str], demo_locator: Locator
) -> None:
    x, y, _ = point(demo_locator, 2002)
    rid = file(client, form(keys["grid_worker"], x, y, service_code="flood_risk", description=""))
    assert one(client, rid)["description"] == "防汛排涝"


@pytest.mark.parametrize(
    "how, fragment",
    [
        ("missing", "api_key is required"),
        ("unknown", "api_key is not valid"),
        ("planner", "role 'planner' may not"),
        ("in_url", "not in the URL"),
    ],
)
def test_filing_without_a_valid_filing_key_is_403_and_writes_nothing(
    client: TestClient, keys: dict[str, str], engine: Engine, how: str, fragment: str
) -> None:
    body = form("", 120.75, 30.75)
    url = f"{BASE}/requests.json"
    if how == "unknown":
        body["api_key"] = "gs_not-a-real-key"
    elif how == "planner":
        body["api_key"] = keys["planner"]
    elif how == "in_url":
        url += f"?api_key={keys['reporter']}"
    before = count_reports(engine)
    open311_error(client.post(url, data=body), 403, fragment)
    assert count_reports(engine) == before


@pytest.mark.parametrize(
    "change, fragment",
    [
        ({"service_code": ""}, "service_code is required"),
        ({"service_code": "ufo_sighting"}, "service_code 'ufo_sighting' is not a known service"),
        ({"lat": ""}, "lat is required"),
        ({"long": ""}, "long is required"),
        ({"lat": "north"}, "lat must be a decimal number"),
        ({"lat": "200"}, "lat/long: point 0 has invalid coordinates"),
        ({"crs": "mars"}, "crs: unknown crs 'mars'"),
        ({"attribute[channel]": "fax"}, "attribute[channel] must be one of"),
        ({"media_url": "not a url"}, "media_url:"),
        ({"phone": "call me"}, "phone:"),
        ({"description": "长" * 5001}, "description:"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter_and_write_nothing(
    client: TestClient, keys: dict[str, str], engine: Engine, change: dict[str, str], fragment: str
) -> None:
    body = form(keys["reporter"], 120.75, 30.75)
    body.update(change)
    before = count_reports(engine)
    open311_error(client.post(f"{BASE}/requests.json", data=body), 400, fragment)
    assert count_reports(engine) == before


def test_malformed_json_bodies_are_400(client: TestClient, keys: dict[str, str]) -> None:
    h = {**auth(keys["reporter"]), "content-type": "application/json"}
    open311_error(client.post(f"{BASE}/requests.json", content=b"{nope", headers=h), 400,
                  "malformed JSON")  # fmt: skip
    open311_error(client.post(f"{BASE}/requests.json", json=[1], headers=h), 400, "object")
    open311_error(
        client.post(f"{BASE}/requests.json", json={"lat": [1]}, headers=h), 400, "lat must be"
    )


# --- reading ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spread(client: TestClient, keys: dict[str, str], demo_locator: Locator) -> dict[str, Any]:
    """Reports around grid 2003 (two services, one closed, one rejected), one ~200 m off, and
    two filed on /v1 10 and 100 days ago at grid 2004."""
    x, y, _ = point(demo_locator, 2003)
    k = keys["reporter"]
    out: dict[str, Any] = {"x": x, "y": y}
    out["hazard"] = file(client, form(k, x, y))
    out["theft"] = file(client, form(k, x, y, service_code="theft"))
    out["closed"] = file(client, form(k, x, y, service_code="sanitation"))
    out["rejected"] = file(client, form(k, x, y, service_code="other"))
    out["far"] = file(client, form(k, x + 0.002, y))
    ox, oy, _ = point(demo_locator, 2004)
    out["ox"], out["oy"] = ox, oy
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    for name, days in (("d10", 10), ("d100", 100)):
        body = {"channel": "grid_app", "category": "theft", "description": "电瓶车被盗",
                "reported_at": (now - dt.timedelta(days=days)).isoformat(),
                "location": {"lon": ox, "lat": oy}}  # fmt: skip
        r = client.post("/v1/reports", json=body, headers=auth(keys["operator"]))
        assert r.status_code == 201, r.text
        out[name] = str(r.json()["id"])
    out["now"] = now
    return out


def test_closed_statuses_read_as_closed(
    client: TestClient, engine: Engine, spread: dict[str, Any]
) -> None:
    with engine.begin() as conn:
        for rid, status in ((spread["closed"], "evaluated"), (spread["rejected"], "rejected")):
            conn.execute(
                text("UPDATE reports SET status = :s, status_at = now() WHERE id = :i"),
                {"s": status, "i": int(rid)},
            )
    closed = one(client, spread["closed"])
    assert closed["status"] == "closed" and "(evaluated)" in closed["status_notes"]
    assert closed["service_notice"] is None
    assert one(client, spread["rejected"])["status"] == "closed"
    here = box(spread["x"], spread["y"])
    assert set(ids(client, bbox=here, status="closed")) == {spread["closed"], spread["rejected"]}
    assert set(ids(client, bbox=here, status="open")) == {spread["hazard"], spread["theft"]}
    assert len(ids(client, bbox=here, status="open,closed")) == 4


def test_requests_filter_by_service_code_bbox_circle_and_id_list(
    client: TestClient, spread: dict[str, Any]
) -> None:
    here = box(spread["x"], spread["y"])
    assert ids(client, bbox=here, service_code="theft") == [spread["theft"]]
    both = ids(client, bbox=here, service_code="theft,safety_hazard")
    assert set(both) == {spread["theft"], spread["hazard"]}
    wider = box(spread["x"], spread["y"], 0.003)
    assert spread["far"] in ids(client, bbox=wider) and spread["far"] not in ids(client, bbox=here)
    near = ids(client, lat=repr(spread["y"]), long=repr(spread["x"]), radius="50")
    assert spread["hazard"] in near and spread["far"] not in near
    within = ids(client, lat=repr(spread["y"]), long=repr(spread["x"]), radius="400")
    assert spread["far"] in within
    wanted = f"{spread['far']},{spread['d100']}"
    # an id list overrides every other filter, the 90-day default window included
    assert set(ids(client, service_request_id=wanted, status="closed")) == {
        spread["far"],
        spread["d100"],
    }


def test_requests_filter_by_date_window_with_a_90_day_default(
    client: TestClient, spread: dict[str, Any]
) -> None:
    there = box(spread["ox"], spread["oy"])
    now: dt.datetime = spread["now"]
    assert ids(client, bbox=there) == [spread["d10"]]  # 100 days ago is outside the default
    window = {"start_date": (now - dt.timedelta(days=101)).isoformat(),
              "end_date": (now - dt.timedelta(days=99)).isoformat()}  # fmt: skip
    assert ids(client, bbox=there, **window) == [spread["d100"]]
    local = (now - dt.timedelta(days=11)).astimezone(dt.timezone(dt.timedelta(hours=8)))
    naive_china_time = local.replace(tzinfo=None).isoformat()  # naive = China time
    assert ids(client, bbox=there, start_date=naive_china_time) == [spread["d10"]]
    zulu = (now - dt.timedelta(days=200)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert ids(client, bbox=there, start_date=zulu) == [spread["d10"], spread["d100"]]


def test_requests_are_newest_first_and_paged(client: TestClient, spread: dict[str, Any]) -> None:
    here = box(spread["x"], spread["y"])
    everything = ids(client, bbox=here)
    assert everything == sorted(everything, key=int, reverse=True)  # filed one after another
    assert ids(client, bbox=here, page_size="2", page="2") == everything[2:4]
    assert ids(client, bbox=here, limit="1") == everything[:1]


@pytest.mark.parametrize(
    "params, fragment",
    [
        ({"status": "pending"}, "status must be open, closed"),
        ({"service_code": "ufo"}, "service_code ufo not known"),
        ({"start_date": "last tuesday"}, "start_date must be an ISO 8601 datetime"),
        ({"start_date": "2025-02-01", "end_date": "2025-01-01"}, "start_date is after end_date"),
        ({"bbox": "1,2,3"}, "bbox must be minlon,minlat,maxlon,maxlat"),
        ({"lat": "30.7"}, "lat and long must be given together"),
        ({"lat": "30.7", "long": "120.7", "radius": "1e9"}, "radius must be in metres"),
        ({"page_size": "5000"}, "page_size must be a whole number"),
        ({"page": "0"}, "page must be a whole number"),
        ({"service_request_id": "1,x"}, "service_request_id must be a comma list"),
    ],
)
def test_bad_query_parameters_are_400_naming_the_parameter(
    client: TestClient, params: dict[str, str], fragment: str
) -> None:
    open311_error(client.get(f"{BASE}/requests.json", params=params), 400, fragment)


def test_reading_needs_no_key(client: TestClient, spread: dict[str, Any]) -> None:
    r = client.get(f"{BASE}/requests/{spread['hazard']}.json")  # no Authorization, no api_key
    assert r.status_code == 200 and r.json()[0]["service_request_id"] == spread["hazard"]


# --- XML and personal data ----------------------------------------------------------------------


def test_xml_is_served_in_the_spec_shape(client: TestClient, spread: dict[str, Any]) -> None:
    r = client.get(f"{BASE}/services.xml")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/xml")
    assert r.content.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(r.content)
    assert root.tag == "services"
    assert [s.findtext("service_code") for s in root] == [c.code for c in CATEGORIES]
    assert root[0].findtext("metadata") == "false"
    d = ET.fromstring(client.get(f"{BASE}/services/theft.xml").content)
    assert d.tag == "service_definition" and d.findtext("service_code") == "theft"
    req = ET.fromstring(client.get(f"{BASE}/requests/{spread['hazard']}.xml").content)
    assert req.tag == "service_requests" and req[0].tag == "request"
    assert req[0].findtext("service_request_id") == spread["hazard"]
    assert req[0].findtext("status") == "open" and req[0].findtext("zipcode") == ""
    err = client.get(f"{BASE}/requests/0.xml")
    assert err.status_code == 404
    e = ET.fromstring(err.content)
    assert e.tag == "errors" and e[0].findtext("code") == "404"


def test_filing_in_xml_answers_service_requests(
    client: TestClient, keys: dict[str, str], demo_locator: Locator
) -> None:
    x, y, _ = point(demo_locator, 2005)
    r = client.post(f"{BASE}/requests.xml", data=form(keys["reporter"], x, y))
    assert r.status_code == 200, r.text
    root = ET.fromstring(r.content)
    assert root.tag == "service_requests" and root[0].findtext("service_request_id", "").isdigit()
    bad = client.post(f"{BASE}/requests.xml", data=form("", x, y))
    assert bad.status_code == 403 and ET.fromstring(bad.content)[0].findtext("code") == "403"


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_personal_data_never_appears_in_any_open311_answer(
    client: TestClient, keys: dict[str, str], spread: dict[str, Any], demo_locator: Locator,
    fmt: str,
) -> None:  # fmt: skip
    x, y, _ = point(demo_locator, 2006)
    posted = client.post(f"{BASE}/requests.{fmt}", data=form(keys["admin"], x, y))
    rid = (
        posted.json()[0]["service_request_id"]
        if fmt == "json"
        else ET.fromstring(posted.content)[0].findtext("service_request_id")
    )
    here, there = box(spread["x"], spread["y"]), box(x, y)
    admin = auth(keys["admin"])
    answers = [
        posted,
        client.get(f"{BASE}/requests/{rid}.{fmt}"),
        client.get(f"{BASE}/requests/{spread['hazard']}.{fmt}", headers=admin),
        client.get(f"{BASE}/requests.{fmt}", params={"bbox": here}, headers=admin),
        client.get(f"{BASE}/requests.{fmt}", params={"bbox": there}, headers=admin),
        client.get(f"{BASE}/requests.{fmt}", params={"service_request_id": f"{rid},1,2,3"}),
        client.get(f"{BASE}/requests.{fmt}", params={"api_key": keys["admin"]}),
        client.get(f"{BASE}/requests.{fmt}", params={"bbox": there}),
    ]
    for r in answers:
        assert r.status_code == 200, r.text
        for secret in (PHONE, FIRST, LAST, "ouyang@example.org", keys["admin"]):
            assert secret not in r.text
    assert rid in answers[4].text  # the report is there, only its reporter is not


def test_channels_offered_by_the_attribute_are_the_taxonomy_channels(
    client: TestClient, keys: dict[str, str], demo_locator: Locator
) -> None:
    x, y, _ = point(demo_locator, 2007)
    for channel in CHANNELS:
        rid = file(client, form(keys["operator"], x, y, **{"attribute[channel]": channel}))
        v1 = client.get(f"/v1/reports/{rid}", headers=auth(keys["operator"])).json()
        assert v1["channel"] == channel
