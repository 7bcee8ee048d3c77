"""Signing in from a real headless Chromium: the Chinese sign-in page, a signed-in page that knows
the user's role and calls the API with the session cookie (refused without the CSRF token,
accepted with it), signing out, a wrong password refused and then slowed down, and ``/docs``
working with every request off the machine aborted.

Runs its own uvicorn (short sign-in waits, so the test need not sleep long) on the session's
test database; Chromium as in ``tests/test_maps_browser.py``. Screenshots at 1920x1080 go to
``tests/artifacts/``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import pytest
from sqlalchemy import Engine

from geo_service.settings import DatabaseSettings, SessionSettings, Settings
from tests.accounts_support import browser_sign_in, make_user
from tests.browser_support import LOOPBACK, Watch, shot, watched_page
from tests.support import serve

PASSWORD = "演示-Secret-9"


@pytest.fixture(scope="module")
def site(database_url: str) -> Iterator[str]:
    """The app on its own loopback port: three free failures per name, then 1 s, 2 s, …"""
    settings = Settings(
        database=DatabaseSettings(url=database_url),
        sessions=SessionSettings(user_free_failures=3, delay_s=1.0),
    )
    with serve(database_url, settings) as url:
        yield url


@pytest.fixture(scope="module")
def accounts(engine: Engine) -> dict[str, str]:
    """An operator and an admin for the browser (unique names: the database is shared)."""
    names = {"operator": "br_operator", "admin": "br_admin", "slow": "br_slow"}
    for role, name in names.items():
        make_user(engine, name, "operator" if role == "slow" else role, PASSWORD)
    return names


@pytest.fixture
def page(browser: Any) -> Iterator[tuple[Any, Watch]]:
    """A watched 1920x1080 page; HTTP errors are left to each test (a refused sign-in answers
    401 or 429 on purpose)."""
    with watched_page(browser, http_errors=False) as pw:
        yield pw


def only_expected(watch: Watch, *statuses: int) -> list[str]:
    """The problems left once the console's notes of the given expected HTTP statuses (a
    refused sign-in answers 401 or 429 on purpose) are set aside."""
    expected = re.compile(
        r"console: Failed to load resource: the server responded with a status of "
        rf"({'|'.join(str(s) for s in statuses)})\b"
    )
    return [p for p in watch.problems if not expected.match(p)]


def posted_login(response: Any) -> bool:
    """Whether a response answers the sign-in form's POST."""
    return bool(response.url.endswith("/login") and response.request.method == "POST")


FETCH = """async ([method, path, token]) => {
  const headers = {"Content-Type": "application/json"};
  if (token) headers["X-CSRF-Token"] = token;
  const r = await fetch(path, {method, headers, credentials: "same-origin",
                               body: method === "GET" ? undefined : "{}"});
  return [r.status, await r.text()];
}"""


def test_sign_in_see_the_role_call_the_api_and_sign_out(
    page: tuple[Any, Watch], site: str, accounts: dict[str, str]
) -> None:
    pg, watch = page
    pg.goto(f"{site}/login", wait_until="load")
    assert pg.evaluate("document.documentElement.lang") == "zh-CN"
    sizes = pg.evaluate(
        "[...document.querySelectorAll('h1, p, label, input, button, a, span')]"
        ".filter(e => e.getClientRects().length > 0)"  # shown (hidden fields are not)
        ".map(e => parseFloat(getComputedStyle(e).fontSize))"
    )
    assert min(sizes) >= 16
    shot(pg, "login_zh")

    browser_sign_in(pg, site, accounts["admin"], PASSWORD, next_path="/docs")
    assert urlparse(pg.url).path == "/docs"
    pg.wait_for_selector(".opblock")
    docs_token = pg.get_attribute('meta[name="csrf-token"]', "content")
    sent = pg.evaluate(  # what "Try it out" adds to a POST and to a GET, signed in
        "['POST', 'GET'].map(m => window.ui.getConfigs()"
        ".requestInterceptor({method: m, headers: {}}).headers['X-CSRF-Token'] || null)"
    )
    assert docs_token and sent == [docs_token, None]
    pg.wait_for_load_state("networkidle")  # its favicon too, before leaving
    pg.goto(f"{site}/login", wait_until="load")  # signed in: the page names the user and role
    assert pg.locator("#signed-in").inner_text().startswith("当前已登录：br_admin")
    assert pg.locator("#signed-in-role").inner_text() == "系统管理员"
    shot(pg, "login_signed_in")
    token = pg.get_attribute('meta[name="csrf-token"]', "content")
    assert token

    status, body = pg.evaluate(FETCH, ["GET", "/v1/audit?action=user.sign_in&limit=1", None])
    assert status == 200 and '"actor":"user:br_admin"' in body
    status, body = pg.evaluate(FETCH, ["POST", "/v1/reports", None])  # no CSRF token
    assert status == 403 and "CSRF" in body
    status, body = pg.evaluate(FETCH, ["POST", "/v1/reports", token])
    assert status != 403 and "CSRF" not in body, body  # past the CSRF check (then the route)

    pg.click("#sign-out")
    pg.wait_for_selector("#username")
    assert urlparse(pg.url).path == "/login" and pg.locator("#signed-in").count() == 0
    status, _ = pg.evaluate(FETCH, ["GET", "/v1/audit?limit=1", None])
    assert status == 401  # the session ended on the server: the cookie names nothing
    assert only_expected(watch, 401, 403, 404, 405, 422) == []


def test_a_wrong_password_is_refused_then_slowed_and_the_right_one_works_after_the_wait(
    page: tuple[Any, Watch], site: str, accounts: dict[str, str]
) -> None:
    pg, watch = page
    name = accounts["slow"]
    for _ in range(3):
        pg.goto(f"{site}/login", wait_until="load")
        pg.fill("#username", name)
        pg.fill("#password", "wrong-password")
        with pg.expect_response(posted_login) as answer:
            pg.click("button[type=submit]")
        assert answer.value.status == 401
        assert pg.locator("#login-error").inner_text() == "用户名或密码错误。"
    # three failures: now even the right password waits
    pg.fill("#password", PASSWORD)
    with pg.expect_response(posted_login) as answer:
        pg.click("button[type=submit]")
    assert answer.value.status == 429 and answer.value.headers["retry-after"] == "1"
    assert "秒后再试" in pg.locator("#login-error").inner_text()
    shot(pg, "login_slowed")
    time.sleep(1.2)
    browser_sign_in(pg, site, name, PASSWORD, next_path="/login?x=1")
    assert urlparse(pg.url).path == "/console"  # /login is no place to land: the default
    assert only_expected(watch, 401, 404, 429) == []


def test_docs_work_offline(page: tuple[Any, Watch], site: str) -> None:
    pg, watch = page
    pg.goto(f"{site}/docs", wait_until="load")
    pg.wait_for_selector(".opblock", timeout=30_000)
    operations = pg.locator(".opblock").count()
    assert operations > 20
    assert "/v1/locate" in pg.locator(".swagger-ui").inner_text()
    shot(pg, "docs")
    assert watch.problems == []
    hosts = {urlparse(u).hostname for u in watch.requests if urlparse(u).scheme.startswith("http")}
    assert hosts <= LOOPBACK and watch.requests
