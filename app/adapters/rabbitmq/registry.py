"""The subscription registry: a stream of changes every instance replays and follows.

Why a stream: RabbitMQ has no key-value store, and the contract wants subscriptions that
are durable and seen by every instance with no other server. A stream is durable,
replicated on a cluster, and readable from the start by any number of instances, so it
serves as the registry's log (see :mod:`app.adapters.rabbitmq.streamlog`). Conflicts
(two instances creating the same id) are settled by stream order, identically everywhere.

Each creation gets an *incarnation* (a random suffix of its queue name). Deleting a
subscription deletes that incarnation's queue; re-creating the same id makes a new
queue, so a late deletion can never hit the newer one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from app.adapters.kit.change_log import ChangeLog
from app.adapters.rabbitmq.connection import Session
from app.adapters.rabbitmq.names import NameSpace
from app.adapters.rabbitmq.streamlog import StreamLog
from app.core.models import Subscription

logger = logging.getLogger("hookline.rabbitmq")


@dataclass(slots=True)
class Registered:
    """A subscription as the registry holds it, with the queue of its incarnation."""

    subscription: Subscription
    incarnation: str
    queue: str


Hook = Callable[[Registered, bool], None]
"""Local reaction to a change: ``hook(registered, live)``."""


class SubscriptionRegistry:
    """Subscriptions and DLQ topics, as of the last event this instance applied."""

    def __init__(self, names: NameSpace, on_updated: Hook, on_deleted: Hook) -> None:
        """Hooks run inside event application: they must not block (schedule work instead)."""
        self._names = names
        self._on_updated = on_updated
        self._on_deleted = on_deleted
        self._subscriptions: dict[str, Registered] = {}
        self._dlq_topics: set[str] = set()
        self.changes = ChangeLog()
        """Every applied create, update or delete, by local version (the dispatcher polls it)."""
        self.log = StreamLog(names.registry, self._apply)

    # -- reading (local state) -----------------------------------------------------------

    def get(self, subscription_id: str) -> Registered | None:
        """The registered subscription, or None."""
        return self._subscriptions.get(subscription_id)

    def all(self) -> list[Registered]:
        """Every subscription, in creation order."""
        return list(self._subscriptions.values())

    @property
    def dlq_topics(self) -> set[str]:
        """Topics that have (had) a DLQ queue."""
        return set(self._dlq_topics)

    # -- writing (through the stream) ----------------------------------------------------

    async def create(self, session: Session, subscription: Subscription, incarnation: str) -> bool:
        """True if this creation won (the id was free when the event was applied)."""
        result = await self.log.append(
            session, {"op": "create", "sub": subscription.to_dict(), "inc": incarnation}
        )
        return bool(result)

    async def update(self, session: Session, subscription: Subscription) -> bool:
        """True if the subscription existed and now has this definition."""
        return bool(await self.log.append(session, {"op": "update", "sub": subscription.to_dict()}))

    async def delete(self, session: Session, subscription_id: str) -> Registered | None:
        """The deleted subscription (to remove its queue), or None if it did not exist."""
        result = await self.log.append(session, {"op": "delete", "id": subscription_id})
        return result if isinstance(result, Registered) else None

    async def note_dlq_topic(self, session: Session, topic: str) -> None:
        """Remember that ``topic`` has a DLQ queue, so every instance lists the topic."""
        if topic not in self._dlq_topics:
            await self.log.append(session, {"op": "dlq_topic", "topic": topic})

    # -- the state machine ---------------------------------------------------------------

    def _apply(self, event: dict[str, Any], live: bool) -> Any:
        op = event.get("op")
        if op in ("create", "update"):
            self.changes.record(str(event["sub"].get("id", "")))
        elif op == "delete":
            self.changes.record(str(event["id"]))
        if op == "create":
            subscription = Subscription.from_dict(event["sub"])
            if subscription.id in self._subscriptions:
                return False
            incarnation = str(event["inc"])
            queue = self._names.subscription_queue(subscription.id, incarnation)
            self._subscriptions[subscription.id] = Registered(subscription, incarnation, queue)
            return True
        if op == "update":
            subscription = Subscription.from_dict(event["sub"])
            current = self._subscriptions.get(subscription.id)
            if current is None:
                return False
            # The queue is bound to the topic it was created with; that cannot change.
            current.subscription = replace(subscription, topic=current.subscription.topic)
            self._on_updated(current, live)
            return True
        if op == "delete":
            removed = self._subscriptions.pop(str(event["id"]), None)
            if removed is not None:
                self._on_deleted(removed, live)
            return removed
        if op == "dlq_topic":
            self._dlq_topics.add(str(event["topic"]))
            return True
        return None
