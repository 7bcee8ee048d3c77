"""No input earns a 5xx: ids, offsets and pages are bounded at the edge (422 naming the bound;
400 in Open311's and OGC API's own formats), text the database cannot store (NUL, a lone
surrogate) is refused wherever it comes in, odd types are refused, and an unexpected fault
answers a JSON 500 without costing the client its keep-alive connection."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from geo_service.api.deps import BIGINT_MAX, INT_MAX
from geo_service.app import create_app
from geo_service.settings import DatabaseSettings, Settings
from tests.conftest import auth
from tests.support import serve

TOO_BIG = 2**64  # past PostgreSQL's bigint
REPORT = {
    "channel": "wechat",
    "category": "safety_hazard",
    "description": "广告牌松动",
    "reported_at": "2025-06-01T09:30:00+08:00",
    "location": {"lon": 120.70, "lat": 30.78, "crs": "gcj02"},
}


def _error(r) -> dict:  # type: ignore[no-untyped-def]
    """The service's error body, checked to be one."""
    body = r.json()
    assert set(body) == {"error", "message", "details"}, body
    return body


# --- ids, offsets, pages --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/reports/{id}", None),
        ("GET", "/v1/reports/{id}/events", None),
        ("POST", "/v1/reports/{id}/transitions", {"to": "accepted"}),
        ("POST", "/v1/reports/{id}/escalate", {"note": "too hard"}),
        ("POST", "/v1/reports/{id}/supervise", {"note": "督办"}),
        ("POST", "/v1/reports/{id}/reassign", {"note": "wrong unit", "category": "other"}),
    ],
)
def test_report_ids_past_bigint_are_422_naming_the_bound(
    client: TestClient, keys: dict[str, str], method: str, path: str, body: dict | None
) -> None:
    r = client.request(method, path.format(id=TOO_BIG), json=body, headers=auth(keys["admin"]))
    assert r.status_code == 422
    assert str(BIGINT_MAX) in _error(r)["message"]


def test_report_id_zero_or_negative_is_422(client: TestClient, keys: dict[str, str]) -> None:
    for rid in (0, -1):
        r = client.get(f"/v1/reports/{rid}", headers=auth(keys["admin"]))
        assert r.status_code == 422, rid


def test_offsets_and_limits_are_bounded(client: TestClient, keys: dict[str, str]) -> None:
    admin = auth(keys["admin"])
    r = client.get("/v1/reports", params={"offset": TOO_BIG}, headers=admin)
    assert r.status_code == 422 and str(BIGINT_MAX) in _error(r)["message"]
    r = client.get("/v1/reports", params={"limit": 10**6}, headers=admin)
    assert r.status_code == 422 and "1000" in _error(r)["message"]
    assert client.get("/v1/reports", params={"offset": BIGINT_MAX}, headers=admin).json() == {
        "total": client.get("/v1/reports", headers=admin).json()["total"],
        "items": [],
    }


def test_a_negative_permutation_seed_is_422_naming_the_bound(
    client: TestClient, keys: dict[str, str]
) -> None:
    """Found by the fuzz run: numpy refuses a negative seed, which was a 500."""
    r = client.get(
        "/v1/analytics/hotspots",
        params={"method": "permutation", "seed": -32},
        headers=auth(keys["admin"]),
    )
    assert r.status_code == 422 and "seed" in r.text and "0" in _error(r)["message"]


def test_ogc_offset_past_bigint_is_an_ogc_400(client: TestClient) -> None:
    r = client.get("/ogc/collections/grids/items", params={"offset": TOO_BIG})
    assert r.status_code == 400
    assert str(BIGINT_MAX) in r.json()["description"]
    assert client.get("/ogc/collections/grids/items", params={"bbox": ""}).status_code == 400


def test_open311_page_past_bigint_is_an_open311_400(client: TestClient) -> None:
    r = client.get("/open311/v2/requests.json", params={"page": TOO_BIG})
    assert r.status_code == 400
    assert "page" in r.json()[0]["description"]


def test_version_ids_past_integer_are_refused(client: TestClient, keys: dict[str, str]) -> None:
    planner = auth(keys["planner"])
    r = client.get(f"/v1/boundaries/versions/{INT_MAX + 1}/impact", headers=planner)
    assert r.status_code == 422 and str(INT_MAX) in _error(r)["message"]
    r = client.post(f"/v1/boundaries/versions/{INT_MAX + 1}/suggestions", headers=planner)
    assert r.status_code == 404  # an id, a label or "current": no such version


@pytest.mark.parametrize(
    "path",
    [
        "/open311/v2/requests/²¹.json",  # digits to str.isdigit, not to int()
        "/ogc/collections/reports/items/²",
        "/v1/boundaries/areas/²/history",
    ],
)
def test_unicode_digits_are_no_id(client: TestClient, path: str) -> None:
    assert client.get(path).status_code in (400, 404, 422)


def test_tile_address_with_unicode_digits_is_422(client: TestClient) -> None:
    assert client.get("/tiles/grids/1/²/0.mvt").status_code == 422
    assert client.get("/tiles/heat/1/0/0.mvt", params={"k": "²"}).status_code == 422


# --- text the database cannot store --------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/reports", {"status": "\x00"}),
        ("/v1/reports", {"category": "a\x00b"}),
        ("/v1/analytics/heat", {"category": "\x00"}),
        ("/v1/stats/indicators", {"area": "\x00"}),
        ("/maps/heat", {"status": "\x00"}),
        ("/tiles/grids.json", {"as_of": "\x00"}),
    ],
)
def test_nul_in_a_query_string_is_422(
    client: TestClient, keys: dict[str, str], path: str, params: dict[str, str]
) -> None:
    r = client.get(path, params=params, headers=auth(keys["admin"]))
    assert r.status_code == 422
    assert "U+0000" in _error(r)["message"]


def test_nul_in_a_path_is_refused_in_the_protocols_format(client: TestClient) -> None:
    r = client.get("/ogc/collections/grids/items/%00")
    assert r.status_code == 400 and "U+0000" in r.json()["description"]
    r = client.get("/open311/v2/services/%00.json")
    assert r.status_code == 400 and "U+0000" in r.json()[0]["description"]


def test_nul_in_a_note_is_422(client: TestClient, keys: dict[str, str]) -> None:
    filed = client.post("/v1/reports", json=REPORT, headers=auth(keys["reporter"])).json()
    r = client.post(
        f"/v1/reports/{filed['id']}/transitions",
        json={"to": "accepted", "note": "ok\u0000"},
        headers=auth(keys["operator"]),
    )
    assert r.status_code == 422 and "note" in _error(r)["message"]
    events = client.get(f"/v1/reports/{filed['id']}/events", headers=auth(keys["operator"]))
    assert [e["action"] for e in events.json()["items"]] == ["discover"]  # nothing moved


@pytest.mark.parametrize("field", ["description", "external_id", "category"])
def test_nul_in_a_report_is_422_and_stores_nothing(
    client: TestClient, keys: dict[str, str], field: str
) -> None:
    who = auth(keys["reporter"])
    before = client.get("/v1/reports", headers=who).json()["total"]
    r = client.post("/v1/reports", json={**REPORT, field: "x\u0000y"}, headers=who)
    assert r.status_code == 422 and field in _error(r)["message"]
    assert client.get("/v1/reports", headers=who).json()["total"] == before


def test_nul_in_one_bulk_item_refuses_that_item_only(
    client: TestClient, keys: dict[str, str]
) -> None:
    items = [REPORT, {**REPORT, "description": "\u0000"}]
    r = client.post("/v1/reports:bulk", json=items, headers=auth(keys["operator"]))
    assert r.status_code == 200
    assert [i["status"] for i in r.json()["items"]] == ["stored", "refused"]


def test_nul_in_an_open311_filing_is_an_open311_400(
    client: TestClient, keys: dict[str, str]
) -> None:
    r = client.post(
        "/open311/v2/requests.json",
        data={"service_code": "safety_hazard", "lat": "30.78", "long": "120.70",
              "description": "bad\x00", "api_key": keys["reporter"]},
    )
    assert r.status_code == 400 and "description" in r.json()[0]["description"]


def test_empty_bulk_is_422(client: TestClient, keys: dict[str, str]) -> None:
    r = client.post("/v1/reports:bulk", content=b"  ", headers=auth(keys["operator"]))
    assert r.status_code == 422


# --- odd types, odd values ---------------------------------------------------------------


@pytest.mark.parametrize("as_of", [{}, 5, [], True])
def test_locate_batch_with_an_as_of_not_a_date_is_422(client: TestClient, as_of: object) -> None:
    r = client.post("/v1/locate", json={"as_of": as_of, "points": [[120.7071, 30.7649]]})
    assert r.status_code == 422 and "as_of" in _error(r)["message"]


def test_a_report_before_the_working_calendar_is_422(
    client: TestClient, keys: dict[str, str]
) -> None:
    r = client.post(
        "/v1/reports", json={**REPORT, "reported_at": 0}, headers=auth(keys["reporter"])
    )  # 1970: due dates are kept from 1992
    assert r.status_code == 422 and "1992" in _error(r)["message"]


def test_idempotency_keys_fit_their_column(client: TestClient, keys: dict[str, str]) -> None:
    who = auth(keys["reporter"])
    r = client.post("/v1/reports", json=REPORT, headers={**who, "Idempotency-Key": "k" * 181})
    assert r.status_code == 422
    r = client.post("/v1/reports", json={**REPORT, "external_id": "e" * 181}, headers=who)
    assert r.status_code == 422
    r = client.post("/v1/reports", json={**REPORT, "external_id": "e" * 180}, headers=who)
    assert r.status_code == 201


# --- routing's own answers -----------------------------------------------------------------


def test_a_method_the_path_does_not_take_is_405_listing_every_one(client: TestClient) -> None:
    r = client.request("OPTIONS", "/v1/locate")
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, POST"
    assert _error(r)["error"] == "method_not_allowed"
    r = client.put("/v1/boundaries/versions/1/grids/merge")  # not grid "merge": a 405
    assert r.status_code == 405 and r.headers["allow"] == "POST"


def test_an_unknown_path_is_a_json_404(client: TestClient) -> None:
    r = client.get("/no/such/thing")
    assert r.status_code == 404 and _error(r)["error"] == "not_found"


# --- faults: a JSON 500, and the connection survives ---------------------------------------


def _app_with_a_fault(database_url: str) -> FastAPI:
    """The service with one more route, which fails as a bug would."""
    app = create_app(Settings(database=DatabaseSettings(url=database_url)))

    @app.get("/fault")
    async def fault() -> None:
        raise RuntimeError("a bug")

    return app


@pytest.fixture(scope="module")
def faulty_server(database_url: str) -> Iterator[str]:
    with serve(database_url, app=_app_with_a_fault(database_url)) as url:
        yield url


def _exchange(sock: socket.socket, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send one request and read its whole response (Content-Length framed)."""
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection mid-body"
        body += chunk
    return status, headers, body[:length]


def _request(method: str, path: str, host: str, body: bytes = b"", **headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: keep-alive"]
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    if body or method in ("POST", "PUT"):
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def test_a_fault_answers_a_json_500_and_keeps_the_connection(faulty_server: str) -> None:
    host = urlsplit(faulty_server).netloc
    hostname, port = host.split(":")
    with socket.create_connection((hostname, int(port)), timeout=30) as sock:
        bad = [
            _request("GET", "/fault", host),
            _request("POST", "/v1/locate", host, b'{"as_of": {}, "points": [[120.7, 30.7]]}'),
            _request("GET", "/v1/reports/99999999999999999999", host),
            _request("GET", "/v1/reports?status=%00", host, authorization="Bearer nope"),
            _request("OPTIONS", "/v1/locate", host),
            _request("GET", "/no/such/thing", host),
            _request("POST", "/v1/reports:bulk", host, b"[1"),
        ]
        for request in bad:
            status, headers, body = _exchange(sock, request)
            assert headers["content-type"].startswith("application/json")
            assert status >= 400 and set(orjson.loads(body)) == {"error", "message", "details"}
            good = _request("GET", "/v1/locate?lon=120.7071&lat=30.7649", host)
            status, _, body = _exchange(sock, good)  # the same connection, still open
            assert status == 200 and orjson.loads(body)["grid"] is not None
        status, _, body = _exchange(sock, bad[0])
    assert status == 500
    assert orjson.loads(body) == {
        "error": "internal_error", "message": "internal server error", "details": None
    }
