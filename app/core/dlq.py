"""Operating a topic's dead-letter queue: count, browse, redrive, purge.

The routes (HTTP and the engine's functions) call this, not the adapter, so every way in
answers alike and a rule added here (an audit log, a limit) reaches all of them.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.core.ports import DeadLetterPort, DlqPage


class DlqService:
    """The DLQ of every topic, over the adapter's :class:`DeadLetterPort`."""

    def __init__(self, store: DeadLetterPort) -> None:
        """``store`` is the adapter."""
        self._store = store

    async def count(self, topic: str, subscription_id: str | None = None) -> int:
        """Entries of ``topic`` (of one subscription when given)."""
        return await self._store.dlq_count(topic, subscription_id)

    async def page(
        self,
        topic: str,
        subscription_id: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> DlqPage:
        """Entries oldest first, after ``cursor``."""
        return await self._store.dlq_list(topic, subscription_id, limit, cursor)

    async def redrive(
        self,
        topic: str,
        subscription_id: str | None = None,
        ids: Sequence[str] | None = None,
    ) -> int:
        """Give entries back to the subscription that failed them; how many moved."""
        return await self._store.dlq_redrive(topic, subscription_id, ids)

    async def purge(
        self,
        topic: str,
        subscription_id: str | None = None,
        ids: Sequence[str] | None = None,
    ) -> int:
        """Delete entries for good; how many."""
        return await self._store.dlq_purge(topic, subscription_id, ids)
