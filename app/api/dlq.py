"""The dead-letter queue of a topic: count, browse, redrive, purge."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from app.api.deps import RuntimeDep, require_scope
from app.api.schemas import (
    ID_PATTERN,
    DlqCountOut,
    DlqEntryOut,
    DlqListOut,
    ErrorOut,
    LastErrorOut,
    PurgeOut,
    RedriveIn,
    RedriveOut,
)
from app.api.strict_json import StrictJsonRoute
from app.core.models import DlqEntry
from app.core.topics import TOPIC_PATTERN

router = APIRouter(
    route_class=StrictJsonRoute,
    prefix="/v1/topics/{topic}/dlq",
    tags=["dlq"],
    dependencies=[Depends(require_scope("dlq"))],
    responses={
        401: {"model": ErrorOut},
        403: {"model": ErrorOut},
        422: {"model": ErrorOut},
        503: {"model": ErrorOut},
    },
)

TopicPath = Annotated[str, Path(pattern=TOPIC_PATTERN)]
SubscriptionFilter = Annotated[
    str | None, Query(pattern=ID_PATTERN, description="Only this subscription's entries.")
]


def entry_out(entry: DlqEntry) -> DlqEntryOut:
    """The API view of an entry."""
    return DlqEntryOut(
        id=entry.id,
        message_id=entry.message.id,
        subscription_id=entry.subscription_id,
        topic=entry.topic,
        data=entry.message.data,
        attempts=entry.attempts,
        last_error=LastErrorOut(**entry.last_error.to_dict()),
        failed_at=entry.failed_at,
        published_at=entry.message.published_at,
        traceparent=entry.message.traceparent,
        ordering_key=entry.message.ordering_key,
    )


@router.get("/count", summary="Count DLQ entries")
async def dlq_count(
    topic: TopicPath, runtime: RuntimeDep, subscription: SubscriptionFilter = None
) -> DlqCountOut:
    """How many messages gave up on this topic (for one subscription when given)."""
    return DlqCountOut(topic=topic, count=await runtime.dlq.count(topic, subscription))


@router.get("", summary="Browse DLQ entries")
async def dlq_list(
    topic: TopicPath,
    runtime: RuntimeDep,
    subscription: SubscriptionFilter = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=256)] = None,
) -> DlqListOut:
    """Entries oldest first; follow ``next_cursor`` for more."""
    page = await runtime.dlq.page(topic, subscription, limit, cursor)
    return DlqListOut(entries=[entry_out(e) for e in page.entries], next_cursor=page.next_cursor)


@router.post("/redrive", summary="Redrive DLQ entries")
async def dlq_redrive(
    topic: TopicPath, runtime: RuntimeDep, body: RedriveIn | None = None
) -> RedriveOut:
    """Each entry goes back to the one subscription that failed it, attempts reset."""
    body = body or RedriveIn()
    redriven = await runtime.dlq.redrive(topic, body.subscription, body.ids)
    return RedriveOut(redriven=redriven)


@router.delete("", summary="Purge DLQ entries")
async def dlq_purge(
    topic: TopicPath, runtime: RuntimeDep, subscription: SubscriptionFilter = None
) -> PurgeOut:
    """Delete entries for good."""
    return PurgeOut(purged=await runtime.dlq.purge(topic, subscription))
