"""``/docs`` served entirely from this machine: Swagger UI's script, stylesheet and icon
come from the ``fastapi-offline`` package, not a CDN, so the page works without internet
(an air-gapped host, a locked-down network).

The assets are Swagger UI's own files (Apache-2.0), as that package ships them.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from app.api.errors import ApiError

DOCS_ASSETS_URL = "/docs-assets"
"""Where the Swagger UI files are served."""

ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon.png": "image/png",
}
"""The files the page loads, with their content types; nothing else there is served."""


def assets_dir() -> Path:
    """The folder holding the Swagger UI files shipped by ``fastapi-offline``."""
    return Path(str(files("fastapi_offline") / "static"))


def install_docs(app: FastAPI, openapi_url: str) -> None:
    """Serve ``/docs`` (Swagger UI) with its assets from the package."""
    folder = assets_dir()

    @app.get(DOCS_ASSETS_URL + "/{name}", include_in_schema=False)
    async def docs_asset(name: str) -> FileResponse:
        media_type = ASSETS.get(name)
        if media_type is None:
            raise ApiError(404, "not_found", f"no docs asset {name!r}")
        return FileResponse(folder / name, media_type=media_type)

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{DOCS_ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS_URL}/favicon.png",
            # Swagger UI would otherwise fetch a validity badge from validator.swagger.io.
            swagger_ui_parameters={"validatorUrl": None},
        )
