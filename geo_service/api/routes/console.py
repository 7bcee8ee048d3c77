"""``/console``: the command centre's wall screen, and the three small JSON calls only it makes
(``/v1/console/summary``, ``/v1/console/figures``, ``/v1/console/areas``).

The page is for signed-in operators (and admins; anonymous → the sign-in page). Everything
else it shows comes from the existing API with the session cookie: ``/v1/stats`` (trend and
rankings), ``/v1/analytics`` (heat, hot spots, emerging hot spots, at k = 0 for staff),
``/tiles`` (town, community and grid outlines), ``/v1/reports`` (a grid's cases, a case, its
events) and the loop's POST routes (with the page's ``X-CSRF-Token``).

**Live**: the screen polls ``/v1/console/summary`` every two seconds with ``If-None-Match``;
the ETag is the change token (highest report and event id, :mod:`geo_service.store.console`)
and who asks, so an unchanged screen costs one tiny query and a 304.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel
from sqlalchemy import Engine

from geo_service.api.deps import EngineDep, SettingsDep, require_role
from geo_service.api.models import ERRORS
from geo_service.api.responses import JSONBytes
from geo_service.api.session import csrf_token, page_role
from geo_service.auth import Principal
from geo_service.console import figures as console_figures
from geo_service.console.i18n import lang_of
from geo_service.console.page import console_page
from geo_service.reports.schemas import CHINA_TZ
from geo_service.stats.indicators import PeriodKind
from geo_service.store import console as store

router = APIRouter(tags=["console"], responses=ERRORS)

PAGE_ROLES: Final = ("operator", "admin")
VIEWER_ROLES: Final = ("operator", "planner", "admin")  # as /v1/stats: the figures name units
LATEST_MAX: Final = 200
ViewerDep = Annotated[Principal, Depends(require_role(*VIEWER_ROLES))]
PageUser = Annotated[Principal, Depends(page_role(*PAGE_ROLES))]


class LatestReport(BaseModel):
    """A report pinned on the wall map: no reporter, text or photo."""

    id: int
    reported_at: str
    category: str
    channel: str
    status: str
    lon: float
    lat: float
    grid_code: str | None
    supervised: bool


class Summary(BaseModel):
    """The change token and today's newest reports (``latest``, newest first)."""

    token: str
    as_of: str
    latest: list[LatestReport]


class PeriodFigures(BaseModel):
    """One period's figures: the district's row of ``/v1/stats/indicators`` (``total``) and,
    per channel, the same row with only that channel's cases."""

    period: dict[str, str]
    label: str
    total: dict[str, Any]
    channels: dict[str, dict[str, Any]]


class AreaLabel(BaseModel):
    """A town or community: its code, name, parent and where its name goes on the map."""

    code: str
    name: str | None
    level: str
    parent_code: str | None
    lon: float
    lat: float


class Areas(BaseModel):
    """The towns and communities of the version in force and the district's extent."""

    version: str
    bounds: list[float]
    items: list[AreaLabel]


@router.get("/console", response_class=HTMLResponse, include_in_schema=False)
async def console(
    request: Request,
    who: PageUser,
    settings: SettingsDep,
    lang: Annotated[str | None, Query(description="zh (default) or en")] = None,
) -> HTMLResponse:
    """The wall screen (zh-CN; ``?lang=en`` in English); anonymous → 303 to ``/login``."""
    page = console_page(lang_of(lang), csrf_token(request), who, settings.analytics.k_min)
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})


def _etag(token: tuple[int, int], who: Principal) -> str:
    seen = f"{token[0]}.{token[1]}|{who.role}|{who.scope or ''}|{who.user_id}|{who.key_id}"
    return '"' + hashlib.sha256(seen.encode()).hexdigest()[:24] + '"'


def _matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    return any(t.strip().removeprefix("W/") == etag for t in header.split(","))


@router.get("/v1/console/summary", response_model=Summary, responses={304: {}})
async def summary(request: Request, engine: EngineDep, who: ViewerDep) -> Response:
    """The change token and today's newest reports; ``If-None-Match`` with the last ETag
    answers 304 while nothing was filed or moved (one index lookup, nothing written)."""

    def token() -> tuple[int, int]:
        with engine.connect() as conn:
            return store.change_token(conn)

    seen = await asyncio.to_thread(token)
    etag = _etag(seen, who)
    headers = {"ETag": etag, "Cache-Control": "private, no-cache", "Vary": "Cookie, Authorization"}
    if _matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    now = dt.datetime.now(CHINA_TZ)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    rows = await asyncio.to_thread(_latest, engine, midnight, who.scope)
    body = {"token": f"{seen[0]}.{seen[1]}", "as_of": now.isoformat(), "latest": rows}
    return JSONBytes(body, headers=headers)


def _latest(engine: Engine, since: dt.datetime, scope: str | None) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = store.latest_reports(conn, since, LATEST_MAX, scope)
    return [
        {
            "id": r.id,
            "reported_at": r.reported_at.isoformat(),
            "category": r.category,
            "channel": r.channel,
            "status": r.status,
            "lon": round(float(r.lon), 7),
            "lat": round(float(r.lat), 7),
            "grid_code": r.grid_code,
            "supervised": bool(r.supervised),
        }
        for r in rows
    ]


@router.get("/v1/console/figures", response_model=PeriodFigures)
async def figures(
    engine: EngineDep,
    settings: SettingsDep,
    _: ViewerDep,
    period: Annotated[PeriodKind, Query(description="day, week or month …")] = "day",
    area: Annotated[str | None, Query(description="count only cases in this area")] = None,
    category: Annotated[str | None, Query(description="comma-separated categories")] = None,
    channel: Annotated[str | None, Query(description="comma-separated channels")] = None,
) -> JSONBytes:
    """The period's figures exactly as ``/v1/stats/indicators?by=area&level=district`` gives
    them (``total``), and the same row per channel (``channels``)."""
    body = await asyncio.to_thread(
        console_figures.period_figures, engine, settings.stats, period, area, category, channel
    )
    return JSONBytes(body)


@router.get("/v1/console/areas", response_model=Areas)
async def areas(request: Request, engine: EngineDep, _: ViewerDep) -> Response:
    """Towns and communities of the version in force with a point inside each for its name;
    the extent; an ETag per version."""
    body = await asyncio.to_thread(console_figures.area_labels, engine)
    etag = '"areas-' + hashlib.sha256(body["version"].encode()).hexdigest()[:16] + '"'
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    if _matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return JSONBytes(body, headers=headers)
