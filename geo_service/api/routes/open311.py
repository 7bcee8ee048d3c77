"""``/open311/v2``: an Open311 GeoReport v2 facade, so Open311 clients file and read reports.

Formats: ``.json`` and ``.xml`` (the spec's required one), chosen by the resource's suffix.
Every failure answers in Open311's error format, ``[{"code": <status>, "description": …}]``
(``<errors><error>`` in XML): 400 for a missing or bad parameter (naming it), 403 for a
missing, unknown or revoked ``api_key`` or a role that may not file, 404 for an unknown
service, request or resource.

Filing (``POST requests``) needs one of our API keys, as ``api_key`` in the body (form-encoded
as the spec says, or JSON) or as ``Authorization: Bearer``; a key in the URL is refused, keys
do not belong in access logs. The report goes through the same intake as ``POST /v1/reports``
(located, routed, stored in one transaction, near-duplicates linked), filed by that key.
Extensions: ``crs`` (wgs84 default, gcj02, bd09, …) for ``lat``/``long``, and
``attribute[channel]`` (default ``wechat``).

Reading (``GET requests``) is public, as Open311 intends: no key is needed. It is private by
default (:mod:`geo_service.reports.disclosure`): the public gets category, status, times, the
centre of the report's coarse H3 cell (``GEO_PRIVACY_PUBLIC_H3_RES``, default 8) as ``lat``/
``long``, the community chain as ``address``/``address_id`` and the kind of unit handling it,
with ``description`` and ``media_url`` null; bbox and circle filters match such reports by their
cell's centre. A public case of a public category (``GEO_PRIVACY_PUBLIC_CATEGORIES``) is shown
exactly to everyone; operator, planner and admin keys see every report exactly, grid workers
those of their area, reporters their own. An Open311 answer never carries personal data,
whatever the caller: no reporter name, phone, email or key, not even to roles that see them on
``/v1``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections.abc import Callable, Coroutine, Mapping
from typing import Annotated, Any
from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, Path, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from geo_service.api.deps import (
    FILERS,
    CallerDep,
    EngineDep,
    LocatorsDep,
    RoutingDep,
    SettingsDep,
    key_owner,
)
from geo_service.api.limits import IntakeRequest
from geo_service.api.models import (
    OPEN311_ERRORS,
    Open311CreatedList,
    Open311Requests,
    Open311ServiceDefinition,
    Open311Services,
    open311_answer,
)
from geo_service.api.responses import JSONBytes
from geo_service.auth import Principal, require
from geo_service.errors import (
    Forbidden,
    GeoServiceError,
    InvalidInput,
    NotFound,
    Unauthorized,
    from_driver_error,
    http_status,
)
from geo_service.locator import Locator
from geo_service.protocols import open311
from geo_service.reports.intake import Outcome, ingest
from geo_service.reports.queries import parse_bbox
from geo_service.reports.schemas import ReportIn
from geo_service.routing import RoutingTable

FORMATS = {"json": "application/json", "xml": "text/xml; charset=utf-8"}
MAX_PAGE = 2**63 // 1000  # so the offset, (page - 1) × page size, fits PostgreSQL's bigint
MAX_FIELDS = 200


def _status(exc: GeoServiceError) -> int:
    """Open311's statuses: 400 for any bad parameter, 403 for any key problem."""
    if isinstance(exc, InvalidInput):
        return 400
    if isinstance(exc, Unauthorized | Forbidden):
        return 403
    return http_status(exc)


def _error(request: Request, status: int, description: str) -> Response:
    fmt = request.path_params.get("fmt")
    errors = [{"code": status, "description": description}]
    if fmt == "xml":
        return Response(open311.to_xml("errors", "error", errors), status, media_type=FORMATS[fmt])
    return JSONBytes(errors, status_code=status)


def _validation(exc: RequestValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ())[1:])}: {e.get('msg')}" for e in exc.errors()
    )


class Open311Route(APIRoute):
    """A route whose failures all answer in Open311's error format, in the requested format."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except GeoServiceError as exc:
                return _error(request, _status(exc), exc.message)
            except RequestValidationError as exc:
                return _error(request, 400, _validation(exc))
            except StarletteHTTPException as exc:  # the form parser's (a broken multipart body)
                return _error(request, exc.status_code, str(exc.detail))
            except DBAPIError as exc:  # an outage: 503 with Retry-After, in Open311's format
                domain = from_driver_error(exc)
                if domain is None:
                    raise
                answer = _error(request, http_status(domain), domain.message)
                answer.headers["Retry-After"] = str(math.ceil(domain.retry_after_s or 1))
                return answer

        return route


router = APIRouter(
    prefix="/open311/v2", tags=["open311"], route_class=Open311Route, responses=OPEN311_ERRORS
)
Fmt = Annotated[str, Path(description="json or xml", json_schema_extra={"enum": list(FORMATS)})]
_JSON_OR_XML = "the same, as JSON (.json) or XML (.xml)"
# what POST requests reads (form-encoded as the spec says, multipart or JSON)
_POST_FIELDS: dict[str, Any] = {
    "type": "object",
    "required": ["service_code", "lat", "long"],
    "properties": {
        "api_key": {"type": "string", "description": "an API key (or Authorization: Bearer)"},
        "service_code": {"type": "string", "description": "a service of services.json"},
        "lat": {"type": "number", "minimum": -90, "maximum": 90},
        "long": {"type": "number", "minimum": -180, "maximum": 180},
        "crs": {"type": "string", "description": "extension: wgs84 (default), gcj02, bd09…"},
        "address_string": {"type": "string"},
        "description": {"type": "string", "maxLength": 4000},
        "media_url": {"type": "string", "format": "uri"},
        "first_name": {"type": "string"},
        "last_name": {"type": "string"},
        "phone": {"type": "string"},
        "email": {"type": "string"},
        "device_id": {"type": "string"},
        "account_id": {"type": "string"},
        "attribute[channel]": {"type": "string", "description": "extension: default wechat"},
    },
}
_POST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {"schema": _POST_FIELDS},
            "multipart/form-data": {"schema": _POST_FIELDS},
            "application/json": {"schema": _POST_FIELDS},
        },
    }
}
# what GET requests reads (the spec's filters, and the lat/long/radius extension)
_GET_PARAMETERS: dict[str, Any] = {
    "parameters": [
        {"name": name, "in": "query", "required": False, "schema": schema,
         "description": description}
        for name, schema, description in (
            ("service_request_id", {"type": "string"}, "comma list of ids: overrides the rest"),
            ("service_code", {"type": "string"}, "comma list of services"),
            ("status", {"type": "string"}, "open, closed or open,closed"),
            ("start_date", {"type": "string", "format": "date-time"}, "ISO 8601"),
            ("end_date", {"type": "string", "format": "date-time"}, "ISO 8601"),
            ("bbox", {"type": "string"}, "minlon,minlat,maxlon,maxlat (WGS84)"),
            ("lat", {"type": "number"}, "extension: a circle's centre, with long"),
            ("long", {"type": "number"}, "extension: a circle's centre, with lat"),
            ("radius", {"type": "number"}, "extension: metres"),
            ("page", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}, "from 1"),
            ("page_size", {"type": "integer", "minimum": 1,
                           "maximum": open311.MAX_PAGE_SIZE}, "items per page"),
            ("limit", {"type": "integer", "minimum": 1, "maximum": open311.MAX_PAGE_SIZE},
             "alias of page_size"),
        )
    ]
}


def _format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise InvalidInput(f"format {fmt!r} is not supported: use .json or .xml")
    return fmt


def _answer(fmt: str, content: Any, root: str, item: str | None, status: int = 200) -> Response:
    if fmt == "xml":
        return Response(open311.to_xml(root, item, content), status, media_type=FORMATS[fmt])
    return JSONBytes(content, status_code=status)


# --- services ---------------------------------------------------------------------------------


@router.get(
    "/services.{fmt}", response_model=Open311Services, responses=open311_answer(_JSON_OR_XML)
)
async def get_services(fmt: Fmt) -> Response:
    """Every category of the taxonomy as an Open311 service."""
    return _answer(_format(fmt), open311.services(), "services", "service")


@router.get(
    "/services/{service_code}.{fmt}",
    response_model=Open311ServiceDefinition,
    responses=open311_answer(_JSON_OR_XML),
)
async def get_service_definition(service_code: str, fmt: Fmt) -> Response:
    """A service's definition: it asks nothing beyond the standard fields."""
    kind = _format(fmt)
    return _answer(kind, open311.service_definition(service_code), "service_definition", None)


# --- POST requests ----------------------------------------------------------------------------


def _text(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise InvalidInput(f"{name} must be a string or a number")


def _from_json(body: bytes) -> dict[str, str]:
    """A JSON object's fields as form fields; ``{"attribute": {"k": v}}`` → ``attribute[k]``."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"malformed JSON body: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidInput("a JSON body must be an object of Open311 parameters")
    out: dict[str, str] = {}
    for key, value in data.items():
        if key == "attribute" and isinstance(value, dict):
            out |= {f"attribute[{k}]": _text(f"attribute[{k}]", v) for k, v in value.items()}
        elif value is not None:
            out[key] = _text(key, value)
    return out


def _from_form(body: bytes) -> dict[str, str]:
    try:
        return dict(
            parse_qsl(
                body.decode("utf-8"),
                keep_blank_values=True,
                strict_parsing=False,
                max_num_fields=MAX_FIELDS,
            )
        )
    except UnicodeDecodeError as exc:
        raise InvalidInput("the form body must be UTF-8") from exc
    except ValueError as exc:
        raise InvalidInput(f"the form body has more than {MAX_FIELDS} fields") from exc


async def _params(request: Request) -> dict[str, str]:
    """POST parameters: form-encoded (the spec), multipart or JSON."""
    body = await request.body()
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json":
        return _from_json(body)
    if ctype == "multipart/form-data":
        form = await request.form(max_fields=MAX_FIELDS)
        return {k: v for k, v in form.multi_items() if isinstance(v, str)}
    return _from_form(body)


async def _filer(
    request: Request, params: Mapping[str, str], who: Principal | None
) -> Principal:
    """The filer: ``api_key`` from the body, else the ``Authorization: Bearer`` caller; 403
    otherwise."""
    key = params.get("api_key", "").strip()
    if key:
        principal = await key_owner(request, key)
        if principal is None:
            raise Forbidden("api_key is not valid (unknown or revoked)")
        return principal
    if who is not None:
        return who
    if "api_key" in request.query_params:
        raise Forbidden("api_key must be sent in the request body, not in the URL")
    raise Forbidden("api_key is required to file a service request")


def _store(
    engine: Engine, item: ReportIn, loc: Locator, routing: RoutingTable, principal: Principal
) -> Outcome:
    with engine.begin() as conn:
        return ingest(conn, [item], [None], loc, routing, principal)[0]


@router.post(
    "/requests.{fmt}",
    response_model=Open311CreatedList,
    responses=open311_answer(_JSON_OR_XML),
    openapi_extra=_POST_BODY,
)
async def post_request(
    fmt: Fmt,
    who: CallerDep,
    request: IntakeRequest,
    engine: EngineDep,
    locators: LocatorsDep,
    routing: RoutingDep,
) -> Response:
    """File one service request through the intake pipeline; answers its id and a notice."""
    kind = _format(fmt)
    params = await _params(request)
    principal = await _filer(request, params, who)
    require(principal, *FILERS)
    item = open311.to_report(params, dt.datetime.now(dt.UTC))
    loc, table = await locators.get(), await routing.get()
    outcome = await asyncio.to_thread(_store, engine, item, loc, table, principal)
    if outcome.report is None:
        raise InvalidInput(outcome.reason or "service request refused")
    return _answer(kind, [open311.created(outcome.report)], "service_requests", "request")


# --- GET requests -----------------------------------------------------------------------------


def _positive(q: Mapping[str, str], name: str, default: int, top: int | None = None) -> int:
    raw = q.get(name) or str(default)
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= (top or MAX_PAGE):
        limit = f" and at most {top or MAX_PAGE}"
        raise InvalidInput(f"{name} must be a whole number of at least 1{limit}: {raw!r}")
    return int(raw)


def _filter(q: Mapping[str, str]) -> open311.RequestFilter:
    """GET parameters → filter. Without start_date: the 90 days before end_date (or now)."""
    if q.get("service_request_id"):  # the spec: an id list overrides every other parameter
        return open311.RequestFilter(ids=open311.parse_ids(q["service_request_id"]))
    end = open311.parse_datetime("end_date", q.get("end_date"))
    start = open311.parse_datetime("start_date", q.get("start_date"))
    if start is None:
        start = (end or dt.datetime.now(dt.UTC)) - open311.DEFAULT_WINDOW
    if end is not None and start > end:
        raise InvalidInput("start_date is after end_date")
    size = _positive(
        q,
        "page_size",
        _positive(q, "limit", open311.MAX_PAGE_SIZE, open311.MAX_PAGE_SIZE),
        open311.MAX_PAGE_SIZE,
    )
    page = _positive(q, "page", 1)
    lat, lon = q.get("lat"), q.get("long")
    return open311.RequestFilter(
        service_codes=open311.parse_codes(q["service_code"]) if q.get("service_code") else None,
        statuses=open311.parse_statuses(q["status"]) if q.get("status") else None,
        start=start,
        end=end,
        bbox=parse_bbox(q.get("bbox")),
        near=open311.parse_near(lat, lon, q.get("radius")) if lat or lon else None,
        limit=size,
        offset=(page - 1) * size,
    )


def _find(engine: Engine, f: open311.RequestFilter) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return open311.find_requests(conn, f)


@router.get(
    "/requests.{fmt}",
    response_model=Open311Requests,
    responses=open311_answer(_JSON_OR_XML),
    openapi_extra=_GET_PARAMETERS,
)
async def get_requests(
    fmt: Fmt, request: Request, engine: EngineDep, who: CallerDep, settings: SettingsDep
) -> Response:
    """Service requests, newest first, by id list, service, status, dates, bbox or circle;
    coarse unless the caller may see them exactly (see the module notes)."""
    kind = _format(fmt)
    f = open311.viewing(_filter(request.query_params), who, settings.privacy)
    found = await asyncio.to_thread(_find, engine, f)
    return _answer(kind, found, "service_requests", "request")


@router.get(
    "/requests/{service_request_id}.{fmt}",
    response_model=Open311Requests,
    responses=open311_answer(_JSON_OR_XML),
)
async def get_request(
    service_request_id: str, fmt: Fmt, engine: EngineDep, who: CallerDep, settings: SettingsDep
) -> Response:
    """One service request, as a list of one (the spec's shape)."""
    kind = _format(fmt)
    rid = service_request_id
    found = []
    if rid.isascii() and rid.isdigit() and len(rid) <= 18:
        f = open311.viewing(open311.RequestFilter(ids=[int(rid)]), who, settings.privacy)
        found = await asyncio.to_thread(_find, engine, f)
    if not found:
        raise NotFound(f"service_request_id {rid!r} not found")
    return _answer(kind, found, "service_requests", "request")


@router.api_route("/{resource:path}", methods=["GET", "POST"], include_in_schema=False)
async def unknown_resource(resource: str, request: Request) -> Response:
    """Anything else under the prefix: a 404 in Open311's format, not the app's."""
    raise NotFound(
        f"no Open311 resource {request.method} {resource!r}: "
        "GET services.json, services/<code>.json, requests.json, requests/<id>.json; "
        "POST requests.json"
    )
