"""The lease and DLQ calls of a broker adapter, handed to its parts.

The Redis and RabbitMQ adapters are facades over the same roles (``leases``, ``dlq``)
with the same method names; this mixin writes that hand-over once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from app.core.models import Delivery, DlqEntry, Subscription
from app.core.ports import DlqPage


class LeaseStore(Protocol):
    """Leasing copies and ending leases (``leases.py`` of each broker package)."""

    async def receive(
        self, subscription: Subscription, max_count: int, wait_ms: int
    ) -> list[Delivery]:
        """See :meth:`app.core.ports.QueueAdapter.receive`."""

    async def wait_for_work(self, subscription: Subscription, timeout_s: float) -> None:
        """See :meth:`app.core.ports.QueueAdapter.wait_for_work`."""

    async def ack(self, deliveries: Sequence[Delivery]) -> bool:
        """See :meth:`app.core.ports.QueueAdapter.ack`."""

    async def retry_at(self, delivery: Delivery, due_at_ms: int) -> bool:
        """See :meth:`app.core.ports.QueueAdapter.retry_at`."""

    async def dead_letter(self, delivery: Delivery, entry: DlqEntry) -> bool:
        """See :meth:`app.core.ports.QueueAdapter.dead_letter`."""

    async def release(self, deliveries: Sequence[Delivery]) -> None:
        """See :meth:`app.core.ports.QueueAdapter.release`."""


class DlqStore(Protocol):
    """The DLQ of every topic (``dlq.py`` of each broker package)."""

    async def count(self, topic: str, subscription_id: str | None) -> int:
        """See :meth:`app.core.ports.QueueAdapter.dlq_count`."""

    async def page(
        self, topic: str, subscription_id: str | None, limit: int, cursor: str | None
    ) -> DlqPage:
        """See :meth:`app.core.ports.QueueAdapter.dlq_list`."""

    async def redrive(
        self, topic: str, subscription_id: str | None, ids: Sequence[str] | None
    ) -> int:
        """See :meth:`app.core.ports.QueueAdapter.dlq_redrive`."""

    async def purge(
        self, topic: str, subscription_id: str | None, ids: Sequence[str] | None
    ) -> int:
        """See :meth:`app.core.ports.QueueAdapter.dlq_purge`."""


class BrokerFacade:
    """``receive``, ``wait_for_work``, the lease-ending calls and ``dlq_*``, delegated."""

    leases: LeaseStore
    dlq: DlqStore

    async def receive(
        self, subscription: Subscription, max_count: int, wait_ms: int
    ) -> list[Delivery]:
        """Lease up to ``max_count`` copies, waiting at most ``wait_ms`` for the first."""
        return await self.leases.receive(subscription, max_count, wait_ms)

    async def wait_for_work(self, subscription: Subscription, timeout_s: float) -> None:
        """Return when the subscription may have work, or after ``timeout_s``."""
        await self.leases.wait_for_work(subscription, timeout_s)

    async def ack(self, deliveries: Sequence[Delivery]) -> bool:
        """End leases for good; False if one had ended already."""
        return await self.leases.ack(deliveries) if deliveries else True

    async def retry_at(self, delivery: Delivery, due_at_ms: int) -> bool:
        """End the lease and schedule attempt + 1 at ``due_at_ms``; False if not ours."""
        return await self.leases.retry_at(delivery, due_at_ms)

    async def dead_letter(self, delivery: Delivery, entry: DlqEntry) -> bool:
        """End the lease and keep ``entry`` in the topic's DLQ; False if not ours."""
        return await self.leases.dead_letter(delivery, entry)

    async def release(self, deliveries: Sequence[Delivery]) -> None:
        """Hand leases back untried; the same attempt is leased again."""
        if deliveries:
            await self.leases.release(deliveries)

    async def dlq_count(self, topic: str, subscription_id: str | None = None) -> int:
        """Entries of a topic (of one subscription when given)."""
        return await self.dlq.count(topic, subscription_id)

    async def dlq_list(
        self,
        topic: str,
        subscription_id: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> DlqPage:
        """A page of entries, oldest first, after ``cursor`` (an entry id)."""
        return await self.dlq.page(topic, subscription_id, limit, cursor)

    async def dlq_redrive(
        self,
        topic: str,
        subscription_id: str | None = None,
        ids: Sequence[str] | None = None,
    ) -> int:
        """Give entries back to the subscription that failed them, attempt 1."""
        return await self.dlq.redrive(topic, subscription_id, ids)

    async def dlq_purge(
        self,
        topic: str,
        subscription_id: str | None = None,
        ids: Sequence[str] | None = None,
    ) -> int:
        """Delete entries."""
        return await self.dlq.purge(topic, subscription_id, ids)
