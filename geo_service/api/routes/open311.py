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

Reading (``GET requests``) is public, as Open311 intends: no key is needed, and no key widens
what is shown. In exchange an Open311 answer never carries personal data, whatever the caller:
no reporter name, phone, email or key, not even to roles that see them on ``/v1``. It does show
what Open311 is for: category, description, first photo, exact WGS84 location, grid chain,
responsible unit, status and times. This is wider than ``/v1``, where a reporter reads only
their own reports; anything filed may be read by anyone here, so filing clients should say so.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Coroutine, Mapping
from typing import Any
from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from sqlalchemy import Engine

from geo_service.api.deps import EngineDep, LocatorsDep, RoutingDep
from geo_service.api.responses import JSONBytes
from geo_service.auth import KeyStore, Principal, require
from geo_service.errors import (
    Forbidden,
    GeoServiceError,
    InvalidInput,
    NotFound,
    TooLarge,
    Unauthorized,
    http_status,
)
from geo_service.locator import Locator
from geo_service.protocols import open311
from geo_service.reports.intake import Outcome, ingest
from geo_service.reports.queries import parse_bbox
from geo_service.reports.schemas import ReportIn
from geo_service.routing import RoutingTable

FILERS = ("reporter", "grid_worker", "operator", "admin")  # as for POST /v1/reports
FORMATS = {"json": "application/json", "xml": "text/xml; charset=utf-8"}
MAX_BODY = 1024 * 1024  # one request: a description of 5,000 characters fits many times over
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

        return route


router = APIRouter(prefix="/open311/v2", tags=["open311"], route_class=Open311Route)


def _format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise InvalidInput(f"format {fmt!r} is not supported: use .json or .xml")
    return fmt


def _answer(fmt: str, content: Any, root: str, item: str | None, status: int = 200) -> Response:
    if fmt == "xml":
        return Response(open311.to_xml(root, item, content), status, media_type=FORMATS[fmt])
    return JSONBytes(content, status_code=status)


# --- services ---------------------------------------------------------------------------------


@router.get("/services.{fmt}")
async def get_services(fmt: str) -> Response:
    """Every category of the taxonomy as an Open311 service."""
    return _answer(_format(fmt), open311.services(), "services", "service")


@router.get("/services/{service_code}.{fmt}")
async def get_service_definition(service_code: str, fmt: str) -> Response:
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
    if len(body) > MAX_BODY:
        raise TooLarge(f"request body of {len(body)} bytes is over {MAX_BODY}")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json":
        return _from_json(body)
    if ctype == "multipart/form-data":
        form = await request.form(max_fields=MAX_FIELDS)
        return {k: v for k, v in form.multi_items() if isinstance(v, str)}
    return _from_form(body)


async def _principal(request: Request, params: Mapping[str, str]) -> Principal:
    """The filer: ``api_key`` from the body, else ``Authorization: Bearer``; 403 otherwise."""
    key = params.get("api_key", "").strip()
    if not key:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        key = token.strip() if scheme.lower() == "bearer" else ""
    if not key and "api_key" in request.query_params:
        raise Forbidden("api_key must be sent in the request body, not in the URL")
    if not key:
        raise Forbidden("api_key is required to file a service request")
    keys: KeyStore = request.app.state.keys
    principal = await asyncio.to_thread(keys.lookup, key)
    if principal is None:
        raise Forbidden("api_key is not valid (unknown or revoked)")
    return principal


def _store(
    engine: Engine, item: ReportIn, loc: Locator, routing: RoutingTable, principal: Principal
) -> Outcome:
    with engine.begin() as conn:
        return ingest(conn, [item], [None], loc, routing, principal)[0]


@router.post("/requests.{fmt}")
async def post_request(
    fmt: str, request: Request, engine: EngineDep, locators: LocatorsDep, routing: RoutingDep
) -> Response:
    """File one service request through the intake pipeline; answers its id and a notice."""
    kind = _format(fmt)
    params = await _params(request)
    principal = await _principal(request, params)
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
    if not raw.isdigit() or int(raw) < 1 or (top is not None and int(raw) > top):
        limit = f" and at most {top}" if top else ""
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


@router.get("/requests.{fmt}")
async def get_requests(fmt: str, request: Request, engine: EngineDep) -> Response:
    """Service requests, newest first, by id list, service, status, dates, bbox or circle."""
    kind = _format(fmt)
    found = await asyncio.to_thread(_find, engine, _filter(request.query_params))
    return _answer(kind, found, "service_requests", "request")


@router.get("/requests/{service_request_id}.{fmt}")
async def get_request(service_request_id: str, fmt: str, engine: EngineDep) -> Response:
    """One service request, as a list of one (the spec's shape)."""
    kind = _format(fmt)
    rid = service_request_id
    found = (
        await asyncio.to_thread(_find, engine, open311.RequestFilter(ids=[int(rid)]))
        if rid.isdigit() and len(rid) <= 18
        else []
    )
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
