"""The console's browser tests: Debian's Chromium driven by Playwright, against real
``hookline serve`` processes and a real receiver.

Without ``/usr/bin/chromium`` the browser tests skip with the reason, unless
``HOOKLINE_REQUIRE_BACKENDS=1`` (CI), where they fail: CI installs Chromium.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.backends import backends_required
from tests.process import ServeProcess, write_config

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"

ADMIN_KEY = "admin-key-0123456789"
PUBLISH_KEY = "publish-key-0123456789"
DLQ_KEY = "dlq-key-0123456789"


def require_chromium() -> None:
    """Skip (or fail, in CI) when Debian's Chromium is not installed."""
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} is missing (apt-get install chromium)"
    if backends_required():
        pytest.fail(f"{message} and HOOKLINE_REQUIRE_BACKENDS=1")
    pytest.skip(f"{message}; the console's browser tests need it")


@dataclass
class Server:
    """A running ``hookline serve`` and an API client holding the admin key (if any)."""

    process: ServeProcess
    key: str | None

    @property
    def url(self) -> str:
        return self.process.url

    def client(self) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=10)

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        async with self.client() as client:
            response = await client.request(method, path, **kwargs)
        assert response.status_code < 300, response.text
        return response.json() if response.content else None


def _serve(tmp: Path, **extra: Any) -> Iterator[ServeProcess]:
    config = write_config(tmp / "config.yaml", "modules::queue::BuiltinQueueAdapter", {}, **extra)
    process = ServeProcess(config, tmp / "serve.log")
    try:
        process.wait_ready()
        yield process
    finally:
        process.close()


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """hookline with three API keys: admin, publish only, dlq only."""
    auth = {
        "api_keys": [
            {"key": ADMIN_KEY, "scopes": ["admin"]},
            {"key": PUBLISH_KEY, "scopes": ["publish"]},
            {"key": DLQ_KEY, "scopes": ["dlq"]},
        ]
    }
    for process in _serve(tmp_path_factory.mktemp("keyed"), auth=auth):
        yield Server(process, ADMIN_KEY)


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """hookline with no API keys at all (open mode)."""
    for process in _serve(tmp_path_factory.mktemp("open")):
        yield Server(process, None)


@dataclass
class Watch:
    """What the page logged and asked for: console errors, page errors, request hosts."""

    errors: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def allow(self, pattern: str) -> None:
        """An error this test provokes on purpose (the browser logs a refused request)."""
        self.allowed.append(re.compile(pattern))

    def assert_clean(self) -> None:
        unexpected = [e for e in self.errors if not any(p.search(e) for p in self.allowed)]
        assert unexpected == [], f"console errors: {unexpected}"
        assert self.foreign == [], f"requests outside 127.0.0.1: {self.foreign}"


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """A headless Chromium (Debian's), closed after the test."""
    require_chromium()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


@dataclass
class Console:
    """A browser page on the console, with its watch and a screenshot helper."""

    page: Any
    watch: Watch
    server: Server

    async def open(self, hash_: str = "") -> None:
        await self.page.goto(f"{self.server.url}/ui{hash_}")

    async def go(self, hash_: str) -> None:
        """Follow an in-app link without a reload (as a click would)."""
        await self.page.evaluate("(h) => { location.hash = h; }", hash_)

    async def sign_in(self, key: str) -> None:
        await self.page.get_by_label("API key").fill(key)
        await self.page.get_by_role("button", name="Sign in").click()

    async def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        return path


async def new_console(browser: Any, server: Server, **context: Any) -> Console:
    """A fresh context (its own sessionStorage) and page, watched from the first request."""
    ctx = await browser.new_context(**context)
    page = await ctx.new_page()
    page.set_default_timeout(15_000)
    watch = Watch()

    def on_console(message: Any) -> None:
        if message.type == "error":
            watch.errors.append(message.text)

    def on_request(request: Any) -> None:
        watch.requests.append(request.url)
        if urlsplit(request.url).hostname != "127.0.0.1":
            watch.foreign.append(request.url)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: watch.errors.append(f"page error: {exc}"))
    page.on("request", on_request)
    return Console(page, watch, server)
