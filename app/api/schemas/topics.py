"""Bodies of topics: per-subscription figures, one topic, a page of topics."""

from __future__ import annotations

from pydantic import (
    BaseModel,
    Field,
)


class SubscriptionStatsOut(BaseModel):
    """One subscription's figures on a topic."""

    id: str
    paused: bool | None = None
    backlog: int
    in_flight: int
    scheduled: int
    dlq: int


class TopicOut(BaseModel):
    """A topic with its subscriptions and what they hold."""

    topic: str
    subscriptions: list[SubscriptionStatsOut]
    backlog: int
    in_flight: int
    scheduled: int
    dlq_count: int


class TopicList(BaseModel):
    """One page of the known topics, in name order."""

    topics: list[TopicOut]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` for the next page; null on the last page."
    )
