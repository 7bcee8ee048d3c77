"""Headless Chromium for the page tests: Debian's browser, a watched page, screenshots.

Every page test drives ``/usr/bin/chromium`` through Playwright (no browser download), cuts off
any host other than the loopback, and records console errors, page errors and failed requests,
so a test can say "the page worked offline with no error" in one line (:func:`no_problems`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    # software WebGL for MapLibre once the GPU is off (Chromium ≥ 130 asks for the opt-in)
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
]
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


@dataclass
class Watch:
    """What went wrong in the browser: console errors, page errors, failed or remote requests."""

    problems: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright; the test skips only when it is not installed."""
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (make setup installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@contextmanager
def watched_page(
    browser: Any, width: int = 1920, height: int = 1080, *, http_errors: bool = True
) -> Iterator[tuple[Any, Watch]]:
    """A fresh page whose console, errors and network are watched; remote hosts are aborted.

    ``http_errors`` also records every response of status 400 or more as a problem (off for
    pages that answer 401/429 on purpose, such as a refused sign-in)."""
    context = browser.new_context(viewport={"width": width, "height": height})
    watch = Watch()

    def guard(route: Any) -> None:
        url = urlparse(route.request.url)
        if url.scheme in ("http", "https", "ws", "wss") and url.hostname not in LOOPBACK:
            watch.problems.append(f"remote request: {route.request.url}")
            route.abort()
        else:
            route.continue_()

    context.route("**/*", guard)
    pg = context.new_page()
    pg.on("console", lambda m: m.type == "error" and watch.problems.append(f"console: {m.text}"))
    pg.on("pageerror", lambda e: watch.problems.append(f"page error: {e}"))
    pg.on("requestfailed", lambda r: watch.problems.append(f"failed: {r.url} {r.failure}"))
    pg.on("request", lambda r: watch.requests.append(r.url))
    if http_errors:
        pg.on(
            "response",
            lambda r: r.status >= 400 and watch.problems.append(f"HTTP {r.status}: {r.url}"),
        )
    try:
        yield pg, watch
    finally:
        context.close()


def no_problems(watch: Watch) -> None:
    """The page made requests, all to the loopback, and recorded no problem."""
    assert watch.problems == []
    assert watch.requests, "the page made no request at all"
    hosts = {urlparse(u).hostname for u in watch.requests if urlparse(u).scheme.startswith("http")}
    assert hosts <= LOOPBACK


def shot(pg: Any, name: str) -> Path:
    """Save the page as ``tests/artifacts/NAME.png`` (a test artefact to look at)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    pg.screenshot(path=str(path))
    return path
