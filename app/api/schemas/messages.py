"""Bodies of publishing: single messages, batches, the engine's ``enqueue`` shape."""

from __future__ import annotations

from typing import Any

from pydantic import (
    BaseModel,
    Field,
    field_validator,
)

from app.api.schemas.common import (
    MAX_MESSAGE_HEADERS,
    Baggage,
    Int,
    Strict,
    Traceparent,
    check_headers,
)
from app.core.topics import TOPIC_PATTERN


class MessageIn(Strict):
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


class EnqueueIn(Strict):
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
