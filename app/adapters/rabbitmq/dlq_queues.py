"""The DLQ queues: one durable queue per topic, scanned under a broker-wide lock.

Why per topic: the API and the engine address DLQs by topic (``dlq_count({topic})``),
the topic count is then one passive declare, and entries of deleted subscriptions need
no bookkeeping to stay listed. Each entry (JSON of :class:`DlqEntry`) names the
subscription that failed it, which is what redrive and per-subscription counts filter on.

A queue can only be read from its head, so listing, counting by subscription, redrive
and selective purge take a *snapshot*: with the lock held, read the ready count, consume
exactly that many messages without acking them, ack the ones removed (after a redriven
copy is confirmed), then close the channel, which puts every other message back in its
original position. Nothing loops on the head message and nothing left behind is
reordered. The lock is an exclusive queue: the broker grants it to one connection at a
time and drops it if that connection dies, so a crashed instance never holds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aiormq
import aiormq.abc

from app.adapters.kit.codec import DECODE_ERRORS, decode_entry, encode_entry
from app.adapters.rabbitmq.codec import properties
from app.adapters.rabbitmq.connection import BROKER_ERRORS, Outbound, Session, unavailable
from app.adapters.rabbitmq.names import NameSpace
from app.adapters.rabbitmq.settings import QueueType
from app.adapters.rabbitmq.topology import declare_dlq, ready_count
from app.core.errors import BackendUnavailableError
from app.core.models import DlqEntry

logger = logging.getLogger("hookline.rabbitmq")

LOCK_WAIT_S = 15.0
_LOCK_RETRY_S = 0.05


@dataclass(slots=True)
class Snapshot:
    """The DLQ entries present when the scan began, oldest first, held until the scan ends."""

    entries: list[tuple[int, DlqEntry]] = field(default_factory=list)
    channel: aiormq.abc.AbstractChannel | None = None

    async def remove(self, delivery_tag: int) -> None:
        """Delete one entry for good (the others go back when the scan ends)."""
        if self.channel is not None:
            await self.channel.basic_ack(delivery_tag, wait=False)


class DlqQueues:
    """The queue-level DLQ operations of every topic (:mod:`.dlq` builds on them)."""

    def __init__(
        self,
        names: NameSpace,
        queue_type: QueueType,
        note_topic: Callable[[Session, str], Awaitable[None]],
    ) -> None:
        """``note_topic(session, topic)`` records in the registry that the topic has a DLQ."""
        self._names = names
        self._queue_type = queue_type
        self._note_topic = note_topic
        self._declared: set[tuple[int, str]] = set()
        self._local_locks: dict[str, asyncio.Lock] = {}

    async def add(self, session: Session, entry: DlqEntry) -> None:
        """Keep ``entry`` (confirmed by the broker before this returns)."""
        queue = self._names.dlq(entry.topic)
        headers = {"hl-sub": entry.subscription_id, "hl-dlq-id": entry.id}
        message = Outbound("", queue, encode_entry(entry), properties(headers))
        if (session.generation, queue) not in self._declared:
            await self._declare(session, entry.topic)
        try:
            await session.publish(message)
        except aiormq.exceptions.PublishError:
            # Someone deleted the queue behind our back: declare it again, once.
            self._declared.discard((session.generation, queue))
            await self._declare(session, entry.topic)
            try:
                await session.publish(message)
            except aiormq.exceptions.PublishError as exc:
                raise BackendUnavailableError(f"RabbitMQ DLQ {queue} is unroutable") from exc

    async def _declare(self, session: Session, topic: str) -> None:
        queue = self._names.dlq(topic)
        try:
            await declare_dlq(await session.admin_channel(), queue, self._queue_type)
        except BROKER_ERRORS as exc:
            raise unavailable("DLQ declare", exc) from exc
        await self._note_topic(session, topic)
        self._declared.add((session.generation, queue))

    async def count(self, session: Session, topic: str) -> int:
        """Entries of the topic: one passive declare, under the lock so no scan hides any."""
        async with self._locked(session, topic):
            return await ready_count(session, self._names.dlq(topic))

    async def purge_all(self, session: Session, topic: str) -> int:
        """Delete every entry of the topic at once."""
        queue = self._names.dlq(topic)
        async with self._locked(session, topic):
            if await ready_count(session, queue) == 0:
                return 0
            try:
                ok = await (await session.admin_channel()).queue_purge(queue)
            except BROKER_ERRORS as exc:
                raise unavailable("DLQ purge", exc) from exc
            return ok.message_count or 0

    @contextlib.asynccontextmanager
    async def scan(self, session: Session, topic: str) -> AsyncIterator[Snapshot]:
        """Hold every entry of the topic for the duration of the block (see module doc)."""
        queue = self._names.dlq(topic)
        async with self._locked(session, topic):
            expected = await ready_count(session, queue)
            if expected == 0:
                yield Snapshot()
                return
            try:
                async with session.scratch_channel() as channel:
                    snapshot = Snapshot(channel=channel)
                    await self._fill(channel, queue, expected, snapshot, session.publish_timeout_s)
                    yield snapshot
                    # Leaving the block closes the channel: what was not removed is requeued.
            except BROKER_ERRORS as exc:
                raise unavailable("DLQ scan", exc) from exc

    @staticmethod
    async def _fill(
        channel: aiormq.abc.AbstractChannel,
        queue: str,
        expected: int,
        snapshot: Snapshot,
        idle_timeout_s: float,
    ) -> None:
        arrived = asyncio.Event()
        seen = 0

        async def collect(message: aiormq.abc.DeliveredMessage) -> None:
            nonlocal seen
            tag = message.delivery_tag
            if tag is None or seen >= expected:
                return
            seen += 1
            arrived.set()
            try:
                snapshot.entries.append((tag, decode_entry(message.body)))
            except DECODE_ERRORS:
                logger.warning("ignoring an undecodable message in DLQ %s", queue)

        await channel.basic_qos(prefetch_count=0)
        ok = await channel.basic_consume(queue, collect)
        while seen < expected:
            arrived.clear()
            try:
                async with asyncio.timeout(idle_timeout_s):
                    await arrived.wait()
            except TimeoutError:
                break  # fewer than counted (e.g. purged meanwhile): go with what we have
        if ok.consumer_tag is not None:
            await channel.basic_cancel(ok.consumer_tag)

    @contextlib.asynccontextmanager
    async def _locked(self, session: Session, topic: str) -> AsyncIterator[None]:
        lock_name = self._names.dlq_lock(topic)
        local = self._local_locks.setdefault(lock_name, asyncio.Lock())
        async with local:
            await self._acquire(session, lock_name)
            try:
                yield
            finally:
                await self._release(session, lock_name)

    @staticmethod
    async def _acquire(session: Session, lock_name: str) -> None:
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                async with session.scratch_channel() as channel:
                    await channel.queue_declare(lock_name, exclusive=True, auto_delete=False)
                    return
            except aiormq.exceptions.ChannelLockedResource:
                if time.monotonic() > deadline:
                    raise BackendUnavailableError(
                        f"the DLQ is busy (lock {lock_name} held by another instance)"
                    ) from None
                await asyncio.sleep(_LOCK_RETRY_S)
            except BROKER_ERRORS as exc:
                raise unavailable("DLQ lock", exc) from exc

    @staticmethod
    async def _release(session: Session, lock_name: str) -> None:
        # Exclusive queues die with their connection, so a failure here cannot leak the lock
        # beyond this connection's life.
        with contextlib.suppress(*BROKER_ERRORS):
            async with session.scratch_channel() as channel:
                await channel.queue_delete(lock_name)
