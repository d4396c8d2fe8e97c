"""Dependencies shared by the routers: the runtime and the API-key check."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.api.errors import ApiError
from app.runtime import Runtime

CHALLENGE = 'Bearer realm="hookline"'
"""The RFC 6750 challenge every 401 carries, so clients know which credentials to send."""

bearer = HTTPBearer(auto_error=False, description="An API key from `auth.api_keys`.")


async def get_runtime(request: Request) -> Runtime:
    """The runtime the app factory stored on the app.

    ``async`` on purpose: FastAPI runs a plain ``def`` dependency in a worker thread, which
    cost more than the whole publish on the hot path.
    """
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def authorize(
    runtime: Runtime, credentials: HTTPAuthorizationCredentials | None, scope: str
) -> None:
    """Raise 401/403 unless ``credentials`` hold ``scope`` (or admin); open with no keys."""
    keys = runtime.api_keys
    if not keys:
        return
    if credentials is None:
        raise ApiError(
            401,
            "unauthorized",
            "missing API key (Authorization: Bearer <key>)",
            headers={"WWW-Authenticate": CHALLENGE},
        )
    offered = credentials.credentials.encode()
    granted: list[str] | None = None
    for key in keys:
        # Compare against every key so timing does not reveal which one matched.
        if hmac.compare_digest(offered, key.key.encode()):
            granted = list(key.scopes)
    if granted is None:
        raise ApiError(
            401,
            "unauthorized",
            "invalid API key",
            headers={"WWW-Authenticate": f'{CHALLENGE}, error="invalid_token"'},
        )
    if scope not in granted and "admin" not in granted:
        raise ApiError(
            403,
            "forbidden",
            f"this API key lacks the {scope!r} scope",
            headers={
                "WWW-Authenticate": f'{CHALLENGE}, error="insufficient_scope", scope="{scope}"'
            },
        )


def require_scope(scope: str) -> Callable[..., Awaitable[None]]:
    """A dependency that lets a request through only with a key holding ``scope``."""

    async def check(runtime: RuntimeDep, credentials: Credentials) -> None:
        authorize(runtime, credentials, scope)

    return check
