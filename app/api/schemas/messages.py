"""Bodies of publishing: single messages, batches, the engine's ``enqueue`` shape."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    field_validator,
)

from app.api.schemas.common import (
    DAY_MS,
    MAX_MESSAGE_HEADERS,
    Baggage,
    Int,
    Strict,
    Traceparent,
    check_headers,
    whole_number,
)
from app.core.topics import TOPIC_PATTERN

ExpiresAt = (
    Annotated[int, Field(ge=0), BeforeValidator(whole_number)]
    | Annotated[str, Field(min_length=1, max_length=64)]
)
"""A deadline: epoch milliseconds, or an RFC 3339 date-time with an offset."""

EXPIRES_AT_NOTE = (
    "Deadline: RFC 3339 date-time with an offset (`2030-01-01T00:00:00Z`) or epoch ms. No "
    "attempt starts after it and no retry is scheduled past it: the message is dead-lettered "
    "with reason `expired` instead. In the past, or before `delay_ms` ends: 422."
)
TTL_NOTE = "Deadline relative to now, in ms (instead of `expires_at`; both: 422)."
TtlMs = Annotated[int, Field(ge=1, le=365 * DAY_MS), BeforeValidator(whole_number)]


class DeadlineFields(Strict):
    """``expires_at`` or ``ttl_ms``: when a message stops being worth delivering."""

    expires_at: ExpiresAt | None = Field(None, description=EXPIRES_AT_NOTE)
    ttl_ms: TtlMs | None = Field(None, description=TTL_NOTE)


ORDERING_KEY_NOTE = (
    "Messages sharing a key are delivered one at a time, in publish order, to subscriptions "
    'with `ordering: "key"` (a retry holds back only its own key; a dead letter lets the '
    "key move on). 1 to 255 characters. Without a key a message is unordered."
)
OrderingKey = Annotated[str, Field(min_length=1, max_length=255)]


class DeliveryFields(DeadlineFields):
    """What a publisher says about how a message is delivered: its deadline and order."""

    ordering_key: OrderingKey | None = Field(None, description=ORDERING_KEY_NOTE)


class MessageIn(DeliveryFields):
    """One message to publish."""

    data: Any = Field(description="Any JSON value; delivered as-is.")
    delay_ms: Int = Field(0, ge=0, description="Deliver no earlier than this many ms from now.")
    headers: dict[str, str] | None = Field(
        None, description="Message attributes, visible to conditions as `headers`."
    )

    @field_validator("headers")
    @classmethod
    def _valid_headers(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        check_headers(value, MAX_MESSAGE_HEADERS, reserved=False)
        return value


class BatchMessageIn(MessageIn):
    """One message of a batch, with its own optional idempotency key."""

    idempotency_key: str | None = Field(None, min_length=1, max_length=255)


class BatchIn(Strict):
    """Up to ``limits.max_batch`` messages, accepted all together or not at all."""

    messages: list[BatchMessageIn] = Field(min_length=1)


class EnqueueIn(DeliveryFields):
    """The engine's ``queue.enqueue`` argument: ``{topic, data, traceparent?, baggage?}``."""

    topic: str = Field(pattern=TOPIC_PATTERN)
    data: Any = None
    delay_ms: Int = Field(0, ge=0, description="Deliver no earlier than this many ms from now.")
    traceparent: Traceparent | None = None
    baggage: Baggage | None = None


class PublishOut(BaseModel):
    """The id a message got; ``duplicate`` when an idempotency key matched an earlier one."""

    id: str
    topic: str
    duplicate: bool


class BatchResultOut(BaseModel):
    """One result of a batch, in request order."""

    id: str
    duplicate: bool


class BatchOut(BaseModel):
    """Results of a batch publish."""

    results: list[BatchResultOut]
