"""Test helpers for accounts: add a user straight through the domain function, and sign a
Playwright page in through the real ``/login`` form."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine

from geo_service.accounts import create_user


def make_user(
    engine: Engine, name: str, role: str, password: str, scope: str | None = None
) -> int:
    """Add a user (argon2-hashed password, audited as the local account); its id."""
    with engine.begin() as conn:
        return create_user(conn, name, role, password, scope)


def browser_sign_in(
    page: Any, base_url: str, name: str, password: str, next_path: str = ""
) -> None:
    """Sign a Playwright (sync) page in through ``/login``: fill the form, submit, and wait
    until the page the redirect leads to (``next``) has loaded."""
    url = f"{base_url}/login" + (f"?next={quote(next_path, safe='')}" if next_path else "")
    page.goto(url, wait_until="load")
    page.fill("#username", name)
    page.fill("#password", password)
    with page.expect_navigation(url=lambda u: "/login" not in u, wait_until="load"):
        page.click("button[type=submit]")
