"""One error shape for every failure: ``{"error": {"code", "message", "details"?}}``.

Also the request limits enforced before any router runs: the body (413) and the header
count and size (431). The server protocol (:mod:`app.api.http_server`) bounds the head
before it is buffered; the middleware here gives the same answer under any ASGI server.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import HooklineError

logger = logging.getLogger("hookline.api")

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
    431: "headers_too_large",
    503: "unavailable",
}


class ApiError(HooklineError):
    """An error the HTTP layer answers on purpose (auth, request limits, unknown routes).

    Domain rules raise their own :class:`~app.core.errors.HooklineError` instead.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """``code`` is stable and machine-readable; ``message`` is for people; ``headers``
        go on the response (``WWW-Authenticate`` on a 401, for one).
        """
        super().__init__(message, details=details, headers=headers)
        self.status = status
        self.code = code


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    """Build the JSON error response."""
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def validation_error(errors: Any) -> ApiError:
    """The 422 for pydantic/FastAPI validation errors, naming the first bad field."""
    details = clean_validation_errors(errors)
    first = details[0] if details else {"loc": [], "msg": "invalid request"}
    where = ".".join(p for p in first["loc"] if p != "body") or "body"
    return ApiError(422, "validation_error", f"{where}: {first['msg']}", details)


def clean_validation_errors(errors: Any) -> list[dict[str, Any]]:
    """JSON-safe ``{loc, msg, type}`` items (pydantic's carry inputs and contexts)."""
    cleaned = []
    for error in errors:
        item = {
            "loc": [str(part) for part in error.get("loc", ())],
            "msg": str(error.get("msg", "")),
            "type": str(error.get("type", "")),
        }
        cleaned.append(item)
    return cleaned


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Starlette's and FastAPI's own errors (404, 405, body parsing) in the error shape."""
    if exc.status_code == 400:
        # FastAPI's only 400: a body that is not UTF-8 JSON. The contract says 422.
        return error_response(
            422,
            "validation_error",
            "body: not valid JSON",
            [{"loc": ["body"], "msg": str(exc.detail), "type": "json_invalid"}],
        )
    code = _STATUS_CODES.get(exc.status_code, "error")
    headers = dict(exc.headers) if exc.headers else {}
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(allowed_methods(request))
    return error_response(exc.status_code, code, str(exc.detail), headers=headers or None)


def install_error_handlers(app: FastAPI) -> None:
    """Map every exception the API can meet onto the error shape."""

    @app.exception_handler(HooklineError)
    async def _hookline_error(_: Request, exc: HooklineError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        error = validation_error(exc.errors())
        return error_response(error.status, error.code, error.message, error.details)

    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.error("unhandled error", exc_info=exc)
        return error_response(500, "internal_error", "internal error")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves on this path.

    Starlette's own 405 names only the methods of the first route matching the path,
    but GET and POST on one path are two routes here. Each method is tried against the
    router, so included (nested) routers answer for themselves.
    """
    allowed = []
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def json_error_bytes(code: str, message: str) -> bytes:
    """The error shape, serialised, for answers sent below the router."""
    return json.dumps({"error": {"code": code, "message": message}}).encode()


async def send_json_error(send: Send, status: int, code: str, message: str) -> None:
    """Answer with the error shape straight on the ASGI channel and close the connection."""
    body = json_error_bytes(code, message)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class HeaderLimitMiddleware:
    """Answers 431 when a request has more than ``max_headers`` headers or their names
    and values add up to more than ``max_header_bytes``.

    Nothing hookline offers needs many or large headers; a request that has them is
    either broken or an attempt to make every layer below copy them around.
    """

    def __init__(self, app: ASGIApp, max_headers: int, max_header_bytes: int) -> None:
        """Wrap ``app``."""
        self._app = app
        self._max_headers = max_headers
        self._max_bytes = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] == "http":
            headers = scope.get("headers", ())
            if len(headers) > self._max_headers:
                await send_json_error(
                    send,
                    431,
                    "headers_too_large",
                    f"a request may carry at most {self._max_headers} headers",
                )
                return
            size = sum(len(name) + len(value) for name, value in headers)
            if size > self._max_bytes:
                await send_json_error(
                    send,
                    431,
                    "headers_too_large",
                    f"request headers are larger than {self._max_bytes} bytes",
                )
                return
        await self._app(scope, receive, send)


_IDENTITY = (b"", b"identity")


def _length_and_encoding(scope: Scope) -> tuple[int | None, str | None]:
    """The declared ``Content-Length`` (None: absent or not a number) and a
    ``Content-Encoding`` other than identity (None: the body is as sent).
    """
    declared: int | None = None
    encoding: str | None = None
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                declared = None
        elif name == b"content-encoding" and value.strip().lower() not in _IDENTITY:
            encoding = value.decode("latin-1")
    return declared, encoding


class BodyLimitMiddleware:
    """Answers 413 when a request body is larger than ``max_body_bytes`` (and 415 when it
    says it is compressed: bodies are read as sent).

    A declared ``Content-Length`` over the limit is refused before reading; a chunked
    body is counted as it arrives and refused as soon as it passes the limit.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        """Wrap ``app``."""
        self._app = app
        self._limit = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        declared, encoding = _length_and_encoding(scope)
        if encoding is not None:
            # A compressed body would be read as if it were not: refuse it plainly.
            await send_json_error(
                send,
                415,
                "unsupported_content_encoding",
                f"content-encoding {encoding!r} is not supported: send the body uncompressed",
            )
            return
        if declared is not None and declared > self._limit:
            await self._too_large(send)
            return
        if declared is not None:
            await self._app(scope, receive, send)
            return
        # No Content-Length: buffer (up to the limit) and replay.
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._limit:
                await self._too_large(send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self._app(scope, replay, send)

    async def _too_large(self, send: Send) -> None:
        await send_json_error(
            send, 413, "payload_too_large", f"request body is larger than {self._limit} bytes"
        )
