"""The OpenAPI document as the service really behaves: FastAPI's, finished in three ways.

* The error bodies and other models referred to by ``$ref``
  (:data:`geo_service.api.models.COMPONENTS`) and the request bodies routes read themselves
  (:data:`BODIES`) are placed in the components that the routers'
  ``responses=`` tables and ``openapi_extra`` refer to.
* FastAPI's own ``HTTPValidationError`` is dropped: no route answers it (our 422 is an
  ``ErrorBody``; OGC API and Open311 answer 400 in their formats).
* An operation declaring no error gets the service's (:data:`geo_service.api.models.ERRORS`).
* Text the service refuses says so: a string with no other constraint gets the pattern
  :data:`NO_NUL` (a NUL cannot be stored: :data:`geo_service.errors.StorableText`).
* A route where a key is optional (the public may call it; a key may widen what it shows)
  says so: ``security: [{}, {"api_key": []}]``, not a key required.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from geo_service.api.deps import signed_in
from geo_service.api.models import COMPONENTS, ERRORS
from geo_service.reports.schemas import ReportIn

# bodies that routes read themselves (so FastAPI does not see them), declared by
# ``openapi_extra`` with a reference to these
BODIES: tuple[type[BaseModel], ...] = (ReportIn,)

_VALIDATION = ("HTTPValidationError", "ValidationError")
NO_NUL = "^[^\\u0000]*$"
_CONSTRAINED = ("pattern", "enum", "const", "format", "contentMediaType", "$ref")


def no_nul(node: Any) -> None:
    """Give every unconstrained string schema below ``node`` the :data:`NO_NUL` pattern."""
    if isinstance(node, dict):
        if node.get("type") == "string" and not any(k in node for k in _CONSTRAINED):
            node["pattern"] = NO_NUL
        for value in node.values():
            no_nul(value)
    elif isinstance(node, list):
        for value in node:
            no_nul(value)


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    """Every dependency callable of a route, depth first."""
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def key_required(dependant: Dependant) -> bool:
    """Whether a route refuses a caller without a key (it depends on ``signed_in``)."""
    return any(call is signed_in for call in _calls(dependant))


def finish(app: FastAPI, doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` (FastAPI's document of ``app``) made true; see the module notes."""
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        *((m, "serialization") for m in COMPONENTS),
        *((m, "validation") for m in BODIES),
    ]
    _, defs = models_json_schema(wanted, ref_template="#/components/schemas/{model}")
    for name, schema in defs.get("$defs", {}).items():
        schemas.setdefault(name, schema)
    for name in _VALIDATION:
        schemas.pop(name, None)
    no_nul(schemas)
    optional: set[tuple[str | None, str]] = set()
    for route in iter_route_contexts(app.router.routes):  # as included: prefixes, dependencies
        if isinstance(route.original_route, APIRoute) and not key_required(route.dependant):
            optional |= {(route.path_format, m.lower()) for m in route.methods or ()}
    for path, item in doc.get("paths", {}).items():
        for method, operation in item.items():
            responses = operation.get("responses", {})
            for status in [s for s, r in responses.items() if _is_validation_error(r)]:
                del responses[status]
            if not any(str(s)[0] in "45" for s in responses):  # a route declaring none
                responses.update({str(s): copy.deepcopy(r) for s, r in ERRORS.items()})
            no_nul(operation.get("parameters", []))
            no_nul(operation.get("requestBody", {}))
            security = operation.get("security")
            if security and (path, method) in optional and {} not in security:
                operation["security"] = [{}, *security]
    return doc


def _is_validation_error(response: dict[str, Any]) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return bool(schema.get("$ref", "").endswith("/HTTPValidationError"))


def install(app: FastAPI) -> None:
    """Serve ``app``'s finished document at ``/openapi.json`` (built once, then kept)."""

    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = finish(app, FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]
