"""Bodies of the dead-letter queue: entries, pages, counts, redrive and purge."""

from __future__ import annotations

from typing import Any

from pydantic import (
    BaseModel,
    Field,
)

from app.api.schemas.common import ID_PATTERN, Strict


class LastErrorOut(BaseModel):
    """Why the last attempt failed."""

    reason: str
    status: int | None = None
    body_excerpt: str | None = None


class DlqEntryOut(BaseModel):
    """A dead-lettered message, with the subscription that failed it."""

    id: str
    message_id: str
    subscription_id: str
    topic: str
    data: Any
    attempts: int
    last_error: LastErrorOut
    failed_at: int
    published_at: int
    traceparent: str | None = None
    ordering_key: str | None = Field(
        None,
        description="The message's ordering key: on an `ordering: key` subscription the key "
        "did not wait for this entry, it moved on to its next message when this one was "
        "dead-lettered (a redrive delivers it after those).",
    )


class DlqListOut(BaseModel):
    """A page of DLQ entries; pass ``next_cursor`` back as ``cursor`` for the next one."""

    entries: list[DlqEntryOut]
    next_cursor: str | None


class DlqCountOut(BaseModel):
    """How many entries a topic's DLQ holds."""

    topic: str
    count: int


class RedriveIn(Strict):
    """Which entries to redrive: all, one subscription's, or these ids."""

    subscription: str | None = Field(None, pattern=ID_PATTERN)
    ids: list[str] | None = Field(None, min_length=1, max_length=10_000)


class RedriveOut(BaseModel):
    """How many entries went back to their subscription."""

    redriven: int


class PurgeOut(BaseModel):
    """How many entries were deleted."""

    purged: int
