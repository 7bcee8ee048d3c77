"""``/v1/reports``: file one report or a bulk of them, list and read them by role."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Query
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Engine

from geo_service.api.deps import (
    EngineDep,
    FilerDep,
    LocatorsDep,
    Offset,
    PrincipalDep,
    ReportId,
    RoutingDep,
)
from geo_service.api.limits import BulkRequest, IntakeRequest
from geo_service.api.models import (
    ERRORS,
    JSON,
    NDJSON,
    BulkAnswer,
    FiledReport,
    Report,
    ReportList,
)
from geo_service.api.responses import JSONBytes
from geo_service.auth import Principal
from geo_service.errors import Conflict, InvalidInput, TooLarge
from geo_service.locator import Locator
from geo_service.reports import queries
from geo_service.reports.intake import Outcome, ingest
from geo_service.reports.schemas import ReportIn
from geo_service.routing import RoutingTable

router = APIRouter(prefix="/v1", tags=["reports"], responses=ERRORS)

_REPORT_IN = {"$ref": "#/components/schemas/ReportIn"}  # placed by geo_service.api.openapi
_ONE_BODY: dict[str, Any] = {
    "requestBody": {"required": True, "content": {JSON: {"schema": _REPORT_IN}}}
}
_BULK_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            JSON: {"schema": {"type": "array", "items": _REPORT_IN, "maxItems": 10_000}},
            NDJSON: {  # its lines: one report (a ReportIn object) per line
                "schema": {
                    "type": "array",
                    "items": _REPORT_IN,
                    "maxItems": 10_000,
                    "description": "NDJSON: each item of this array on a line of its own",
                },
            },
        },
    }
}

MAX_BULK = 10_000
KEY_MAX = 180  # stored as "<key id>:<key>" (or ":ext:<external_id>") in 200 characters
_ONE = TypeAdapter(ReportIn)


def _problem(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()))
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts)


def _store(
    engine: Engine,
    items: list[ReportIn],
    keys: list[str | None],
    loc: Locator,
    routing: RoutingTable,
    principal: Principal,
) -> list[Outcome]:
    with engine.begin() as conn:
        return ingest(conn, items, keys, loc, routing, principal)


@router.post(
    "/reports",
    status_code=201,
    response_model=FiledReport,
    responses={200: {"model": FiledReport, "description": "a retry: the first answer again"}},
    openapi_extra=_ONE_BODY,
)
async def file_report(
    principal: FilerDep,
    request: IntakeRequest,
    engine: EngineDep,
    locators: LocatorsDep,
    routing: RoutingDep,
    idempotency_key: Annotated[str | None, Header(max_length=KEY_MAX)] = None,
) -> JSONBytes:
    """File one report: located, routed and stored in one transaction.

    With ``Idempotency-Key``, a retry of the same body answers the first response (200) and
    stores nothing; the same key with another body is a 409.
    """
    body = await request.body()
    try:
        item = _ONE.validate_json(body)
    except ValidationError as exc:
        raise InvalidInput(f"invalid report: {_problem(exc)}") from exc
    loc, table = await locators.get(), await routing.get()
    key = f"{principal.ref}:{idempotency_key}" if idempotency_key else None
    outcome = (await asyncio.to_thread(_store, engine, [item], [key], loc, table, principal))[0]
    if outcome.status == "stored":
        return JSONBytes(outcome.report, status_code=201)
    if outcome.status == "duplicate":
        return JSONBytes(outcome.report, status_code=200, headers={"Idempotent-Replayed": "true"})
    if outcome.status == "conflict":
        raise Conflict(outcome.reason or "idempotency key conflict")
    raise InvalidInput(outcome.reason or "report refused")


_MANY = TypeAdapter(list[ReportIn])


def _parse_bulk(body: bytes, content_type: str) -> list[Any]:
    """The items of a JSON array, or of NDJSON (one report per line): a :class:`ReportIn`
    where valid (checked in bulk when it can be), an :class:`InvalidInput` for a malformed
    line, else the raw item, to be validated alone for its own answer."""
    text_start = body.lstrip()[:1]
    if not text_start:
        raise InvalidInput("the body is empty: send a JSON array or NDJSON of reports")
    if "ndjson" not in content_type and text_start == b"[":
        try:
            return list(_MANY.validate_json(body))  # every item valid: parsed and checked in Rust
        except ValidationError:
            pass  # some item is not: each is validated alone, to answer per item
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(f"malformed JSON array: {exc}") from exc
        if not isinstance(data, list):
            raise InvalidInput("bulk body must be a JSON array or NDJSON")
        return data
    out: list[Any] = []
    lines: list[bytes] = []
    for n, line in enumerate(body.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append(orjson.loads(line))
            lines.append(line)
        except orjson.JSONDecodeError as exc:
            out.append(InvalidInput(f"line {n}: malformed JSON ({exc})"))
    if len(lines) == len(out):  # each line is one JSON value, so the array has one item each
        try:
            return list(_MANY.validate_json(b"[" + b",".join(lines) + b"]"))
        except ValidationError:
            pass
    return out


@router.post("/reports:bulk", response_model=BulkAnswer, openapi_extra=_BULK_BODY)
async def file_reports(
    principal: FilerDep,
    request: BulkRequest,
    engine: EngineDep,
    locators: LocatorsDep,
    routing: RoutingDep,
) -> JSONBytes:
    """File up to 10,000 reports (JSON array or NDJSON); an answer per item, in order.

    ``external_id`` is each item's idempotency key. A refused item never blocks the others.
    """
    raw = _parse_bulk(await request.body(), request.headers.get("content-type", ""))
    if len(raw) > MAX_BULK:
        raise TooLarge(f"{len(raw)} reports in one request, over the limit of {MAX_BULK}")
    answers: list[dict[str, Any] | None] = [None] * len(raw)
    items: list[ReportIn] = []
    slots: list[int] = []
    for i, entry in enumerate(raw):
        if isinstance(entry, InvalidInput):
            answers[i] = {"index": i, "status": "refused", "reason": entry.message}
            continue
        if isinstance(entry, ReportIn):
            items.append(entry)
            slots.append(i)
            continue
        try:
            items.append(_ONE.validate_python(entry))
            slots.append(i)
        except ValidationError as exc:
            answers[i] = {"index": i, "status": "refused", "reason": _problem(exc)}
    keys = [f"{principal.ref}:ext:{it.external_id}" if it.external_id else None for it in items]
    loc, table = await locators.get(), await routing.get()
    outcomes = await asyncio.to_thread(_store, engine, items, keys, loc, table, principal)
    for i, o in zip(slots, outcomes, strict=True):
        status = "refused" if o.status == "conflict" else o.status
        answer: dict[str, Any] = {"index": i, "status": status}
        if o.report is not None:
            answer["id"] = o.report["id"]
            answer["report"] = o.report
        if o.reason:
            answer["reason"] = o.reason
        answers[i] = answer
    counts = {
        s: sum(1 for a in answers if a and a["status"] == s)
        for s in ("stored", "duplicate", "refused")
    }
    return JSONBytes({**counts, "items": answers})


@router.get("/reports", response_model=ReportList)
async def list_reports(
    engine: EngineDep,
    principal: PrincipalDep,
    status: Annotated[str | None, Query(description="comma-separated statuses")] = None,
    area: Annotated[str | None, Query(description="grid/community/town/district code")] = None,
    grid: Annotated[str | None, Query(description="alias of area")] = None,
    unit: Annotated[str | None, Query(description="unit code")] = None,
    category: str | None = None,
    channel: str | None = None,
    since: Annotated[dt.datetime | None, Query(alias="from")] = None,
    until: Annotated[dt.datetime | None, Query(alias="to")] = None,
    bbox: Annotated[str | None, Query(description="minlon,minlat,maxlon,maxlat")] = None,
    overdue: bool | None = None,
    supervised: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)] = 100,
    offset: Offset = 0,
) -> JSONBytes:
    """Reports the caller may see, newest first: ``{"total": N, "items": [...]}``."""
    f = queries.ReportFilter(
        status=status.split(",") if status else None,
        area=area or grid,
        unit=unit,
        category=category,
        channel=channel,
        since=since,
        until=until,
        bbox=queries.parse_bbox(bbox),
        overdue=overdue,
        supervised=supervised,
        limit=limit,
        offset=offset,
    )

    def run() -> dict[str, Any]:
        with engine.connect() as conn:
            return queries.list_reports(conn, f, principal)

    return JSONBytes(await asyncio.to_thread(run))


@router.get("/reports/{report_id}", response_model=Report)
async def get_report(report_id: ReportId, engine: EngineDep, principal: PrincipalDep) -> JSONBytes:
    """One report, as the caller's role may see it."""

    def run() -> dict[str, Any]:
        with engine.connect() as conn:
            return queries.get_report(conn, report_id, principal)

    return JSONBytes(await asyncio.to_thread(run))
