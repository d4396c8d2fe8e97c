"""The web console at ``/ui``: a small single-page app served by hookline itself.

Plain JavaScript modules and one stylesheet ship inside the package (``app/ui/static``):
no build step, no CDN, nothing loaded from another host. The page talks to the same JSON
API as every client, with the API key as a Bearer header, so it can do exactly what its
key may do. The server side is only this file: the page, its assets, and a strict
Content-Security-Policy (no inline script or style, nothing from elsewhere).
"""

from __future__ import annotations

import html
import re
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from starlette.routing import Match

from app.api.errors import ApiError

UI_PATH = "/ui"

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)
"""Only this server's own files run, style or connect; no inline code at all."""

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
"""The kinds of file the console is made of; any other name is a 404."""

ASSET_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*\.(?:js|css|svg|png)$")

OPTIONAL_ROUTES = {
    "message_lookup": ("GET", "/v1/messages/probe"),
    "resend": ("POST", "/v1/messages/probe/resend"),
    "attempt_log": ("GET", "/v1/subscriptions/probe/attempts"),
}
"""Routes not every hookline has: the page shows their parts only when they exist, instead
of probing them (a probe's 404 would land in the browser's console as an error)."""


def static_dir() -> Path:
    """The folder of the console's files, inside the installed package."""
    return Path(str(files("app.ui") / "static"))


def serves(app: FastAPI, method: str, path: str) -> bool:
    """Whether some route answers ``method path`` (asked of the router itself, so routers
    included in any way count).
    """
    scope = {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}
    return any(route.matches(scope)[0] == Match.FULL for route in app.router.routes)


def optional_features(app: FastAPI) -> list[str]:
    """Which of :data:`OPTIONAL_ROUTES` this app serves."""
    return [name for name, (method, path) in OPTIONAL_ROUTES.items() if serves(app, method, path)]


def render_index(template: str, base: str, features: list[str], metrics: str) -> str:
    """The page, told where it lives and what this server offers (all escaped)."""
    return (
        template.replace("{{base}}", html.escape(base, quote=True))
        .replace("{{features}}", html.escape(" ".join(features), quote=True))
        .replace("{{metrics}}", html.escape(metrics, quote=True))
    )


def install_console(app: FastAPI) -> None:
    """Serve the console at ``/ui`` (the page) and ``/ui/assets/...`` (its files)."""
    folder = static_dir()
    template = (folder / "index.html").read_text(encoding="utf-8")
    metrics = "admin" if app.state.runtime.settings.auth.protect_metrics else "open"

    async def page(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        body = render_index(template, f"{root}{UI_PATH}/", optional_features(app), metrics)
        return HTMLResponse(body, headers=SECURITY_HEADERS)

    async def to_page() -> RedirectResponse:
        # Relative, so it holds behind a proxy's prefix too. The page must live at ``/ui/``:
        # its links are relative to that base, and at ``/ui`` each would load the page anew.
        return RedirectResponse("ui/", status_code=308, headers=SECURITY_HEADERS)

    app.add_api_route(UI_PATH, to_page, methods=["GET"], include_in_schema=False)
    app.add_api_route(UI_PATH + "/", page, methods=["GET"], include_in_schema=False)

    @app.get(UI_PATH + "/assets/{name}", include_in_schema=False)
    async def asset(name: str) -> FileResponse:
        path = folder / name
        if not ASSET_NAME.match(name) or not path.is_file():
            raise ApiError(404, "not_found", f"no console asset {name!r}")
        return FileResponse(path, media_type=CONTENT_TYPES[path.suffix], headers=SECURITY_HEADERS)
