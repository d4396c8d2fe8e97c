"""What every delivery loop works with, handed over as one frozen object.

Built once by the app factory; the dispatcher gives the same context to each
subscription's worker, so adding a collaborator touches this class and its builder only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.core.dead_letters import DEFAULT_MAX_DEAD_LETTER_HOPS

if TYPE_CHECKING:
    from app.core.ports import QueueAdapter
    from app.core.publisher import Publisher
    from app.dispatch.condition_pool import ConditionPool
    from app.dispatch.guard import DestinationGuard
    from app.dispatch.insight_recorder import InsightRecorder
    from app.dispatch.sender import WebhookSender
    from app.observability.metrics import DispatchMetrics


@dataclass(frozen=True, slots=True)
class DeliveryContext:
    """The collaborators of a delivery: where leases come from and outcomes go, how a
    request is sent, where dead letters are republished, what is counted.

    ``guard`` refuses destinations (None: every destination is allowed); ``conditions``
    evaluates conditions with comprehension macros off the event loop (the dispatcher
    closes it when it stops); ``max_dead_letter_hops`` bounds how many dead-letter topics
    one message may pass through; ``insight`` records leases and attempts (None: off).
    """

    adapter: QueueAdapter
    sender: WebhookSender
    publisher: Publisher
    metrics: DispatchMetrics
    conditions: ConditionPool
    guard: DestinationGuard | None = None
    max_dead_letter_hops: int = DEFAULT_MAX_DEAD_LETTER_HOPS
    insight: InsightRecorder | None = None
