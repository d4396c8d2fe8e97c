"""Publishing: single messages, batches, and the engine's ``enqueue`` shape."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Request

from app.api.deps import RuntimeDep, require_scope
from app.api.errors import ApiError
from app.api.schemas import (
    BatchIn,
    BatchOut,
    BatchResultOut,
    EnqueueIn,
    ErrorOut,
    MessageIn,
    PublishOut,
)
from app.api.strict_json import StrictJsonRoute
from app.core.deadlines import DeadlineError, resolve_deadline
from app.core.models import now_ms
from app.core.publisher import PublishRequest
from app.core.topics import TOPIC_PATTERN
from app.core.tracing import is_valid_traceparent
from app.runtime import Runtime

router = APIRouter(
    route_class=StrictJsonRoute,
    tags=["messages"],
    dependencies=[Depends(require_scope("publish"))],
    responses={
        401: {"model": ErrorOut},
        403: {"model": ErrorOut},
        413: {"model": ErrorOut},
        422: {"model": ErrorOut},
        503: {"model": ErrorOut},
    },
)

TopicPath = Annotated[str, Path(pattern=TOPIC_PATTERN, description="Topic name.")]
TRACE_HEADERS = ("traceparent", "tracestate", "baggage")


def trace_carrier(
    request: Request, traceparent: str | None = None, baggage: str | None = None
) -> dict[str, str]:
    """The caller's W3C trace context: request headers, else the body's fields.

    The engine's messages carry ``traceparent``/``baggage`` in the body; a header wins over
    the body field (an invalid ``traceparent`` header counts as none), and the header's
    ``tracestate`` goes only with the header's ``traceparent``.
    """
    carrier = {h: request.headers[h] for h in TRACE_HEADERS if h in request.headers}
    return trace_carrier_from(carrier, traceparent, baggage)


def trace_carrier_from(
    carrier: dict[str, str], traceparent: str | None = None, baggage: str | None = None
) -> dict[str, str]:
    """:func:`trace_carrier` from the request's trace headers already picked out."""
    header_parent = carrier.get("traceparent", "").strip().lower()
    if traceparent and not is_valid_traceparent(header_parent):
        carrier["traceparent"] = traceparent
        carrier.pop("tracestate", None)
    if baggage and "baggage" not in carrier:
        carrier["baggage"] = baggage
    return carrier


def _check_delay(runtime: Runtime, delay_ms: int) -> None:
    limit = runtime.settings.limits.max_delay_ms
    if delay_ms > limit:
        raise ApiError(422, "validation_error", f"delay_ms: must be at most {limit}")


def deadline_of(
    expires_at: int | str | None, ttl_ms: int | None, delay_ms: int, *loc: str
) -> int | None:
    """The message's absolute deadline (epoch ms), or a 422 naming the field at fault."""
    if expires_at is None and ttl_ms is None:
        return None
    try:
        return resolve_deadline(expires_at, ttl_ms, delay_ms, now_ms())
    except DeadlineError as exc:
        path = [*loc, exc.field]
        raise ApiError(
            422,
            "validation_error",
            f"{'.'.join(path)}: {exc.message}",
            [{"loc": ["body", *path], "msg": exc.message, "type": "invalid_deadline"}],
        ) from exc


async def publish_one(
    runtime: Runtime,
    topic: str,
    message: MessageIn,
    key: str | None,
    carrier: dict[str, str],
) -> PublishOut:
    """Publish one message (the publisher counts it)."""
    _check_delay(runtime, message.delay_ms)
    expires_at = deadline_of(message.expires_at, message.ttl_ms, message.delay_ms)
    request = PublishRequest(
        message.data,
        message.delay_ms,
        message.headers or {},
        key,
        expires_at=expires_at,
        ordering_key=message.ordering_key,
    )
    [result] = await runtime.publisher.publish(topic, [request], carrier)
    return PublishOut(id=result.id, topic=topic, duplicate=result.duplicate)


@router.post("/v1/topics/{topic}/messages", status_code=202, summary="Publish a message")
async def publish_message(
    topic: TopicPath,
    message: MessageIn,
    request: Request,
    runtime: RuntimeDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=255,
            description="A repeat within the dedup window returns the first id "
            "and publishes nothing.",
        ),
    ] = None,
) -> PublishOut:
    """Accept one message; 202 only once the backend holds it."""
    return await publish_one(runtime, topic, message, idempotency_key, trace_carrier(request))


@router.post(
    "/v1/topics/{topic}/messages/batch", status_code=202, summary="Publish a batch of messages"
)
async def publish_batch(
    topic: TopicPath, batch: BatchIn, request: Request, runtime: RuntimeDep
) -> BatchOut:
    """Accept up to ``limits.max_batch`` messages, all or nothing."""
    limit = runtime.settings.limits.max_batch
    if len(batch.messages) > limit:
        raise ApiError(422, "validation_error", f"messages: at most {limit} messages per batch")
    requests = []
    for index, m in enumerate(batch.messages):
        _check_delay(runtime, m.delay_ms)
        expires_at = deadline_of(m.expires_at, m.ttl_ms, m.delay_ms, "messages", str(index))
        requests.append(
            PublishRequest(
                m.data,
                m.delay_ms,
                m.headers or {},
                m.idempotency_key,
                expires_at=expires_at,
                ordering_key=m.ordering_key,
            )
        )
    results = await runtime.publisher.publish(topic, requests, trace_carrier(request))
    return BatchOut(results=[BatchResultOut(id=r.id, duplicate=r.duplicate) for r in results])


@router.post(
    "/v1/enqueue",
    status_code=202,
    summary="Publish (the engine's queue.enqueue shape)",
    description="`{topic, data, traceparent?, baggage?, delay_ms?, expires_at?, ttl_ms?, "
    "ordering_key?}` as the engine's messages carry them (plus hookline's delay, deadline "
    "and ordering key). "
    "`traceparent`/`baggage` request headers win over the body fields.",
)
async def enqueue(
    body: EnqueueIn,
    request: Request,
    runtime: RuntimeDep,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255)
    ] = None,
) -> PublishOut:
    """``{topic, data}`` as the engine's ``queue.enqueue`` takes it, trace context included."""
    return await publish_one(
        runtime,
        body.topic,
        MessageIn(
            data=body.data,
            delay_ms=body.delay_ms,
            expires_at=body.expires_at,
            ttl_ms=body.ttl_ms,
            ordering_key=body.ordering_key,
        ),
        idempotency_key,
        trace_carrier(request, body.traceparent, body.baggage),
    )
