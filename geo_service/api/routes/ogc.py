"""``/ogc``: OGC API - Features (Core, GeoJSON, OpenAPI 3.0), so GDAL's OAPIF driver and QGIS
read the grids, the other area levels and the reports.

Collections: ``grids``, ``communities``, ``towns``, ``districts`` (the boundary version in
force; ``datetime=YYYY-MM-DD`` picks the one in force that day) and ``reports`` (the public
Open311 view, newest first; ``datetime`` filters the time reported, instants, days and
``a/b`` intervals with ``..`` for an open end). Items take ``bbox`` (CRS84), ``limit`` (default
100; above the maximum — 10,000 areas, 1,000 reports — it is lowered, as the standard says),
``offset`` and ``f=json``; pages link ``next``/``prev``. Like Open311's reads, everything here
is public and private by default: a report is its coarse cell's centre without description
unless the caller's key may see it exactly (``geo_service.reports.disclosure``); no feature
ever carries a reporter's name or phone.
A bad or unknown parameter is a 400 naming it (``{"code", "description"}``).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Final

from fastapi import APIRouter, Path, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from geo_service.api.deps import CallerDep
from geo_service.api.models import (
    OGC_ERRORS,
    Collections,
    Conformance,
    Landing,
    OgcItem,
    OgcItems,
    OpenAPIDocument,
)
from geo_service.api.models import Collection as CollectionDoc
from geo_service.api.responses import JSONBytes
from geo_service.errors import GeoServiceError, InvalidInput, from_driver_error, http_status
from geo_service.protocols.ogc import documents
from geo_service.protocols.ogc.areas import area_extent, area_item, area_items
from geo_service.protocols.ogc.collections import COLLECTIONS, Collection, collection
from geo_service.protocols.ogc.params import (
    FORMATS,
    MAX_OFFSET,
    check_plain,
    parse_datetime_param,
    parse_items,
)
from geo_service.protocols.ogc.reports import MAX_LIMIT as REPORTS_MAX_LIMIT
from geo_service.protocols.ogc.reports import report_extent, report_item, report_items
from geo_service.reports.schemas import CHINA_TZ
from geo_service.settings import PrivacySettings, Settings

AREAS_MAX_LIMIT: Final = 10_000


class GeoJSONBytes(JSONBytes):
    """A GeoJSON body."""

    media_type = documents.GEOJSON


class OpenAPIBytes(JSONBytes):
    """An OpenAPI 3.0 document."""

    media_type = documents.OPENAPI


def _error(status: int, exc: GeoServiceError) -> JSONBytes:
    return JSONBytes({"code": exc.code, "description": exc.message}, status_code=status)


class OgcRoute(APIRoute):
    """A route whose failures answer in the OGC exception format; bad input is a 400."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except InvalidInput as exc:
                return _error(400, exc)
            except GeoServiceError as exc:
                return _error(http_status(exc), exc)
            except RequestValidationError as exc:
                return _error(400, InvalidInput(str(exc.errors())))
            except DBAPIError as exc:  # an outage: 503 with Retry-After, as an OGC exception
                domain = from_driver_error(exc)
                if domain is None:
                    raise
                answer = _error(http_status(domain), domain)
                answer.headers["Retry-After"] = str(math.ceil(domain.retry_after_s or 1))
                return answer

        return route


router = APIRouter(prefix="/ogc", tags=["ogc"], route_class=OgcRoute, responses=OGC_ERRORS)


def _query(*names: str) -> dict[str, Any]:
    """``openapi_extra`` declaring the query parameters a resource takes (they are read and
    checked by :mod:`geo_service.protocols.ogc.params`, which refuses any other)."""
    return {"parameters": [{"in": "query", "required": False, **_PARAMS[n]} for n in names]}


_PARAMS: Final[dict[str, dict[str, Any]]] = {
    "f": {"name": "f", "schema": {"type": "string", "enum": list(FORMATS)},
          "description": "the format: json (the only one)"},
    "bbox": {"name": "bbox", "schema": {"type": "string"},
             "description": "minlon,minlat,maxlon,maxlat (CRS84), or the 6-number 3D form"},
    "datetime": {"name": "datetime", "schema": {"type": "string"},
                 "description": "an instant, a day, or an interval a/b (.. for an open end)"},
    "limit": {"name": "limit", "schema": {"type": "integer", "minimum": 1},
              "description": "features per page (lowered to the maximum above it)"},
    "offset": {"name": "offset", "schema": {"type": "integer", "minimum": 0,
                                            "maximum": MAX_OFFSET},
               "description": "features to skip"},
}
_PLAIN: Final = _query("f")
CollectionId = Annotated[str, Path(json_schema_extra={"enum": list(COLLECTIONS)})]


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _privacy(request: Request) -> PrivacySettings:
    settings: Settings = request.app.state.settings
    return settings.privacy


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def _read(request: Request, work: Callable[[Connection], Any]) -> Any:
    engine = _engine(request)

    def run() -> Any:
        with engine.connect() as conn:
            return work(conn)

    return await asyncio.to_thread(run)


def _describe(conn: Connection, base: str, c: Collection) -> dict[str, Any]:
    if c.level is not None:
        box, version = area_extent(conn, c.level)
        since = version.effective_from.isoformat() if version and version.effective_from else None
        until = version.effective_to.isoformat() if version and version.effective_to else None
        return documents.collection_doc(base, c, box, [since, until] if version else None)
    box, times = report_extent(conn)
    return documents.collection_doc(base, c, box, times if times[0] else None)


@router.get("", response_class=JSONBytes, response_model=Landing, openapi_extra=_PLAIN)
async def landing_page(request: Request) -> JSONBytes:
    """The landing page: links to the API definition, conformance and the collections."""
    check_plain(request.query_params.multi_items())
    return JSONBytes(documents.landing(_base(request)))


@router.get("/api", response_class=OpenAPIBytes, response_model=OpenAPIDocument)
async def api_definition(request: Request) -> OpenAPIBytes:
    """The OpenAPI 3.0 definition of the service (the ``service-desc`` link)."""
    return OpenAPIBytes(request.app.openapi())


@router.get(
    "/conformance", response_class=JSONBytes, response_model=Conformance, openapi_extra=_PLAIN
)
async def conformance(request: Request) -> JSONBytes:
    """The conformance classes implemented: Core, OpenAPI 3.0, GeoJSON."""
    check_plain(request.query_params.multi_items())
    return JSONBytes(documents.conformance())


@router.get(
    "/collections", response_class=JSONBytes, response_model=Collections, openapi_extra=_PLAIN
)
async def collections(request: Request) -> JSONBytes:
    """Every collection with its extent."""
    check_plain(request.query_params.multi_items())
    base = _base(request)
    docs = await _read(
        request, lambda conn: [_describe(conn, base, c) for c in COLLECTIONS.values()]
    )
    return JSONBytes(documents.collections_doc(base, docs))


@router.get(
    "/collections/{collection_id}",
    response_class=JSONBytes,
    response_model=CollectionDoc,
    openapi_extra=_PLAIN,
)
async def describe_collection(collection_id: CollectionId, request: Request) -> JSONBytes:
    """One collection with its extent."""
    c = collection(collection_id)
    check_plain(request.query_params.multi_items())
    base = _base(request)
    return JSONBytes(await _read(request, lambda conn: _describe(conn, base, c)))


@router.get(
    "/collections/{collection_id}/items",
    response_class=GeoJSONBytes,
    response_model=OgcItems,
    openapi_extra=_query("bbox", "datetime", "limit", "offset", "f"),
)
async def items(collection_id: CollectionId, request: Request, who: CallerDep) -> GeoJSONBytes:
    """A page of features (bbox, datetime, limit, offset), with ``numberMatched``."""
    c = collection(collection_id)
    params = request.query_params.multi_items()
    level = c.level
    q = parse_items(params, AREAS_MAX_LIMIT if level is not None else REPORTS_MAX_LIMIT)

    def work(conn: Connection) -> tuple[list[dict[str, Any]], int]:
        if level is not None:
            features, matched, _ = area_items(conn, level, q)
            return features, matched
        return report_items(conn, q, who, _privacy(request))

    features, matched = await _read(request, work)
    doc = documents.items_doc(_base(request), c, features, matched, q, dict(params))
    return GeoJSONBytes(doc)


@router.get(
    "/collections/{collection_id}/items/{feature_id}",
    response_class=GeoJSONBytes,
    response_model=OgcItem,
    openapi_extra=_query("datetime", "f"),
)
async def item(
    collection_id: CollectionId, feature_id: str, request: Request, who: CallerDep
) -> GeoJSONBytes:
    """One feature: an area by code (``datetime`` = the day of the version), a report by id."""
    c = collection(collection_id)
    day = None
    for name, value in request.query_params.multi_items():
        if name == "datetime" and c.level is not None:
            start, _, interval = parse_datetime_param(value)
            if interval or start is None:
                raise InvalidInput("datetime: boundary collections take one day")
            day = start.astimezone(CHINA_TZ).date()
        else:
            check_plain([(name, value)])
    level = c.level

    def work(conn: Connection) -> dict[str, Any]:
        if level is not None:
            return area_item(conn, level, feature_id, day)
        return report_item(conn, feature_id, who, _privacy(request))

    feature = await _read(request, work)
    return GeoJSONBytes(documents.item_doc(_base(request), c, feature))
