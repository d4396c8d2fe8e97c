"""Operations endpoints: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

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
    """503 until the backend answers; also says whether the API runs without keys."""
    try:
        ready = await runtime.adapter.ping()
    except Exception:  # noqa: BLE001 - any failure means "not ready"
        ready = False
    body = ReadyOut(
        status="ready" if ready else "unavailable",
        adapter=runtime.adapter.name,
        auth="api_keys" if runtime.api_keys else "open (no API keys configured)",
    )
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


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
    topics = await runtime.adapter.list_topics()
    text = await runtime.metrics.render(runtime.adapter, topics)
    return Response(text, media_type=CONTENT_TYPE_LATEST)
