"""Accounts and browser sessions: users made from the command line with argon2-hashed passwords,
the sign-in form, the ``gs_session`` cookie (HttpOnly, SameSite=Lax, Secure over HTTPS), server-
side expiry (idle and absolute), disabled users losing their sessions at once, CSRF on every
state-changing call from a cookie, the slow-down of repeated failed sign-ins, and ``next``
never leading off the site."""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import pytest
from argon2 import PasswordHasher
from fastapi import Depends, Request
from fastapi.responses import PlainTextResponse
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from geo_service.accounts import HASHER, safe_next
from geo_service.api.session import csrf_token, page_role
from geo_service.app import create_app
from geo_service.auth import Principal
from geo_service.cli import app as cli
from geo_service.db.schema import ROLES, audit_log, user_sessions, users
from geo_service.settings import (
    DatabaseSettings,
    RateLimitSettings,
    SessionSettings,
    Settings,
)
from tests.accounts_support import make_user
from tests.conftest import auth

runner = CliRunner()
_addresses = itertools.count(1)


@contextmanager
def service(
    database_url: str,
    base_url: str = "http://testserver",
    rates: RateLimitSettings | None = None,
    **sessions: Any,
) -> Iterator[TestClient]:
    """The app with these session settings, its own client address (the address throttle is
    per address) and test pages that print their CSRF token: ``/t/page`` for operators,
    ``/t/any`` for every role."""
    settings = Settings(
        database=DatabaseSettings(url=database_url),
        sessions=SessionSettings(**sessions),
        rate_limits=rates or RateLimitSettings(enabled=False),
    )
    app = create_app(settings)

    async def staff_page(
        request: Request, who: Annotated[Principal, Depends(page_role("operator"))]
    ) -> PlainTextResponse:
        return PlainTextResponse(f"{who.username} {who.role} {csrf_token(request)}")

    app.add_api_route("/t/page", staff_page, methods=["GET"])

    async def any_page(
        request: Request, who: Annotated[Principal, Depends(page_role(*ROLES))]
    ) -> PlainTextResponse:
        return PlainTextResponse(f"{who.username} {who.role} {csrf_token(request)}")

    app.add_api_route("/t/any", any_page, methods=["GET"])
    n = next(_addresses)
    with TestClient(app, base_url=base_url, client=(f"10.77.{n // 250}.{n % 250}", 5000)) as c:
        yield c


def sign_in(c: TestClient, name: str, password: str, next_path: str = "") -> Response:
    """Post the sign-in form as a browser would (the page first, for its login token)."""
    page = c.get("/login")
    assert page.status_code == 200
    found = re.search(r'name="login_token" value="([^"]+)"', page.text)
    assert found
    form = {"username": name, "password": password, "next": next_path,
            "login_token": found.group(1)}
    return c.post("/login", data=form, follow_redirects=False)


def page_csrf(c: TestClient) -> str:
    r = c.get("/t/page", follow_redirects=False)
    assert r.status_code == 200, r.text
    return r.text.split()[-1]


def session_cookie(r: Response) -> str:
    cookies = [h for h in r.headers.get_list("set-cookie") if h.startswith("gs_session=")]
    assert len(cookies) == 1, r.headers.get_list("set-cookie")
    return cookies[0]


# --------------------------------------------------------------------------- CLI and hashing


def test_cli_creates_lists_and_disables_users_never_showing_a_hash(
    database_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    made = runner.invoke(
        cli, ["users", "create", "cli_zhang", "--role", "operator", "--password-stdin"],
        input="长城 secret 1\n",
    )
    assert made.exit_code == 0, made.output
    assert "cli_zhang" in made.output
    listed = runner.invoke(cli, ["users", "list"])
    assert listed.exit_code == 0 and "cli_zhang" in listed.output and "operator" in listed.output
    assert "argon2" not in listed.output and "secret" not in listed.output
    with engine.connect() as conn:
        stored = conn.execute(
            select(users.c.password_hash).where(users.c.username == "cli_zhang")
        ).scalar_one()
    assert stored.startswith("$argon2id$") and "secret" not in stored
    assert HASHER.verify(stored, "长城 secret 1")  # the whole line but its newline

    gone = runner.invoke(cli, ["users", "disable", "cli_zhang"])
    assert gone.exit_code == 0, gone.output
    again = runner.invoke(cli, ["users", "disable", "cli_zhang"])
    assert again.exit_code == 2 and "disabled already" in again.output


@pytest.mark.parametrize(
    ("args", "stdin", "says"),
    [
        (["cli_li", "--role", "mayor"], "pw\n", "unknown role 'mayor'"),
        (["cli_dup", "--role", "planner"], "pw\n", "exists already"),
        (["cli_empty", "--role", "planner"], "\n", "password is empty"),
        (["cli_gw", "--role", "grid_worker"], "pw\n", "needs the area code"),
        (["cli_op", "--role", "operator", "--scope", "330411"], "pw\n",
         "narrows grid workers only"),
        (["two words", "--role", "planner"], "pw\n", "no spaces"),
    ],
)
def test_cli_refuses_bad_users_with_exit_code_2_and_a_reason(
    database_url: str,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    stdin: str,
    says: str,
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    if args[0] == "cli_dup":
        with engine.connect() as conn:
            taken = conn.execute(select(users.c.id).where(users.c.username == "cli_dup")).first()
        if taken is None:
            make_user(engine, "cli_dup", "planner", "first")
    result = runner.invoke(cli, ["users", "create", *args, "--password-stdin"], input=stdin)
    assert result.exit_code == 2, result.output
    assert says in " ".join(result.output.split())


def test_a_hash_made_with_old_parameters_is_replaced_at_the_next_sign_in(
    database_url: str, engine: Engine
) -> None:
    make_user(engine, "rehash_wu", "operator", "pw-rehash")
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash("pw-rehash")
    with engine.begin() as conn:
        conn.execute(
            users.update().where(users.c.username == "rehash_wu").values(password_hash=weak)
        )
    with service(database_url) as c:
        assert sign_in(c, "rehash_wu", "pw-rehash").status_code == 303
    with engine.connect() as conn:
        now = conn.execute(
            select(users.c.password_hash).where(users.c.username == "rehash_wu")
        ).scalar_one()
    assert now != weak and not HASHER.check_needs_rehash(now)
    assert HASHER.verify(now, "pw-rehash")


# --------------------------------------------------------------------------- sessions


def test_sign_in_sets_an_httponly_lax_cookie_and_the_page_sees_the_role(
    database_url: str, engine: Engine
) -> None:
    make_user(engine, "op_chen", "operator", "pw-chen")
    with service(database_url) as c:
        anonymous = c.get("/t/page?a=1", follow_redirects=False)
        assert anonymous.status_code == 303
        assert anonymous.headers["location"] == "/login?next=%2Ft%2Fpage%3Fa%3D1"
        r = sign_in(c, "op_chen", "pw-chen", next_path="/t/page?a=1")
        assert r.status_code == 303 and r.headers["location"] == "/t/page?a=1"
        cookie = session_cookie(r)
        assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
        assert "secure" not in cookie.lower()  # plain HTTP: a Secure cookie would be lost
        token = cookie.split(";")[0].split("=", 1)[1]
        page = c.get("/t/page")
        assert page.status_code == 200 and page.text.startswith("op_chen operator ")
    with engine.connect() as conn:
        stored = conn.execute(select(user_sessions.c.token_hash)).scalars().all()
    assert token not in stored and all(len(h) == 64 for h in stored)  # only its hash kept


def test_the_cookie_is_secure_when_the_request_came_over_https(
    database_url: str, engine: Engine
) -> None:
    make_user(engine, "op_https", "operator", "pw-https")
    with service(database_url, base_url="https://testserver") as c:
        r = sign_in(c, "op_https", "pw-https")
        assert r.status_code == 303
        assert "; secure" in session_cookie(r).lower()


def test_other_roles_get_a_chinese_403_page_and_admin_passes_every_page(
    database_url: str, engine: Engine
) -> None:
    make_user(engine, "pl_zhao", "planner", "pw-zhao")
    make_user(engine, "ad_qian", "admin", "pw-qian")
    with service(database_url) as c:
        sign_in(c, "pl_zhao", "pw-zhao")
        r = c.get("/t/page", follow_redirects=False)
        assert r.status_code == 403
        assert 'lang="zh-CN"' in r.text and "无权访问" in r.text and "网格规划员" in r.text
    with service(database_url) as c:
        sign_in(c, "ad_qian", "pw-qian")
        assert c.get("/t/page").text.startswith("ad_qian admin ")


def test_the_api_takes_the_cookie_and_refuses_unsafe_calls_without_the_csrf_token(
    database_url: str, engine: Engine, keys: dict[str, str]
) -> None:
    make_user(engine, "ad_sun", "admin", "pw-sun")
    with service(database_url) as c:
        assert c.get("/v1/audit").status_code == 401  # anonymous
        sign_in(c, "ad_sun", "pw-sun")
        listed = c.get("/v1/audit", params={"action": "user.sign_in"})
        assert listed.status_code == 200, listed.text
        entry = listed.json()["items"][0]
        assert entry["actor"] == "user:ad_sun" and entry["actor_key_id"] is None
        report = {
            "channel": "hotline_12345",
            "category": "sanitation",
            "description": "垃圾堆放",
            "reported_at": "2026-12-01T09:00:00+08:00",
            "location": {"lon": 120.7071, "lat": 30.7649, "crs": "gcj02"},
        }
        refused = c.post("/v1/reports", json=report)
        assert refused.status_code == 403 and "CSRF token missing" in refused.json()["message"]
        wrong = c.post("/v1/reports", json=report, headers={"X-CSRF-Token": "x" * 43})
        assert wrong.status_code == 403 and "CSRF token wrong" in wrong.json()["message"]
        token = {"X-CSRF-Token": page_csrf(c)}
        filed = c.post("/v1/reports", json=report, headers=token)
        assert filed.status_code in (200, 201), filed.text
        rid = filed.json()["id"]
        accepted = c.post(f"/v1/reports/{rid}/transitions", json={"to": "accepted"}, headers=token)
        assert accepted.status_code == 200, accepted.text
        steps = c.get(f"/v1/reports/{rid}/events").json()
        steps = steps["items"] if isinstance(steps, dict) else steps
        assert steps[-1]["action"] == "accept" and steps[-1]["actor"] == "ad_sun"  # who, by name
    # a key needs no CSRF token
    by_key = c.get("/v1/audit", headers=auth(keys["admin"]))
    assert by_key.status_code == 200


def test_a_signed_in_page_is_rated_as_its_role_not_as_the_public(
    database_url: str, engine: Engine
) -> None:
    make_user(engine, "op_rate", "operator", "pw-rate")
    rates = RateLimitSettings(enabled=True, anonymous="cheap=100/100,standard=0.01/3,costly=0.01/1")
    with service(database_url, rates=rates) as c:
        assert sign_in(c, "op_rate", "pw-rate").status_code == 303  # 2 of the public's 3
        assert [c.get("/t/page").status_code for _ in range(10)] == [200] * 10
        c.cookies.clear()  # the same address, anonymous again: one token left
        assert [c.get("/login").status_code for _ in range(2)] == [200, 429]


def test_each_session_has_its_own_buckets_so_a_wall_of_screens_on_one_account_is_not_starved(
    database_url: str, engine: Engine
) -> None:
    make_user(engine, "op_wall", "operator", "pw-wall")
    rates = RateLimitSettings(enabled=True, operator="cheap=100/100,standard=100/100,costly=0.01/2")
    costly = "/v1/stats/indicators?period=day&date=2025-06-01&by=area&level=town"
    with service(database_url, rates=rates) as c:
        screens = []
        for _ in range(2):  # two screens signed in as the same duty account
            c.cookies.clear()
            assert sign_in(c, "op_wall", "pw-wall").status_code == 303
            screens.append(c.cookies["gs_session"])
        c.cookies.clear()

        def ask(token: str) -> int:
            return c.get(costly, headers={"Cookie": f"gs_session={token}"}).status_code

        assert [ask(screens[0]) for _ in range(3)] == [200, 200, 429]  # its burst of 2
        assert [ask(screens[1]) for _ in range(2)] == [200, 200]  # the other screen's own


def test_a_signed_in_pages_tile_is_never_served_to_the_public_from_the_tile_cache(
    database_url: str, engine: Engine
) -> None:
    make_user(engine, "op_tiles", "operator", "pw-tiles")
    url = "/tiles/heat/10/855/418.mvt?k=0"  # k below the minimum: staff only
    with service(database_url) as c:
        sign_in(c, "op_tiles", "pw-tiles")
        assert [c.get(url).status_code in (200, 204) for _ in range(2)] == [True, True]
        c.cookies.clear()
        assert c.get(url).status_code == 401  # the route answers, not the cache


def test_sessions_expire_when_idle_and_after_their_absolute_life(
    database_url: str, engine: Engine
) -> None:
    make_user(engine, "op_idle", "operator", "pw-idle")
    with service(database_url, idle_s=1.0, touch_s=0) as c:
        sign_in(c, "op_idle", "pw-idle")
        for _ in range(3):  # each request starts the idle time again
            time.sleep(0.5)
            assert c.get("/t/page").status_code == 200
        time.sleep(1.3)
        assert c.get("/t/page", follow_redirects=False).status_code == 303
    with service(database_url, absolute_s=1.5, touch_s=0) as c:
        sign_in(c, "op_idle", "pw-idle")
        for _ in range(4):  # busy all along, and still signed out after 1.5 s
            time.sleep(0.5)
            c.get("/t/page", follow_redirects=False)
        assert c.get("/t/page", follow_redirects=False).status_code == 303


def test_a_disabled_user_loses_its_sessions_at_once_and_cannot_sign_in(
    database_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_id = make_user(engine, "op_gone", "operator", "pw-gone")
    monkeypatch.setenv("DATABASE_URL", database_url)
    with service(database_url) as c:
        sign_in(c, "op_gone", "pw-gone")
        assert c.get("/t/page").status_code == 200
        assert runner.invoke(cli, ["users", "disable", "op_gone"]).exit_code == 0
        assert c.get("/t/page", follow_redirects=False).status_code == 303
        again = sign_in(c, "op_gone", "pw-gone")
        assert again.status_code == 401 and "用户名或密码错误" in again.text
    with engine.connect() as conn:
        left = conn.execute(select(user_sessions.c.id).where(user_sessions.c.user_id == user_id))
        assert left.all() == []
        actions = conn.execute(
            select(audit_log.c.action).where(
                audit_log.c.target_type == "user", audit_log.c.target_id == str(user_id)
            )
        ).scalars().all()
    assert {"user.create", "user.sign_in", "user.disable"} <= set(actions)


def test_a_signed_in_reporter_reads_back_the_reports_it_filed_and_no_one_elses(
    database_url: str, engine: Engine
) -> None:
    make_user(engine, "rp_liu", "reporter", "pw-liu")
    make_user(engine, "rp_ma", "reporter", "pw-ma")
    report = {
        "channel": "wechat",
        "category": "sanitation",
        "description": "楼道堆物",
        "reported_at": "2026-12-02T10:00:00+08:00",
        "location": {"lon": 120.7071, "lat": 30.7649, "crs": "gcj02"},
        "reporter": {"name": "刘女士", "phone": "13800000001"},
    }
    with service(database_url) as c:
        sign_in(c, "rp_liu", "pw-liu")
        csrf = c.get("/t/any").text.split()[-1]
        filed = c.post("/v1/reports", json=report, headers={"X-CSRF-Token": csrf})
        assert filed.status_code in (200, 201), filed.text
        rid = filed.json()["id"]
        mine = c.get(f"/v1/reports/{rid}")
        assert mine.status_code == 200 and mine.json()["reporter"]["name"] == "刘女士"
        assert [r["id"] for r in c.get("/v1/reports").json()["items"]] == [rid]
    with service(database_url) as other:
        sign_in(other, "rp_ma", "pw-ma")
        assert other.get(f"/v1/reports/{rid}").status_code == 404
        assert other.get("/v1/reports").json()["items"] == []


def test_sign_out_needs_the_csrf_token_and_ends_the_session_server_side(
    database_url: str, engine: Engine
) -> None:
    make_user(engine, "op_out", "operator", "pw-out")
    with service(database_url) as c:
        r = sign_in(c, "op_out", "pw-out")
        cookie = session_cookie(r).split(";")[0]
        refused = c.post("/logout", follow_redirects=False)
        assert refused.status_code == 403 and "CSRF" in refused.json()["message"]
        out = c.post("/logout", headers={"X-CSRF-Token": page_csrf(c)}, follow_redirects=False)
        assert out.status_code == 303 and out.headers["location"] == "/login"
        assert 'gs_session=""' in out.headers["set-cookie"] or "Max-Age=0" in out.headers[
            "set-cookie"
        ]
    with service(database_url) as replay:  # the old cookie, sent again by hand
        name, value = cookie.split("=", 1)
        r = replay.get("/t/page", headers={"Cookie": f"{name}={value}"}, follow_redirects=False)
        assert r.status_code == 303


# --------------------------------------------------------------------------- the sign-in form


def test_the_form_without_its_login_token_is_refused(database_url: str, engine: Engine) -> None:
    make_user(engine, "op_token", "operator", "pw-token")
    with service(database_url) as c:
        form = {"username": "op_token", "password": "pw-token", "login_token": "forged"}
        r = c.post("/login", data=form, follow_redirects=False)
        assert r.status_code == 403 and "gs_session" not in r.headers.get("set-cookie", "")


def test_wrong_passwords_are_refused_alike_then_slowed_and_the_right_one_works_later(
    database_url: str, engine: Engine
) -> None:
    make_user(engine, "op_slow", "operator", "pw-right")
    with service(database_url, user_free_failures=3, delay_s=1.0) as c:
        unknown = sign_in(c, "nobody_here", "pw-wrong")
        assert unknown.status_code == 401
        answers = [sign_in(c, "op_slow", "pw-wrong") for _ in range(3)]
        assert [a.status_code for a in answers] == [401, 401, 401]
        said = [re.findall(r'id="login-error">([^<]+)<', a.text) for a in (unknown, *answers)]
        assert said == [["用户名或密码错误。"]] * 4  # an unknown name is refused alike
        slowed = sign_in(c, "op_slow", "pw-right")  # even the right password waits now
        assert slowed.status_code == 429 and 1 <= int(slowed.headers["Retry-After"]) <= 2
        assert "秒后再试" in slowed.text
        time.sleep(1.1)
        late = sign_in(c, "op_slow", "pw-wrong")  # one more failure: the wait doubles
        assert late.status_code == 401
        slower = sign_in(c, "op_slow", "pw-right")
        assert slower.status_code == 429 and int(slower.headers["Retry-After"]) == 2
        time.sleep(2.1)
        ok = sign_in(c, "op_slow", "pw-right")
        assert ok.status_code == 303
        session_cookie(ok)


def test_many_failures_from_one_address_slow_that_address_down_for_every_name(
    database_url: str, engine: Engine
) -> None:
    make_user(engine, "op_addr", "operator", "pw-addr")
    with service(database_url, address_free_failures=4, delay_s=30.0) as c:
        for i in range(4):
            assert sign_in(c, f"guess_{i}", "pw").status_code == 401
        r = sign_in(c, "op_addr", "pw-addr")
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 29
    with service(database_url) as other:  # another address is not slowed
        assert sign_in(other, "op_addr", "pw-addr").status_code == 303


@pytest.mark.parametrize(
    ("given", "followed"),
    [
        ("/maps/heat?area=330411", "/maps/heat?area=330411"),
        ("/console", "/console"),
        ("", "/console"),
        ("//evil.example/x", "/console"),
        ("https://evil.example/", "/console"),
        ("/\\evil.example", "/console"),
        ("/%0d%0aSet-Cookie:x", "/%0d%0aSet-Cookie:x"),
        ("/\r\nLocation: https://evil.example", "/console"),
        ("javascript:alert(1)", "/console"),
        ("/login?next=//evil.example", "/console"),
    ],
)
def test_next_is_followed_only_for_paths_on_this_site(given: str, followed: str) -> None:
    assert safe_next(given) == followed


def test_the_sign_in_page_is_chinese_with_16px_type_and_an_english_switch(
    client: TestClient,
) -> None:
    zh = client.get("/login?next=/console")
    assert zh.status_code == 200
    assert '<html lang="zh-CN">' in zh.text and "用户名" in zh.text and "密码" in zh.text
    assert "font-size: 18px" in zh.text  # the root size; every size is in rem >= 1
    sizes = [float(s) for s in re.findall(r"font-size: ([0-9.]+)rem", zh.text)]
    assert sizes and min(sizes) >= 1
    assert "http://" not in zh.text and "https://" not in zh.text
    assert 'href="/login?lang=en&amp;next=%2Fconsole"' in zh.text
    en = client.get("/login?lang=en")
    assert '<html lang="en">' in en.text and "Sign in" in en.text


def test_docs_are_served_from_the_vendored_swagger_ui(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    found = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    ours = "/static/docs/docs.js"  # starts Swagger UI; sends a signed-in page's CSRF token
    assert ours in found
    assert all(u.startswith("/static/vendor/swagger-ui-dist/") for u in found if u != ours)
    for url in found:
        assert client.get(url).status_code == 200
    assert client.get("/redoc").status_code == 404
    assert 'name="csrf-token"' not in page.text  # anonymous: no session, no token


def test_signed_in_the_docs_page_carries_the_sessions_csrf_token(
    database_url: str, engine: Engine
) -> None:
    make_user(engine, "ad_docs", "admin", "pw-docs")
    with service(database_url) as c:
        sign_in(c, "ad_docs", "pw-docs")
        token = c.get("/t/page").text.split()[-1]
        assert f'<meta name="csrf-token" content="{token}">' in c.get("/docs").text


def test_the_demo_creates_its_accounts_and_prints_the_console_and_credentials_first(
    new_database: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = str(new_database("geo_demo_accounts"))
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("GEO_DEMO_REPORTS", "0")
    monkeypatch.setenv("GEO_DEMO_PASSWORD", "demo-pass-1")
    first = runner.invoke(cli, ["demo", "--no-serve"])
    assert first.exit_code == 0, first.output
    after = first.output[first.output.index("command centre:"):].splitlines()
    assert after[0].endswith("/console")
    assert [line.split() for line in after[2:5]] == [
        ["operator", "demo-pass-1"], ["planner", "demo-pass-1"], ["admin", "demo-pass-1"]
    ]
    with service(url) as c:
        for name in ("operator", "planner", "admin"):
            assert sign_in(c, name, "demo-pass-1").status_code == 303
            c.cookies.clear()
    monkeypatch.delenv("GEO_DEMO_PASSWORD")
    second = runner.invoke(cli, ["demo", "--no-serve"])  # a random password each, this run
    assert second.exit_code == 0, second.output
    lines = second.output[second.output.index("command centre:"):].splitlines()
    fresh = dict(line.split() for line in lines[2:5])
    assert set(fresh) == {"operator", "planner", "admin"} and "demo-pass-1" not in fresh.values()
    with service(url) as c:
        assert sign_in(c, "planner", "demo-pass-1").status_code == 401
        assert sign_in(c, "planner", fresh["planner"]).status_code == 303
