"""``GET /v1/whoami``: what the API key sent may do, so a client (the console, a script)
can show only the actions it is allowed instead of learning them from 403s.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from app.api.deps import Credentials, RuntimeDep, authorize
from app.api.errors import ApiError
from app.api.schemas import ErrorOut

router = APIRouter(tags=["auth"], responses={401: {"model": ErrorOut}})

ScopeName = Literal["admin", "dlq", "publish", "subscriptions"]
SCOPES: tuple[ScopeName, ...] = ("admin", "dlq", "publish", "subscriptions")


class WhoamiOut(BaseModel):
    """The caller's standing: open mode, or the scopes its key holds."""

    auth: Literal["api_keys", "open"] = Field(
        description="`open`: no API keys are configured and anyone may do anything."
    )
    scopes: list[ScopeName] = Field(
        description="What the key may do (`admin` implies every other scope); `[admin]` when open."
    )


@router.get("/v1/whoami", summary="The scopes of the API key sent")
async def whoami(runtime: RuntimeDep, credentials: Credentials) -> WhoamiOut:
    """401 for a missing or unknown key (any valid key may ask, whatever its scopes)."""
    if not runtime.api_keys:
        return WhoamiOut(auth="open", scopes=["admin"])
    granted: list[ScopeName] = []
    for scope in SCOPES:
        try:
            authorize(runtime, credentials, scope)  # 401 propagates: no such key
        except ApiError as exc:
            if exc.status != 403:
                raise
            continue
        granted.append(scope)
        if scope == "admin":
            break  # admin holds every scope; report it alone, as configured
    return WhoamiOut(auth="api_keys", scopes=granted)
