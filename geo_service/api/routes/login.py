"""``/login`` and ``/logout``: the sign-in page (Chinese, ``?lang=en`` for English), the form
post that opens a browser session, and signing out.

Thin: the rules (passwords, sessions, the slow-down of failed sign-ins, which ``next`` paths
are followed) are :mod:`geo_service.accounts`'; the cookie and CSRF at the edge are
:mod:`geo_service.api.session`'s. The form carries a one-time ``login_token`` that must equal
the ``gs_login`` cookie set with the page, so another site cannot sign a browser in.
"""

from __future__ import annotations

import asyncio
import math
import secrets
from typing import Annotated, Final
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from geo_service import accounts
from geo_service.api.deps import EngineDep, SettingsDep
from geo_service.api.session import (
    ROLE_NAMES,
    clear_session_cookie,
    current_session,
    forget_session,
    set_session_cookie,
)
from geo_service.errors import Forbidden, RateLimited, Unauthorized
from geo_service.maps.html import render

router = APIRouter(tags=["sign-in"], include_in_schema=False)

LOGIN_COOKIE: Final = "gs_login"
TEXT: Final = {
    "zh": {
        "title": "登录 · 网格化治理指挥中心",
        "heading": "网格化治理指挥中心",
        "subtitle": "请使用您的账号登录",
        "username": "用户名",
        "password": "密码",
        "submit": "登录",
        "hint": "账号由系统管理员分配",
        "switch": "English",
        "refused": "用户名或密码错误。",
        "slowed": "登录失败次数过多，请 {s} 秒后再试。",
        "expired": "登录页面已过期，请重新输入。",
        "signed_in": "当前已登录：",
        "sign_out": "退出登录",
        "other": "或使用其他账号登录：",
    },
    "en": {
        "title": "Sign in · Grid governance command centre",
        "heading": "Grid governance command centre",
        "subtitle": "Sign in with your account",
        "username": "User name",
        "password": "Password",
        "submit": "Sign in",
        "hint": "Accounts are issued by the administrator",
        "switch": "中文",
        "refused": "Wrong user name or password.",
        "slowed": "Too many failed sign-ins: try again in {s} s.",
        "expired": "The sign-in page expired: please enter your details again.",
        "signed_in": "Signed in as ",
        "sign_out": "Sign out",
        "other": "Or sign in with another account:",
    },
}

Lang = Annotated[str | None, Query(pattern="^(zh|en|zh-CN)$", description="zh (default) or en")]


def _page(
    request: Request,
    lang: str,
    next_path: str,
    *,
    error: str | None = None,
    username: str = "",
    status: int = 200,
    session: accounts.Session | None = None,
) -> HTMLResponse:
    """The sign-in page with a fresh ``login_token`` (also set as the ``gs_login`` cookie);
    for a signed-in visitor, also who it is and a sign-out button (with the CSRF token)."""
    lang = "en" if lang == "en" else "zh"
    who = session.principal if session else None
    token = secrets.token_urlsafe(24)
    other = "zh" if lang == "en" else "en"
    html = render(
        "login.html",
        lang=lang,
        t=TEXT[lang],
        next=next_path,
        login_token=token,
        error=error,
        username=username,
        switch_url=f"/login?lang={other}&next={quote(next_path, safe='')}",
        who=who,
        role_name=(ROLE_NAMES.get(who.role, who.role) if lang == "zh" else who.role)
        if who
        else "",
        csrf=session.csrf if session else "",
    )
    response = HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=3600,
        path="/login",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.get("/login", response_class=HTMLResponse)
async def login_page(
    request: Request,
    next: Annotated[str | None, Query(max_length=2000)] = None,
    lang: Lang = None,
) -> HTMLResponse:
    """The sign-in form (zh-CN; ``?lang=en`` in English); a signed-in visitor also sees who
    it is and can sign out."""
    session = await current_session(request)
    return _page(request, lang or "zh", accounts.safe_next(next), session=session)


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    username: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=accounts.PASSWORD_MAX)],
    next: Annotated[str, Form(max_length=2000)] = "",
    login_token: Annotated[str, Form(max_length=100)] = "",
    lang: Annotated[str, Form(max_length=8)] = "zh",
) -> Response:
    """Sign in: 303 to ``next`` (a path on this site) with the session cookie; the page again
    with 401 for a wrong name or password, 429 (Retry-After) while slowed down, 403 when the
    form did not come from this site's sign-in page."""
    target = accounts.safe_next(next)
    t = TEXT["en" if lang == "en" else "zh"]
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    if not login_token or not secrets.compare_digest(cookie.encode(), login_token.encode()):
        return _page(request, lang, target, error=t["expired"], username=username, status=403)
    address = request.client.host if request.client else "unknown"
    try:
        session = await asyncio.to_thread(
            accounts.sign_in, engine, username, password, address, settings.sessions
        )
    except RateLimited as slowed:
        wait = max(1, math.ceil(slowed.retry_after_s or 1))
        page = _page(request, lang, target, error=t["slowed"].format(s=wait),
                     username=username, status=429)
        page.headers["Retry-After"] = str(wait)
        return page
    except Unauthorized:
        return _page(request, lang, target, error=t["refused"], username=username, status=401)
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(request, response, session)
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


@router.post("/logout")
async def logout(
    request: Request,
    engine: EngineDep,
    csrf_token: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Sign out: the session ends server-side and the cookie is dropped; 303 to ``/login``.
    The session's CSRF token is required (``X-CSRF-Token`` header or a ``csrf_token`` form
    field): 403 without it."""
    session = await current_session(request)
    response = RedirectResponse("/login", status_code=303)
    if session is not None:
        sent = request.headers.get(accounts.CSRF_HEADER) or csrf_token
        if not accounts.csrf_matches(session, sent):
            raise Forbidden(
                f"CSRF token {'wrong' if sent else 'missing'}: signing out needs the page's "
                f"csrf-token as the {accounts.CSRF_HEADER} header or the csrf_token field"
            )
        await asyncio.to_thread(accounts.sign_out, engine, session)
        forget_session(request)
    clear_session_cookie(request, response)
    return response
