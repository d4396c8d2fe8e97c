"""Delivery insight on RabbitMQ: a stream every instance follows into a bounded memory store.

Why a stream: RabbitMQ has no store one can query, and the adapter already keeps its
shared state (registry, idempotency keys) on streams every instance replays
(:mod:`.streamlog`). The recorder appends one event per flush (a whole batch of facts,
so one confirmed publish per few milliseconds however busy the dispatcher is); every
instance applies every batch, in stream order, to a :class:`MemoryInsightStore`, so each
answers ``GET /v1/messages/{id}`` from memory with what every instance attempted. A batch
this instance appended is applied from the objects it already holds (at its place in the
stream), not rebuilt from its JSON.

Bounds: the stream keeps ``retention_ms`` of history (``x-max-age``, in 8 MB segments)
and at most ``max_stream_bytes``; the memory store forgets by the same retention and
caps messages and attempts (see :mod:`app.adapters.kit.insight_memory`). An instance
that starts replays the retained history. Cost per delivered message: its envelope once
and about 400 bytes of attempt and mark, in the stream and in each instance's memory.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

from app.adapters.kit.insight_memory import MemoryInsightStore
from app.adapters.rabbitmq.connection import BrokerConnection, Session
from app.adapters.rabbitmq.streamlog import StreamLog
from app.core.errors import BackendUnavailableError
from app.core.insight import (
    AttemptOutcome,
    AttemptPage,
    AttemptRecord,
    InsightBatch,
    InsightSettings,
    MessageInsight,
)
from app.core.models import now_ms

MAX_STREAM_BYTES = 2 * 1024**3


class StreamInsightStore:
    """Implementation of :class:`app.core.ports.InsightStore` on a RabbitMQ stream."""

    def __init__(self, connection: BrokerConnection, name: str, settings: InsightSettings) -> None:
        """Follows the stream ``name`` once :meth:`open` is called."""
        self._conn = connection
        self._memory = MemoryInsightStore(settings)
        self._attached = False
        self._opened = False
        self._own: dict[str, InsightBatch] = {}
        """Batches this instance appended and has not applied yet, by batch id: applied as
        they are (at their place in the stream) instead of rebuilt from their JSON.
        """
        self.log = StreamLog(
            name,
            self._apply,
            arguments={
                "x-max-age": f"{max(1, settings.retention_ms // 1000)}s",
                "x-stream-max-segment-size-bytes": 8_000_000,
                "x-max-length-bytes": MAX_STREAM_BYTES,
            },
        )

    async def open(self) -> None:
        """Start following now if connected (else at the next connection)."""
        self._opened = True
        session = self._conn.current
        if session is not None:
            with contextlib.suppress(BackendUnavailableError):
                await self.attach(session)

    async def attach(self, session: Session) -> None:
        """Follow the stream on a (new) connection, once opened."""
        if self._opened and not self._attached:
            self._attached = True
            try:
                await self.log.attach(session)
            except BaseException:
                self._attached = False
                raise

    def detach(self) -> None:
        """The connection died: follow again at the next one."""
        self._attached = False
        self.log.detach()

    async def close(self) -> None:
        """The adapter closes the connection (and with it the follower)."""
        self._opened = False

    def _apply(self, event: dict[str, Any], live: bool) -> Any:  # noqa: ARG002 - Apply signature
        if event.get("op") == "batch":
            own = self._own.pop(str(event.get("bid")), None)
            batch = own if own is not None else InsightBatch.from_dict(event["b"])
            self._memory.apply(batch, int(event["at"]))
        return None

    async def write(self, batch: InsightBatch) -> None:
        """Append the batch; returns once this instance has applied it."""
        session = await self._conn.session()
        batch_id = uuid.uuid4().hex
        self._own[batch_id] = batch
        try:
            event = {"op": "batch", "at": now_ms(), "bid": batch_id, "b": batch.to_dict()}
            await self.log.append(session, event)
        finally:
            self._own.pop(batch_id, None)

    async def _caught_up(self) -> None:
        """Apply what other instances appended so far (one round trip)."""
        session = self._conn.current
        if session is not None and self._attached:
            with contextlib.suppress(BackendUnavailableError):
                await self.log.catch_up(session)

    async def get_message(self, message_id: str) -> MessageInsight | None:
        """From memory, after catching up with the stream."""
        await self._caught_up()
        return await self._memory.get_message(message_id)

    async def list_attempts(
        self,
        topic: str,
        subscription_id: str,
        *,
        outcome: AttemptOutcome | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> AttemptPage:
        """From memory, after catching up with the stream."""
        await self._caught_up()
        return await self._memory.list_attempts(
            topic, subscription_id, outcome=outcome, limit=limit, cursor=cursor
        )

    async def recent_attempts(
        self, topic: str, subscription_id: str, limit: int
    ) -> list[AttemptRecord]:
        """From memory (health figures need no catch-up)."""
        return await self._memory.recent_attempts(topic, subscription_id, limit)
