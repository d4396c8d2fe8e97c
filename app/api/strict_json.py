r"""Strict JSON request bodies for every route that takes one.

FastAPI parses bodies with Python's ``json``, which takes ``NaN``, ``Infinity``, ``1e400``
and lone surrogates (``"\ud800"``). None of them can be delivered as they came: a
non-finite number would go out as ``null`` and a surrogate has no UTF-8 form, so the
delivery body could never be built. Routes of :class:`StrictJsonRoute` refuse such a body
with a 422 naming the value before anything is stored, and a body not declared as JSON
(or not declared at all) with a 415 (FastAPI would not parse it and would answer that the
body is not an object).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from app.api.errors import ApiError
from app.core.codec import UnrepresentableJsonError, decode_json

_JSON_MEDIA_TYPE = re.compile(r"^\s*application/([a-z0-9.+-]+\+)?json\s*(;.*)?$", re.IGNORECASE)
"""``application/json`` and its ``+json`` kinds, with any parameters (FastAPI's own rule)."""


class StrictJsonRequest(Request):
    """A request whose JSON body is decoded by :func:`app.core.codec.decode_json`."""

    async def json(self) -> Any:
        """The body as strict JSON (decoded once, then cached like Starlette's)."""
        if not hasattr(self, "_json"):
            self._json = decode_json(await self.body())
        return self._json


def unrepresentable(exc: UnrepresentableJsonError, *, prefix: tuple[str, ...] = ()) -> ApiError:
    """The 422 for a value JSON cannot carry, located like any validation error."""
    loc = ["body", *prefix, *exc.path]
    where = ".".join(loc[1:]) or "body"
    return ApiError(
        422,
        "validation_error",
        f"{where}: {exc.problem}",
        [{"loc": loc, "msg": exc.problem, "type": exc.kind}],
    )


class StrictJsonRoute(APIRoute):
    """Decodes the body strictly before FastAPI reads it; refuses unrepresentable values
    and bodies not declared as JSON.
    """

    requires_json_type = True
    """False for routes that read any body as JSON themselves (the engine's functions,
    called with ``curl -d``, which declares a form)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """FastAPI's handler, given a :class:`StrictJsonRequest`."""
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            strict = StrictJsonRequest(request.scope, request.receive)
            if await strict.body():
                declared = strict.headers.get("content-type")
                if self.requires_json_type and (
                    declared is None or not _JSON_MEDIA_TYPE.match(declared)
                ):
                    named = "no content-type" if declared is None else f"content-type {declared!r}"
                    raise ApiError(
                        415,
                        "unsupported_media_type",
                        f"{named}: the body must be sent as application/json",
                    )
                try:
                    await strict.json()
                except UnrepresentableJsonError as exc:
                    raise unrepresentable(exc) from exc
                except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
                    pass  # not JSON at all: FastAPI answers as it does for any bad body
            return await handler(strict)

        return strict_handler


class AnyTypeJsonRoute(StrictJsonRoute):
    """:class:`StrictJsonRoute` for a route that reads its body as JSON whatever its
    declared type.
    """

    requires_json_type = False
