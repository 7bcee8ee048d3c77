"""Who may do what: one role × endpoint matrix, and personal data only for roles that may see it."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient

from tests.conftest import auth

ROLES = ("anonymous", "bad_key", "reporter", "grid_worker", "operator", "planner", "admin")
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


@pytest.fixture(scope="module")
def case(client: TestClient, keys, demo_locator) -> dict:  # type: ignore[type-arg]
    """A report filed by the reporter inside the grid worker's community."""
    community = demo_locator.grids["community_code"].iloc[0]
    grid = demo_locator.grids[demo_locator.grids["community_code"] == community].iloc[0]
    p = grid.geometry.representative_point()
    body = {"channel": "wechat", "category": "sanitation", "description": "垃圾堆放",
            "reported_at": NOW, "location": {"lon": p.x, "lat": p.y},
            "reporter": {"name": "王女士", "phone": "13900000000"}}
    r = client.post("/v1/reports", json=body, headers=auth(keys["reporter"]))
    assert r.status_code == 201
    return {"id": r.json()["id"], "body": body, "outside_id": _outside(client, keys, demo_locator)}


def _outside(client: TestClient, keys, demo_locator) -> int:  # type: ignore[no-untyped-def]
    """A report in another town, filed by the operator (outside the grid worker's scope)."""
    grids = demo_locator.grids
    other = grids[grids["town_code"] != grids["town_code"].iloc[0]].iloc[0]
    p = other.geometry.representative_point()
    body = {"channel": "hotline_12345", "category": "theft", "description": "电动车被盗",
            "reported_at": NOW, "location": {"lon": p.x, "lat": p.y}}
    return int(client.post("/v1/reports", json=body, headers=auth(keys["operator"])).json()["id"])


def _headers(role: str, keys) -> dict[str, str]:  # type: ignore[no-untyped-def]
    if role == "anonymous":
        return {}
    if role == "bad_key":
        return auth("gs_not-a-real-key")
    return auth(keys[role])


# endpoint -> expected status per role, in ROLES order
MATRIX = {
    "POST /v1/reports": (401, 401, 201, 201, 201, 403, 201),
    "POST /v1/reports:bulk": (401, 401, 200, 200, 200, 403, 200),
    "GET /v1/reports": (401, 401, 200, 200, 200, 200, 200),
    "GET /v1/reports/{id}": (401, 401, 200, 200, 200, 200, 200),
    "GET /v1/reports/{outside_id}": (401, 401, 404, 404, 200, 200, 200),
    "GET /v1/locate": (200, 200, 200, 200, 200, 200, 200),
}


@pytest.mark.parametrize("endpoint", list(MATRIX))
@pytest.mark.parametrize("role", ROLES)
def test_role_endpoint_matrix(client: TestClient, keys, case, endpoint: str, role: str) -> None:
    method, path = endpoint.split(" ")
    path = path.format(id=case["id"], outside_id=case["outside_id"])
    h = _headers(role, keys)
    if path == "/v1/locate":
        r = client.get(path, params={"lon": 120.75, "lat": 30.75}, headers=h)
    elif method == "POST":
        body = case["body"] if path == "/v1/reports" else [case["body"]]
        r = client.post(path, json=body, headers=h)
    else:
        r = client.get(path, headers=h)
    assert r.status_code == MATRIX[endpoint][ROLES.index(role)], r.text


@pytest.mark.parametrize(
    "role, sees_contact",
    [("reporter", True), ("operator", True), ("admin", True), ("grid_worker", False),
     ("planner", False)],
)
def test_personal_data_only_for_roles_that_may_see_it(
    client: TestClient, keys, case, role: str, sees_contact: bool
) -> None:
    one = client.get(f"/v1/reports/{case['id']}", headers=auth(keys[role])).json()
    listed = client.get("/v1/reports", params={"limit": 1000},
                        headers=auth(keys[role])).json()["items"]
    mine = [i for i in listed if i["id"] == case["id"]]
    assert len(mine) == 1
    for shown in (one, mine[0]):
        assert ("reporter" in shown) is sees_contact
        assert ("13900000000" in str(shown)) is sees_contact


def test_reporters_list_only_their_own_reports(client: TestClient, keys, case) -> None:
    mine = client.get("/v1/reports", headers=auth(keys["reporter"])).json()
    theirs = client.get("/v1/reports", headers=auth(keys["reporter2"])).json()
    assert case["id"] in {i["id"] for i in mine["items"]}
    assert case["id"] not in {i["id"] for i in theirs["items"]}
    r = client.get(f"/v1/reports/{case['id']}", headers=auth(keys["reporter2"]))
    assert r.status_code == 404


def test_grid_workers_see_only_their_area(client: TestClient, keys, case, demo_locator) -> None:
    items = client.get("/v1/reports", params={"limit": 1000},
                       headers=auth(keys["grid_worker"])).json()["items"]
    community = demo_locator.grids["community_code"].iloc[0]
    assert items and all(i["community_code"] == community for i in items)


# one rule for the caller on every route (geo_service.api.deps.caller): no header is the
# public, a key must come as "Bearer <key>", and an unknown or revoked key is refused
CALLER_ROUTES = ("/v1/analytics/heat?res=6", "/tiles/grids.json", "/v1/reports")


@pytest.mark.parametrize("path", CALLER_ROUTES)
@pytest.mark.parametrize(
    "header, fragment",
    [("Basic dXNlcjpwdw==", "must be 'Bearer <api key>'"),
     ("Bearer", "must be 'Bearer <api key>'"),
     ("Bearer gs_not-a-real-key", "unknown or revoked API key")],
)
def test_a_bad_authorization_header_is_401_on_every_route(
    client: TestClient, path: str, header: str, fragment: str
) -> None:
    r = client.get(path, headers={"Authorization": header})
    assert r.status_code == 401, r.text
    assert fragment in r.json()["message"]


@pytest.mark.parametrize("path, public", [(p, not p.startswith("/v1/reports"))
                                          for p in CALLER_ROUTES])
def test_no_header_is_the_public_and_a_good_key_is_its_role(
    client: TestClient, keys, path: str, public: bool
) -> None:
    assert client.get(path).status_code == (200 if public else 401)
    assert client.get(path, headers=auth(keys["reporter"])).status_code == 200


def test_role_checks_name_the_roles_needed(client: TestClient, keys) -> None:
    r = client.post("/v1/boundaries/reroute-open-cases", headers=auth(keys["reporter"]))
    assert r.status_code == 403
    assert r.json()["message"] == (
        "role 'reporter' may not do this (needs planner or operator or admin)"
    )


def test_openapi_declares_the_bearer_key(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    assert doc["components"]["securitySchemes"]["api_key"]["scheme"] == "bearer"
    assert {"api_key": []} in doc["paths"]["/v1/reports"]["post"]["security"]
    assert "security" not in doc["paths"]["/v1/locate"]["get"]  # locate needs no key
