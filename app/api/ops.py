"""Operations endpoints: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from app.api.deps import Credentials, RuntimeDep, authorize
from app.api.schemas import ErrorOut, HealthOut, ReadyOut

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness")
async def healthz() -> HealthOut:
    """The process answers; always open."""
    return HealthOut(status="ok")


@router.get("/readyz", summary="Readiness", responses={503: {"model": ReadyOut}})
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    """503 until the backend answers; also says whether the API runs without keys.

    Answers within ``observability.readiness_timeout_ms`` even when the backend hangs: a
    probe that waits longer than its caller's own timeout tells nothing.
    """
    timeout_ms = runtime.settings.observability.readiness_timeout_ms
    reason: str | None = None
    try:
        async with asyncio.timeout(timeout_ms / 1000):
            ready = await runtime.adapter.ping()
        if not ready:
            reason = f"{runtime.adapter.name} backend unreachable"
    except TimeoutError:
        ready = False
        reason = f"{runtime.adapter.name} backend did not answer within {timeout_ms} ms"
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        ready = False
        reason = f"{runtime.adapter.name} backend check failed: {type(exc).__name__}"
    body = ReadyOut(
        status="ready" if ready else "unavailable",
        adapter=runtime.adapter.name,
        auth="api_keys" if runtime.api_keys else "open (no API keys configured)",
        reason=reason,
    )
    return JSONResponse(body.model_dump(exclude_none=True), status_code=200 if ready else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}},
        401: {"model": ErrorOut},
        403: {"model": ErrorOut},
    },
    # The key is needed only with auth.protect_metrics: the bearer scheme OR nothing.
    openapi_extra={"security": [{}]},
)
async def metrics(runtime: RuntimeDep, credentials: Credentials) -> Response:
    """Counters, latency histograms and per-subscription gauges (see the README)."""
    if runtime.settings.auth.protect_metrics:
        authorize(runtime, credentials, "admin")
    subscriptions = await runtime.subscriptions.find()
    text = await runtime.metrics.render(runtime.adapter, subscriptions)
    return Response(text, media_type=CONTENT_TYPE_LATEST)
