"""``/docs`` works without internet: the page names no other host and every asset it loads
is served by hookline itself, in-process and on a real ``hookline serve``.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx

from tests.harness import running_hookline
from tests.process import ServeProcess, write_config

EXPECTED_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".png": "image/png",
    ".json": "application/json",
}


async def _check_docs(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "SwaggerUIBundle" in html
    # No absolute URL at all: not a CDN, not Swagger's validator badge, nothing.
    assert re.findall(r"(?i)(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", html) == []
    referenced = re.findall(r"""(?:src|href)="([^"]+)\"""", html)
    referenced += re.findall(r"""url: '([^']+)'""", html)
    assert len(referenced) == 4, referenced  # stylesheet, icon, script, spec
    for url in referenced:
        assert url.startswith("/"), url
        asset = await client.get(url)
        assert asset.status_code == 200, url
        suffix = Path(url).suffix
        assert asset.headers["content-type"].startswith(EXPECTED_TYPES[suffix]), url
        assert len(asset.content) > 100, url
    bundle = await client.get("/docs-assets/swagger-ui-bundle.js")
    assert b"SwaggerUIBundle" in bundle.content
    # Only the page's own files are served from the package folder.
    assert (await client.get("/docs-assets/redoc.standalone.js")).status_code == 404
    assert (await client.get("/docs-assets/..%2F__init__.py")).status_code == 404


async def test_docs_are_served_from_the_package() -> None:
    async with running_hookline("builtin") as hookline:
        await _check_docs(hookline.client)


async def test_protect_docs_hides_the_page_and_its_assets() -> None:
    async with running_hookline("builtin", auth={"protect_docs": True}) as hookline:
        for path in ("/docs", "/docs-assets/swagger-ui-bundle.js", "/openapi.json"):
            assert (await hookline.client.get(path)).status_code == 404, path


async def test_docs_on_a_real_server(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yaml", "modules::queue::BuiltinQueueAdapter", {})
    server = ServeProcess(config, tmp_path / "serve.log")
    try:
        await asyncio.to_thread(server.wait_ready)
        async with httpx.AsyncClient(base_url=server.url) as client:
            await _check_docs(client)
    finally:
        server.close()
