"""Per-topic figures for ``GET /v1/topics/{topic}``, as exact as AMQP allows.

Backlog comes from the broker (plus this instance's buffers); in flight and scheduled
are what this instance knows (RabbitMQ cannot count unacked or delayed copies per queue
over AMQP); DLQ figures come from a snapshot of the topic's DLQ.
"""

from __future__ import annotations

import heapq

from app.adapters.rabbitmq.connection import Session
from app.adapters.rabbitmq.consumers import Consumers
from app.adapters.rabbitmq.dlq import DeadLetterStore
from app.adapters.rabbitmq.registry import SubscriptionRegistry
from app.adapters.rabbitmq.topology import ready_count
from app.core.models import SubscriptionStats, TopicStats, now_ms


class ScheduledCounts:
    """Due times of the copies this instance sent into the delay ladder, per subscription."""

    def __init__(self) -> None:
        """Nothing scheduled yet."""
        self._due: dict[str, list[int]] = {}

    def note(self, subscription_id: str, due_at_ms: int) -> None:
        """A copy of ``subscription_id`` waits in the ladder until ``due_at_ms``."""
        heapq.heappush(self._due.setdefault(subscription_id, []), due_at_ms)

    def count(self, subscription_id: str) -> int:
        """Copies not due yet (past-due ones are forgotten on the way)."""
        heap = self._due.get(subscription_id, [])
        now = now_ms()
        while heap and heap[0] <= now:
            heapq.heappop(heap)
        return len(heap)

    def forget(self, subscription_id: str) -> None:
        """The subscription is gone."""
        self._due.pop(subscription_id, None)

    def prune(self) -> None:
        """Drop subscriptions with nothing left to wait for (housekeeping)."""
        for subscription_id in list(self._due):
            if not self.count(subscription_id):
                del self._due[subscription_id]


async def topic_stats(
    session: Session,
    registry: SubscriptionRegistry,
    consumers: Consumers,
    scheduled: ScheduledCounts,
    dlq: DeadLetterStore,
    topic: str,
) -> TopicStats:
    """Backlog, in flight, scheduled and DLQ per subscription of ``topic``."""
    dlq_by_sub = await dlq.per_subscription(topic)
    stats = []
    for registered in registry.all():
        if registered.subscription.topic != topic:
            continue
        sub_id = registered.subscription.id
        ready = await ready_count(session, registered.queue)
        mine = consumers.of(sub_id)
        stats.append(
            SubscriptionStats(
                subscription_id=sub_id,
                backlog=ready + sum(c.buffered for c in mine),
                in_flight=sum(len(c.leased) for c in mine),
                scheduled=scheduled.count(sub_id),
                dlq=dlq_by_sub.get(sub_id, 0),
            )
        )
    return TopicStats(topic=topic, subscriptions=stats, dlq=sum(dlq_by_sub.values()))
