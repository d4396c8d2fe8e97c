"""Topics: implicit, listed with what their subscriptions hold."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from app.api.deps import RuntimeDep, require_scope
from app.api.schemas import ErrorOut, SubscriptionStatsOut, TopicList, TopicOut
from app.core.topics import TOPIC_PATTERN
from app.runtime import Runtime

router = APIRouter(
    prefix="/v1/topics",
    tags=["topics"],
    dependencies=[Depends(require_scope("subscriptions"))],
    responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}, 503: {"model": ErrorOut}},
)


async def describe_topic(runtime: Runtime, topic: str) -> TopicOut:
    """Figures of one topic, per subscription and summed."""
    view = await runtime.topics.describe(topic)
    subs = [
        SubscriptionStatsOut(
            id=s.subscription_id,
            paused=view.paused.get(s.subscription_id),
            backlog=s.backlog,
            in_flight=s.in_flight,
            scheduled=s.scheduled,
            dlq=s.dlq,
        )
        for s in view.stats.subscriptions
    ]
    return TopicOut(
        topic=topic,
        subscriptions=subs,
        backlog=sum(s.backlog for s in subs),
        in_flight=sum(s.in_flight for s in subs),
        scheduled=sum(s.scheduled for s in subs),
        dlq_count=view.stats.dlq,
    )


@router.get("", summary="List topics")
async def list_topics(
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="Topics per page.")] = 100,
    cursor: Annotated[
        str | None,
        Query(pattern=TOPIC_PATTERN, description="`next_cursor` of the previous page."),
    ] = None,
) -> TopicList:
    """Topics with subscriptions, messages or DLQ entries, in name order, one page at a time.

    The cursor is the last topic name of the previous page, so following ``next_cursor``
    visits every topic that exists throughout exactly once, even while topics come and go.
    """
    page = await runtime.topics.page(limit, cursor)
    return TopicList(
        topics=[await describe_topic(runtime, t) for t in page.names],
        next_cursor=page.next_cursor,
    )


@router.get("/{topic}", summary="Describe a topic")
async def get_topic(
    topic: Annotated[str, Path(pattern=TOPIC_PATTERN)], runtime: RuntimeDep
) -> TopicOut:
    """Subscriptions, backlog, in flight, scheduled retries and DLQ count of one topic."""
    return await describe_topic(runtime, topic)
