"""The OpenAPI document is true: a valid OpenAPI 3.1 document in which every JSON answer has its
model (no ``{"type": "string"}`` for a JSON body), every operation declares its error body,
the routes that read their own body declare it (intake and bulk: JSON and NDJSON), a key is
optional exactly where the public may call, and real answers of the service validate against
what the document says of them."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from fastapi.testclient import TestClient
from schemathesis.specs.openapi.definitions import OPENAPI_31

from tests.conftest import auth

JSON_TYPES = ("application/json", "application/geo+json", "application/vnd.oai.openapi+json")
ERROR_MODELS = {"ErrorBody", "OgcException", "Open311Error"}
REPORT = {
    "channel": "wechat",
    "category": "safety_hazard",
    "description": "井盖缺失",
    "reported_at": "2025-06-01T09:30:00+08:00",
    "location": {"lon": 120.70, "lat": 30.78, "crs": "gcj02"},
}


@pytest.fixture(scope="module")
def doc(client: TestClient) -> dict[str, Any]:
    r = client.get("/openapi.json")
    assert r.status_code == 200
    return dict(r.json())


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m.upper(), p, op) for p, item in doc["paths"].items() for m, op in item.items()]


def _refs(node: Any) -> set[str]:
    """Every ``$ref`` below ``node``."""
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()


def test_the_document_is_valid_openapi_31(doc: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(OPENAPI_31).validate(doc)
    assert doc["openapi"].startswith("3.1")
    for ref in _refs(doc):  # and every reference resolves
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.rsplit("/", 1)[1] in doc["components"]["schemas"], ref


def test_there_is_no_validation_error_body_no_route_answers(doc: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in doc["components"]["schemas"]


def test_every_json_success_has_a_model(doc: dict[str, Any]) -> None:
    untyped = []
    for method, path, op in _operations(doc):
        for status, response in op["responses"].items():
            if not status.startswith("2"):
                continue
            for media, content in response.get("content", {}).items():
                if media.split(";")[0] in JSON_TYPES:
                    schema = content.get("schema", {})
                    if "$ref" not in schema and schema.get("type") not in ("object", "array"):
                        untyped.append(f"{method} {path} {status} {media}: {schema}")
    assert untyped == []


def test_every_operation_declares_its_error_body(doc: dict[str, Any]) -> None:
    for method, path, op in _operations(doc):
        errors = {s: r for s, r in op["responses"].items() if s[0] in "45"}
        assert {"413", "429", "503"} <= set(errors), (method, path)  # the edge's, everywhere
        for status, response in errors.items():
            models = {ref.rsplit("/", 1)[1] for ref in _refs(response)}
            assert models and models <= ERROR_MODELS, (method, path, status)


def test_non_json_answers_declare_their_media_type(doc: dict[str, Any]) -> None:
    paths = doc["paths"]
    assert "application/vnd.mapbox-vector-tile" in paths["/tiles/grids/{z}/{x}/{y_mvt}"]["get"][
        "responses"]["200"]["content"]
    assert "text/html" in paths["/maps/heat"]["get"]["responses"]["200"]["content"]
    assert "text/xml" in paths["/open311/v2/services.{fmt}"]["get"]["responses"]["200"][
        "content"]
    assert "application/geo+json" in paths["/v1/analytics/heat"]["get"]["responses"]["200"][
        "content"]


def test_intake_and_bulk_declare_their_bodies(doc: dict[str, Any]) -> None:
    one = doc["paths"]["/v1/reports"]["post"]["requestBody"]
    assert one["required"] is True
    assert one["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ReportIn"
    }
    bulk = doc["paths"]["/v1/reports:bulk"]["post"]["requestBody"]["content"]
    assert set(bulk) == {"application/json", "application/x-ndjson"}
    for content in bulk.values():
        assert content["schema"]["items"] == {"$ref": "#/components/schemas/ReportIn"}
        assert content["schema"]["maxItems"] == 10_000
    report_in = doc["components"]["schemas"]["ReportIn"]
    assert {"channel", "category", "description", "reported_at", "location"} <= set(
        report_in["required"]
    )
    open311 = doc["paths"]["/open311/v2/requests.{fmt}"]["post"]["requestBody"]["content"]
    assert "application/x-www-form-urlencoded" in open311


def test_keys_are_optional_exactly_where_the_public_may_call(doc: dict[str, Any]) -> None:
    paths = doc["paths"]
    for path in ("/v1/analytics/heat", "/tiles/grids.json", "/v1/boundaries/versions"):
        assert {} in paths[path]["get"]["security"], path
    for method, path in (("get", "/v1/reports"), ("post", "/v1/reports"),
                         ("get", "/v1/stats/indicators")):
        assert {} not in paths[path][method]["security"], path


def test_report_ids_and_offsets_are_bounded_in_the_document(doc: dict[str, Any]) -> None:
    params = {p["name"]: p for p in doc["paths"]["/v1/reports"]["get"]["parameters"]}
    assert params["offset"]["schema"]["maximum"] == 2**63 - 1
    one = doc["paths"]["/v1/reports/{report_id}"]["get"]["parameters"][0]["schema"]
    assert (one["minimum"], one["maximum"]) == (1, 2**63 - 1)


# --- real answers validate against the document ----------------------------------------------


def _check(doc: dict[str, Any], method: str, path: str, r: Any) -> None:
    """``r`` (a response to ``method path``) is one the document declares, body and all."""
    op = doc["paths"][path][method.lower()]
    declared = op["responses"].get(str(r.status_code))
    assert declared is not None, f"{method} {path} answered an undeclared {r.status_code}"
    media = r.headers.get("content-type", "").split(";")[0]
    if r.status_code in (204, 304):
        return
    content = declared["content"]
    assert media in content, (method, path, media, list(content))
    if media in JSON_TYPES:
        schema = {**content[media]["schema"], "components": doc["components"]}
        jsonschema.Draft202012Validator(schema).validate(r.json())


def test_answers_match_the_document(
    client: TestClient, keys: dict[str, str], doc: dict[str, Any]
) -> None:
    operator, reporter = auth(keys["operator"]), auth(keys["reporter"])
    filed = client.post("/v1/reports", json=REPORT, headers=reporter)
    _check(doc, "POST", "/v1/reports", filed)
    rid = filed.json()["id"]
    calls: list[tuple[str, str, str, dict[str, Any]]] = [
        ("GET", "/health", "/health", {}),
        ("GET", "/v1/locate", "/v1/locate", {"params": {"lon": 120.7071, "lat": 30.7649}}),
        ("GET", "/v1/locate", "/v1/locate", {"params": {"lon": 0, "lat": 0}}),
        ("POST", "/v1/locate", "/v1/locate",
         {"json": {"points": [[120.7071, 30.7649], [0, 0]]}}),
        ("GET", "/v1/boundaries/versions", "/v1/boundaries/versions", {}),
        ("GET", "/v1/reports", "/v1/reports", {"headers": operator, "params": {"limit": 5}}),
        ("GET", f"/v1/reports/{rid}", "/v1/reports/{report_id}", {"headers": reporter}),
        ("GET", f"/v1/reports/{rid}/events", "/v1/reports/{report_id}/events",
         {"headers": operator}),
        ("POST", f"/v1/reports/{rid}/transitions", "/v1/reports/{report_id}/transitions",
         {"headers": operator, "json": {"to": "accepted"}}),
        ("POST", "/v1/reports:bulk", "/v1/reports:bulk",
         {"headers": operator, "json": [REPORT, {"channel": "nope"}]}),
        ("GET", "/v1/analytics/heat", "/v1/analytics/heat", {"params": {"res": 7}}),
        ("GET", "/v1/analytics/grid-stats", "/v1/analytics/grid-stats",
         {"params": {"level": "town"}}),
        ("GET", "/v1/stats/indicators", "/v1/stats/indicators",
         {"headers": operator, "params": {"level": "town"}}),
        ("GET", "/tiles/grids.json", "/tiles/grids.json", {}),
        ("GET", "/tiles/grids/12/3425/1677.mvt", "/tiles/grids/{z}/{x}/{y_mvt}", {}),
        ("GET", "/ogc", "/ogc", {}),
        ("GET", "/ogc/conformance", "/ogc/conformance", {}),
        ("GET", "/ogc/collections", "/ogc/collections", {}),
        ("GET", "/ogc/collections/towns", "/ogc/collections/{collection_id}", {}),
        ("GET", "/ogc/collections/towns/items", "/ogc/collections/{collection_id}/items",
         {"params": {"limit": 2}}),
        ("GET", "/open311/v2/services.json", "/open311/v2/services.{fmt}", {}),
        ("GET", "/open311/v2/requests.json", "/open311/v2/requests.{fmt}", {}),
        ("GET", "/maps/heat", "/maps/heat", {}),
        # errors, in each format
        ("GET", "/v1/reports/999999999", "/v1/reports/{report_id}", {"headers": operator}),
        ("GET", "/v1/reports", "/v1/reports", {}),
        ("GET", "/v1/reports", "/v1/reports", {"headers": operator, "params": {"limit": 0}}),
        ("GET", "/v1/stats/indicators", "/v1/stats/indicators", {"headers": reporter}),
        ("GET", "/ogc/collections/nope", "/ogc/collections/{collection_id}", {}),
        ("GET", "/ogc/collections/towns/items", "/ogc/collections/{collection_id}/items",
         {"params": {"offset": -1}}),
        ("GET", "/open311/v2/services.yaml", "/open311/v2/services.{fmt}", {}),
        ("GET", "/open311/v2/requests/0.json", "/open311/v2/requests/{service_request_id}.{fmt}",
         {}),
    ]
    for method, url, path, kwargs in calls:
        _check(doc, method, path, client.request(method, url, **kwargs))
