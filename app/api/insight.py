"""Delivery insight over HTTP: "where did my message go?".

``GET /v1/messages/{id}`` (the message, its state and attempts per subscription),
``POST /v1/messages/{id}/resend``, ``GET /v1/subscriptions/{id}/attempts`` (newest first,
cursor-paged) and the health figures shown on subscriptions. Every route calls
:class:`app.core.insight_service.InsightService` only.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from app.api.deps import RuntimeDep, require_scope
from app.api.errors import ApiError
from app.api.schemas import (
    ID_PATTERN,
    EndpointHealthOut,
    ErrorOut,
    LastAttemptOut,
    Strict,
    SubscriptionOut,
)
from app.api.strict_json import StrictJsonRoute
from app.core.insight import AttemptRecord, EndpointHealth, LastAttempt
from app.core.insight_service import (
    InsightDisabledError,
    MessageNotFoundError,
    NotMatchedError,
)
from app.core.models import Subscription
from app.runtime import Runtime

router = APIRouter(
    route_class=StrictJsonRoute,
    tags=["insight"],
    responses={
        401: {"model": ErrorOut},
        403: {"model": ErrorOut},
        404: {"model": ErrorOut},
        422: {"model": ErrorOut},
        503: {"model": ErrorOut},
    },
)

MessageId = Annotated[str, Path(pattern=ID_PATTERN)]
SubscriptionId = Annotated[str, Path(pattern=ID_PATTERN)]
StateName = Literal[
    "pending", "scheduled", "in_flight", "delivered", "filtered", "dead_lettered", "parked"
]


class AttemptOut(BaseModel):
    """One HTTP attempt (or a refusal before any: condition error, blocked destination)."""

    message_id: str
    subscription_id: str
    attempt: int = Field(description="1 for the first try; a resend starts again at 1.")
    started_at: int
    duration_ms: float
    status: int | None = Field(description="HTTP status; null when no response came.")
    reason: str
    outcome: Literal["succeeded", "failed"]
    next_step: Literal["delivered", "scheduled", "dead_lettered", "parked"]
    next_attempt_at: int | None = None
    response_excerpt: str | None = Field(
        None, description="The start of the response body, redacted and capped as in the DLQ."
    )


class DeliveryOut(BaseModel):
    """The message's state for one subscription, with its attempts (oldest first)."""

    subscription_id: str
    state: StateName
    next_attempt_at: int | None = Field(None, description="When `scheduled`: the next try.")
    attempts: list[AttemptOut]


class MessageLookupOut(BaseModel):
    """A message and what happened to it for every subscription that matched it."""

    id: str
    topic: str | None
    data: Any = None
    headers: dict[str, str] = Field(default_factory=dict)
    published_at: int | None = None
    traceparent: str | None = None
    ordering_key: str | None = Field(None, description="Its ordering key, when published with one.")
    deliveries: list[DeliveryOut]


class AttemptListOut(BaseModel):
    """A page of a subscription's attempts, newest first."""

    attempts: list[AttemptOut]
    next_cursor: str | None = None


class ResendIn(Strict):
    """``POST /v1/messages/{id}/resend``."""

    subscription: str = Field(pattern=ID_PATTERN, description="The subscription to deliver to.")


class ResendOut(BaseModel):
    """The resend was queued: a new attempt series, same `webhook-id`."""

    message_id: str
    subscription_id: str
    resent: bool = True


def attempt_out(record: AttemptRecord) -> AttemptOut:
    """The API view of one attempt."""
    return AttemptOut(
        message_id=record.message_id,
        subscription_id=record.subscription_id,
        attempt=record.attempt,
        started_at=record.started_at,
        duration_ms=round(record.duration_ms, 2),
        status=record.status,
        reason=record.reason,
        outcome=record.outcome,
        next_step=record.next_step,
        next_attempt_at=record.next_attempt_at,
        response_excerpt=record.response_excerpt,
    )


def _not_found(exc: LookupError) -> ApiError:
    if isinstance(exc, InsightDisabledError):
        return ApiError(404, "insight_disabled", str(exc))
    return ApiError(
        404,
        "not_found",
        f"no message {exc.args[0]!r} is known (never published, or past insight.retention_ms)",
    )


@router.get(
    "/v1/messages/{message_id}",
    summary="Where did my message go?",
    dependencies=[Depends(require_scope("dlq"))],
)
async def get_message(message_id: MessageId, runtime: RuntimeDep) -> MessageLookupOut:
    """The message, and per subscription that matched it: its state (`pending`, `scheduled`,
    `in_flight`, `delivered`, `filtered`, `dead_lettered`, `parked`) and its attempts, as
    recorded by every instance sharing the backend (kept `insight.retention_ms`).
    """
    # Read your own writes: what this instance recorded moments ago (a publish whose 202 the
    # caller just got) is written now rather than at the recorder's next tick.
    await runtime.recorder.flush()
    try:
        insight, states = await runtime.insight.message(message_id)
    except (MessageNotFoundError, InsightDisabledError) as exc:
        raise _not_found(exc) from exc
    message = insight.message
    return MessageLookupOut(
        id=message_id,
        topic=message.topic if message else None,
        data=message.data if message else None,
        headers=message.headers if message else {},
        published_at=message.published_at if message else None,
        traceparent=message.traceparent if message else None,
        ordering_key=message.ordering_key if message else None,
        deliveries=[
            DeliveryOut(
                subscription_id=s.subscription_id,
                state=s.state,
                next_attempt_at=s.next_attempt_at,
                attempts=[attempt_out(a) for a in s.attempts],
            )
            for s in states
        ],
    )


@router.post(
    "/v1/messages/{message_id}/resend",
    status_code=202,
    summary="Deliver a message to a subscription once more",
    dependencies=[Depends(require_scope("dlq"))],
    responses={409: {"model": ErrorOut}},
)
async def resend_message(message_id: MessageId, body: ResendIn, runtime: RuntimeDep) -> ResendOut:
    """Whatever happened before: a new attempt series (attempt 1, the subscription's retry
    policy), same `webhook-id`. The message must still be known (`insight.retention_ms`).
    """
    await runtime.recorder.flush()  # a message published moments ago is known too
    try:
        await runtime.insight.resend(message_id, body.subscription)
    except (MessageNotFoundError, InsightDisabledError) as exc:
        raise _not_found(exc) from exc
    except NotMatchedError as exc:
        raise ApiError(409, "conflict", str(exc)) from exc
    return ResendOut(message_id=message_id, subscription_id=body.subscription)


@router.get(
    "/v1/subscriptions/{subscription_id}/attempts",
    summary="A subscription's attempt log",
    dependencies=[Depends(require_scope("subscriptions"))],
)
async def list_attempts(
    subscription_id: SubscriptionId,
    runtime: RuntimeDep,
    outcome: Annotated[
        Literal["succeeded", "failed"] | None, Query(description="Only these attempts.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=64, pattern=r"^[0-9-]+$")] = None,
) -> AttemptListOut:
    """Newest first; pass `next_cursor` back as `cursor` for the next page."""
    try:
        page = await runtime.insight.attempts(subscription_id, outcome, limit, cursor)
    except InsightDisabledError as exc:
        raise _not_found(exc) from exc
    return AttemptListOut(
        attempts=[attempt_out(a) for a in page.attempts], next_cursor=page.next_cursor
    )


def _last(last: LastAttempt | None) -> LastAttemptOut | None:
    return (
        None if last is None else LastAttemptOut(at=last.at, status=last.status, reason=last.reason)
    )


def health_out(health: EndpointHealth) -> EndpointHealthOut:
    """The API view of endpoint health."""
    return EndpointHealthOut(
        success_rate_5m=health.success_rate_5m,
        success_rate_1h=health.success_rate_1h,
        attempts_5m=health.attempts_5m,
        attempts_1h=health.attempts_1h,
        consecutive_failures=health.consecutive_failures,
        last_success=_last(health.last_success),
        last_failure=_last(health.last_failure),
        p50_duration_ms=health.p50_duration_ms,
        p99_duration_ms=health.p99_duration_ms,
    )


async def with_health(
    runtime: Runtime, pairs: list[tuple[Subscription, SubscriptionOut]]
) -> list[SubscriptionOut]:
    """Subscriptions as shown, each with its endpoint health (when insight is on)."""
    figures = await asyncio.gather(*(runtime.insight.health(sub) for sub, _ in pairs))
    for (_, out), health in zip(pairs, figures, strict=True):
        if health is not None:
            out.health = health_out(health)
    return [out for _, out in pairs]
