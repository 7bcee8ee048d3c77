"""Browser sessions at the HTTP edge: who is signed in, what a page demands, the CSRF token.

The ``gs_session`` cookie (HttpOnly, SameSite=Lax, Secure when the request came over HTTPS)
names a server-side session (:mod:`geo_service.accounts`). A page declares who may see it with
``Depends(page_role("operator"))``: anonymous visitors are sent to ``/login?next=<path>`` (303),
signed-in users of another role get a 403 page in Chinese, ``admin`` passes every page. A page
that changes state puts :func:`csrf_token` in ``<meta name="csrf-token">`` and its JavaScript
sends it back as ``X-CSRF-Token`` on POST/PUT/PATCH/DELETE (``credentials: "same-origin"``);
the JSON API's caller (:func:`geo_service.api.deps.caller`) refuses those methods from a cookie
without it (403). The session is looked up once per request and kept in the request's scope.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Final
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Engine

from geo_service.accounts import CSRF_HEADER, SESSION_COOKIE, Session, csrf_matches, session_of
from geo_service.auth import Principal
from geo_service.errors import Forbidden
from geo_service.maps.html import render
from geo_service.settings import SessionSettings

_MEMO: Final = "geo_service.session"  # the request's Session or None, once looked up
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
ROLE_NAMES: Final = {
    "reporter": "上报人",
    "grid_worker": "网格员",
    "operator": "指挥中心值班员",
    "planner": "网格规划员",
    "admin": "系统管理员",
}
"""Each role's name on the pages."""


def _settings(request: Request) -> SessionSettings:
    settings: SessionSettings = request.app.state.settings.sessions
    return settings


async def current_session(request: Request) -> Session | None:
    """The live session of the request's ``gs_session`` cookie, or None (looked up once per
    request, in a worker thread)."""
    if _MEMO in request.scope:
        memo: Session | None = request.scope[_MEMO]
        return memo
    token = request.cookies.get(SESSION_COOKIE)
    found = None
    if token:
        engine: Engine = request.app.state.engine
        found = await asyncio.to_thread(session_of, engine, token, _settings(request))
    request.scope[_MEMO] = found
    return found


def forget_session(request: Request) -> None:
    """Drop the request's looked-up session (after signing out)."""
    request.scope[_MEMO] = None


async def page_user(request: Request) -> Principal | None:
    """The signed-in user of the request's session cookie (None when anonymous, expired or
    disabled)."""
    session = await current_session(request)
    return session.principal if session else None


class LoginRequired(Exception):
    """An anonymous visitor asked for a page that needs a signed-in user."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class PageForbidden(Exception):
    """A signed-in user asked for a page its role may not see."""

    def __init__(self, principal: Principal, roles: tuple[str, ...]) -> None:
        super().__init__(principal.role)
        self.principal = principal
        self.roles = roles


def page_role(*roles: str) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency for HTML pages: the signed-in Principal when its role is one of ``roles``
    (``admin`` always passes); anonymous: 303 to ``/login?next=<path+query>``; another role:
    a 403 page in Chinese."""

    async def signed_in_page(request: Request) -> Principal:
        who = await page_user(request)
        if who is None:
            path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise LoginRequired(path)
        if who.role != "admin" and who.role not in roles:
            raise PageForbidden(who, roles)
        return who

    return signed_in_page


def csrf_token(request: Request) -> str:
    """The session's CSRF token ("" when anonymous), for ``<meta name="csrf-token">``; call it
    after :func:`page_role` or :func:`page_user` resolved the session in this request."""
    session = request.scope.get(_MEMO)
    if session is None and _MEMO not in request.scope:
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            session = session_of(request.app.state.engine, token, _settings(request))
        request.scope[_MEMO] = session
    return session.csrf if session else ""


async def cookie_caller(request: Request) -> Principal | None:
    """The JSON API's caller from the session cookie: the user's Principal, None without a live
    session; 403 for POST/PUT/PATCH/DELETE without the session's ``X-CSRF-Token``."""
    session = await current_session(request)
    if session is None:
        return None
    if request.method not in SAFE_METHODS and not csrf_matches(
        session, request.headers.get(CSRF_HEADER)
    ):
        sent = request.headers.get(CSRF_HEADER)
        raise Forbidden(
            f"CSRF token {'wrong' if sent else 'missing'}: a {request.method} from a signed-in "
            f"page must send the page's csrf-token as the {CSRF_HEADER} header",
            details={"csrf": "wrong" if sent else "missing"},
        )
    return session.principal


def set_session_cookie(request: Request, response: Response, session: Session) -> None:
    """Put a just-opened session's token in the ``gs_session`` cookie: HttpOnly, SameSite=Lax,
    Secure when the request came over HTTPS (uvicorn's ``--proxy-headers`` turns a trusted
    proxy's ``X-Forwarded-Proto`` into the request's scheme), for the session's whole life."""
    assert session.token is not None
    response.set_cookie(
        SESSION_COOKIE,
        session.token,
        max_age=int(_settings(request).absolute_s),
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


def clear_session_cookie(request: Request, response: Response) -> None:
    """Tell the browser to drop the ``gs_session`` cookie."""
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


def install(app: FastAPI) -> None:
    """Answer :class:`LoginRequired` with a 303 to the sign-in page and
    :class:`PageForbidden` with a 403 page in Chinese."""

    @app.exception_handler(LoginRequired)
    async def to_login(_: Request, exc: LoginRequired) -> Response:
        return RedirectResponse(f"/login?next={quote(exc.next_path, safe='')}", status_code=303)

    @app.exception_handler(PageForbidden)
    async def forbidden_page(_: Request, exc: PageForbidden) -> Response:
        html = render(
            "forbidden.html",
            username=exc.principal.username or "",
            role=ROLE_NAMES.get(exc.principal.role, exc.principal.role),
            needed="、".join(ROLE_NAMES.get(r, r) for r in (*exc.roles, "admin")),
        )
        return HTMLResponse(html, status_code=403)
