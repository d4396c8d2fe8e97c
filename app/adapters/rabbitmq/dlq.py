"""Count, list, redrive and purge DLQ entries (the ``dlq_*`` calls of the contract).

Entries live in one queue per topic (:mod:`.dlq_queues`); every call but a whole-topic
count or purge works on a snapshot of that queue, selected with the shared
:class:`~app.adapters.kit.dlq.DlqFilter`.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.adapters.kit.codec import encode_envelope
from app.adapters.kit.dlq import DlqFilter, first_page
from app.adapters.rabbitmq import codec
from app.adapters.rabbitmq.connection import BrokerConnection, Outbound
from app.adapters.rabbitmq.dlq_queues import DlqQueues
from app.adapters.rabbitmq.names import NameSpace
from app.adapters.rabbitmq.registry import SubscriptionRegistry
from app.adapters.rabbitmq.settings import QueueType
from app.core.models import DlqEntry
from app.core.ports import DlqPage


class DeadLetterStore:
    """DLQ operations for every topic, on the current broker session."""

    def __init__(
        self,
        connection: BrokerConnection,
        names: NameSpace,
        queue_type: QueueType,
        registry: SubscriptionRegistry,
    ) -> None:
        """``registry`` tells where redriven entries go and which topics have a DLQ."""
        self._conn = connection
        self._names = names
        self._registry = registry
        self.queues = DlqQueues(names, queue_type, registry.note_dlq_topic)

    async def count(self, topic: str, subscription_id: str | None) -> int:
        """Total by passive declare; per subscription by a snapshot scan."""
        session = await self._conn.session()
        if subscription_id is None:
            return await self.queues.count(session, topic)
        return len(await self.select(topic, DlqFilter.of(subscription_id)))

    async def page(
        self, topic: str, subscription_id: str | None, limit: int, cursor: str | None
    ) -> DlqPage:
        """Entries ordered by id (failure time), after ``cursor`` (an entry id)."""
        chosen = await self.select(topic, DlqFilter.of(subscription_id, after=cursor))
        return first_page(chosen, limit)

    async def select(self, topic: str, selection: DlqFilter) -> list[DlqEntry]:
        """The selected entries of a snapshot, oldest first (they stay in the DLQ)."""
        session = await self._conn.session()
        async with self.queues.scan(session, topic) as snapshot:
            return selection.select(entry for _, entry in snapshot.entries)

    async def redrive(
        self, topic: str, subscription_id: str | None, ids: Sequence[str] | None
    ) -> int:
        """Send entries back to the subscription that failed them (attempt 1), then drop them.

        Entries of deleted subscriptions stay, as do entries whose copy was not confirmed.
        """
        session = await self._conn.session()
        await self._registry.log.catch_up(session)
        selection = DlqFilter.of(subscription_id, ids)
        async with self.queues.scan(session, topic) as snapshot:
            moves: list[tuple[int, Outbound]] = []
            for tag, entry in snapshot.entries:
                registered = self._registry.get(entry.subscription_id)
                if registered is None or not selection(entry):
                    continue
                copy = Outbound(
                    self._names.direct,
                    registered.queue,
                    encode_envelope(entry.message),
                    codec.properties(codec.copy_headers(1)),
                )
                moves.append((tag, copy))
            results = await session.publish_each([m for _, m in moves])
            moved = 0
            for (tag, _), result in zip(moves, results, strict=True):
                if result is None:
                    await snapshot.remove(tag)
                    moved += 1
            return moved

    async def purge(
        self, topic: str, subscription_id: str | None, ids: Sequence[str] | None
    ) -> int:
        """Purge the queue, or remove the selected entries from a snapshot."""
        session = await self._conn.session()
        selection = DlqFilter.of(subscription_id, ids)
        if selection.everything:
            return await self.queues.purge_all(session, topic)
        async with self.queues.scan(session, topic) as snapshot:
            chosen = [tag for tag, entry in snapshot.entries if selection(entry)]
            for tag in chosen:
                await snapshot.remove(tag)
            return len(chosen)

    async def per_subscription(self, topic: str) -> dict[str, int]:
        """Entries of each subscription (none read when the topic never had a DLQ)."""
        counts: dict[str, int] = {}
        if topic in self._registry.dlq_topics:
            for entry in await self.select(topic, DlqFilter()):
                counts[entry.subscription_id] = counts.get(entry.subscription_id, 0) + 1
        return counts
