"""The engine's functions over HTTP, so its ``client.call`` examples port unchanged.

``queue.enqueue({topic, data, traceparent?, baggage?})`` -> ``null``;
``queue.dlq_count({topic})`` -> a count; ``queue.redrive_dlq({topic})`` -> the number
redriven.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Body, Header, Path, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.api.deps import Credentials, RuntimeDep, authorize
from app.api.errors import ApiError, validation_error
from app.api.messages import deadline_of, trace_carrier
from app.api.schemas import (
    EXPIRES_AT_NOTE,
    ORDERING_KEY_NOTE,
    TTL_NOTE,
    Baggage,
    ErrorOut,
    ExpiresAt,
    OrderingKey,
    Traceparent,
    TtlMs,
)
from app.api.strict_json import AnyTypeJsonRoute
from app.core.codec import decode_json
from app.core.publisher import PublishRequest
from app.core.topics import TOPIC_PATTERN

router = APIRouter(
    route_class=AnyTypeJsonRoute,
    tags=["functions"],
    responses={
        401: {"model": ErrorOut},
        403: {"model": ErrorOut},
        404: {"model": ErrorOut},
        422: {"model": ErrorOut},
        503: {"model": ErrorOut},
    },
)

ArgsT = TypeVar("ArgsT", bound=BaseModel)
FUNCTIONS = ("queue.enqueue", "queue.dlq_count", "queue.redrive_dlq")


class TopicArgs(BaseModel):
    """``{topic}``."""

    model_config = ConfigDict(extra="forbid")
    topic: str = Field(pattern=TOPIC_PATTERN)


class EnqueueArgs(TopicArgs):
    """``{topic, data, traceparent?, baggage?, expires_at?, ttl_ms?, ordering_key?}``: the
    engine's message plus hookline's deadline and ordering key.
    """

    data: Any = None
    traceparent: Traceparent | None = None
    baggage: Baggage | None = None
    expires_at: ExpiresAt | None = Field(None, description=EXPIRES_AT_NOTE)
    ttl_ms: TtlMs | None = Field(None, description=TTL_NOTE)
    ordering_key: OrderingKey | None = Field(None, description=ORDERING_KEY_NOTE)


def _json_or_raw(raw: str | bytes) -> Any:
    """A JSON body sent without ``Content-Type: application/json`` (``curl -d``) still
    means its JSON; anything unparseable is left for validation to refuse.
    """
    try:
        return decode_json(raw)
    except (ValueError, RecursionError):
        return raw


def _parse(model: type[ArgsT], payload: Any) -> ArgsT:
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise validation_error(exc.errors()) from exc


@router.post(
    "/v1/functions/{function_id}",
    summary="Call an engine function (queue.enqueue, queue.dlq_count, queue.redrive_dlq)",
    description="`queue.enqueue` takes "
    "`{topic, data, traceparent?, baggage?, expires_at?, ttl_ms?, ordering_key?}`; "
    "`traceparent`/`baggage` request headers win over the body fields, and an "
    "`Idempotency-Key` header works as on `POST /v1/enqueue` (a repeat publishes nothing; "
    "the answer is `null` either way, as the engine's).",
)
async def call_function(
    function_id: Annotated[str, Path(description=", ".join(FUNCTIONS))],
    request: Request,
    runtime: RuntimeDep,
    credentials: Credentials,
    payload: Annotated[Any, Body(description="The function's argument object.")] = None,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=255,
            description="queue.enqueue only: a repeat within the dedup window publishes nothing.",
        ),
    ] = None,
) -> Any:
    """Answer exactly what the engine's ``client.call`` returns."""
    if isinstance(payload, str | bytes):
        payload = _json_or_raw(payload)
    if function_id == "queue.enqueue":
        authorize(runtime, credentials, "publish")
        args = _parse(EnqueueArgs, payload)
        expires_at = deadline_of(args.expires_at, args.ttl_ms, 0)
        await runtime.publisher.publish(
            args.topic,
            [
                PublishRequest(
                    args.data,
                    idempotency_key=idempotency_key,
                    expires_at=expires_at,
                    ordering_key=args.ordering_key,
                )
            ],
            trace_carrier(request, args.traceparent, args.baggage),
        )
        return None
    if function_id == "queue.dlq_count":
        authorize(runtime, credentials, "dlq")
        return await runtime.dlq.count(_parse(TopicArgs, payload).topic)
    if function_id == "queue.redrive_dlq":
        authorize(runtime, credentials, "dlq")
        return await runtime.dlq.redrive(_parse(TopicArgs, payload).topic)
    raise ApiError(
        404, "unknown_function", f"no function {function_id!r}", {"known": list(FUNCTIONS)}
    )
