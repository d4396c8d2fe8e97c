# Over 350 lines on purpose: one in-memory adapter; every method shares its state.
"""The embedded adapter: asyncio, in-process, no external service (the default).

It keeps messages while the process runs; a restart loses them, which is why Redis and
RabbitMQ exist. It enforces a bound on what it holds (messages and bytes) so an outage
of a receiver turns into 503s for publishers instead of an out-of-memory kill.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from app.adapters.builtin_settings import BuiltinSettings
from app.adapters.kit.change_log import ChangeLog
from app.adapters.kit.dlq import DlqFilter, first_page
from app.adapters.kit.insight_memory import MemoryInsightStore
from app.core.codec import encode_json
from app.core.errors import CapacityExceededError, SubscriptionExistsError
from app.core.insight import InsightSettings
from app.core.models import (
    Delivery,
    DlqEntry,
    Envelope,
    Subscription,
    SubscriptionStats,
    TopicStats,
    now_ms,
)
from app.core.ports import DlqPage, OutgoingMessage, RegistryChanges


@dataclass(slots=True)
class _Copy:
    """One subscription's copy of a message, with the attempt it is on."""

    envelope: Envelope
    attempt: int


@dataclass(slots=True)
class _SubscriptionQueue:
    """Ready, scheduled and leased copies of one subscription."""

    topic: str
    ready: deque[_Copy] = field(default_factory=deque)
    scheduled: list[tuple[int, int, _Copy]] = field(default_factory=list)
    leased: dict[int, _Copy] = field(default_factory=dict)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)


class BuiltinQueueAdapter:
    """In-memory implementation of :class:`app.core.ports.QueueAdapter`."""

    name = "builtin"
    shared_across_processes = False

    def __init__(self, settings: BuiltinSettings | None = None) -> None:
        """``settings`` bound the distinct messages held (see :class:`BuiltinSettings`)."""
        settings = settings or BuiltinSettings()
        self._max_messages = settings.max_messages
        self._max_bytes = settings.max_bytes
        self._subscriptions: dict[str, Subscription] = {}
        self._queues: dict[str, _SubscriptionQueue] = {}
        self._by_topic: dict[str, dict[str, _SubscriptionQueue]] = {}
        self._changes = ChangeLog()
        self._dlq: dict[str, dict[str, DlqEntry]] = {}
        self._idempotency: dict[tuple[str, str], tuple[str, float]] = {}
        self._topics: set[str] = set()
        self._refs: dict[str, list[int]] = {}  # message id -> [references, bytes]
        self._insight: MemoryInsightStore | None = None
        self._held_bytes = 0
        self._lease_ids = itertools.count(1)
        self._sequence = itertools.count()

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Nothing to connect to."""

    async def close(self) -> None:
        """Wake any waiting receiver so it can notice shutdown."""
        for queue in self._queues.values():
            queue.wakeup.set()

    async def ping(self) -> bool:
        """Always reachable: it lives in this process."""
        return True

    @property
    def held_messages(self) -> int:
        """Distinct messages currently held."""
        return len(self._refs)

    @property
    def held_bytes(self) -> int:
        """Approximate bytes of message data currently held."""
        return self._held_bytes

    # -- reference counting (the bound) -------------------------------------------------

    def _hold(self, envelope: Envelope, size: int) -> None:
        ref = self._refs.get(envelope.id)
        if ref is None:
            self._refs[envelope.id] = [1, size]
            self._held_bytes += size
        else:
            ref[0] += 1

    def _drop(self, envelope: Envelope) -> None:
        ref = self._refs.get(envelope.id)
        if ref is None:
            return
        ref[0] -= 1
        if ref[0] <= 0:
            del self._refs[envelope.id]
            self._held_bytes -= ref[1]
            if self._insight is not None:
                self._insight.release(envelope)

    @staticmethod
    def _size(envelope: Envelope) -> int:
        return len(encode_json(envelope.data)) + 200

    # -- messages -----------------------------------------------------------------------

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        """Fan each message out to the current subscriptions of its topic.

        Per message only what is its own is done (its size, its copies); the targets are
        looked up once per topic and each queue is woken once.
        """
        targets_of: dict[str, list[_SubscriptionQueue]] = {}
        plan: list[tuple[OutgoingMessage, list[_SubscriptionQueue], int]] = []
        new_bytes = 0
        size = self._size
        for outgoing in messages:
            topic = outgoing.envelope.topic
            targets = targets_of.get(topic)
            if targets is None:
                targets = targets_of[topic] = list(self._by_topic.get(topic, {}).values())
            if targets:
                held = size(outgoing.envelope)
                new_bytes += held
                plan.append((outgoing, targets, held))
        if (
            len(self._refs) + len(plan) > self._max_messages
            or self._held_bytes + new_bytes > self._max_bytes
        ):
            raise CapacityExceededError(
                f"builtin adapter is full ({len(self._refs)} messages, {self._held_bytes} bytes "
                f"held; limits {self._max_messages} messages, {self._max_bytes} bytes): "
                "receivers are behind, retry later"
            )
        self._topics.update(targets_of)
        self._enqueue(plan)
        for targets in targets_of.values():
            for queue in targets:
                queue.wakeup.set()

    def _enqueue(self, plan: list[tuple[OutgoingMessage, list[_SubscriptionQueue], int]]) -> None:
        """Hold each planned message (its copies, its bytes) and queue a copy per target."""
        now = now_ms()
        refs = self._refs
        for outgoing, targets, held in plan:
            envelope = outgoing.envelope
            ref = refs.get(envelope.id)
            if ref is None:
                refs[envelope.id] = [len(targets), held]
                self._held_bytes += held
            else:
                ref[0] += len(targets)
            due = outgoing.deliver_at_ms
            if due is not None and due > now:
                for queue in targets:
                    entry = (due, next(self._sequence), _Copy(envelope, 1))
                    heapq.heappush(queue.scheduled, entry)
            else:
                for queue in targets:
                    queue.ready.append(_Copy(envelope, 1))

    def _schedule(self, queue: _SubscriptionQueue, copy: _Copy, due_at_ms: int) -> None:
        heapq.heappush(queue.scheduled, (due_at_ms, next(self._sequence), copy))
        queue.wakeup.set()

    @staticmethod
    def _promote_due(queue: _SubscriptionQueue) -> int | None:
        """Move due scheduled copies to ready; return ms until the next one is due."""
        now = now_ms()
        while queue.scheduled and queue.scheduled[0][0] <= now:
            _, _, copy = heapq.heappop(queue.scheduled)
            queue.ready.append(copy)
        if queue.scheduled:
            return queue.scheduled[0][0] - now
        return None

    async def receive(
        self, subscription: Subscription, max_count: int, wait_ms: int
    ) -> list[Delivery]:
        """Lease up to ``max_count`` ready copies, waiting for one at most ``wait_ms``."""
        queue = self._queues.get(subscription.id)
        if queue is None:
            await asyncio.sleep(wait_ms / 1000)
            return []
        deadline = time.monotonic() + wait_ms / 1000
        while True:
            # Cleared before looking: whatever arrives from now on sets it again, so a
            # wait_for_work after an empty receive cannot sleep through it.
            queue.wakeup.clear()
            self._promote_due(queue)
            if queue.ready:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            await self._wait(queue, remaining)
            if self._queues.get(subscription.id) is not queue:
                return []
        deliveries = []
        for _ in range(min(max_count, len(queue.ready))):
            copy = queue.ready.popleft()
            lease = next(self._lease_ids)
            queue.leased[lease] = copy
            deliveries.append(Delivery(subscription.id, copy.envelope, copy.attempt, lease))
        return deliveries

    async def wait_for_work(self, subscription: Subscription, timeout_s: float) -> None:
        """Wait on the subscription's own event (set by publish, retry, release, redrive)."""
        queue = self._queues.get(subscription.id)
        if queue is None:
            await asyncio.sleep(timeout_s)
            return
        await self._wait(queue, timeout_s)

    async def _wait(self, queue: _SubscriptionQueue, timeout_s: float) -> None:
        """Until the queue is woken, its next scheduled copy is due, or ``timeout_s``."""
        if queue.ready or queue.wakeup.is_set():
            return
        if queue.scheduled:
            timeout_s = min(timeout_s, max(0.0, (queue.scheduled[0][0] - now_ms()) / 1000))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await queue.wakeup.wait()

    def _end_lease(self, delivery: Delivery) -> tuple[_SubscriptionQueue, _Copy] | None:
        queue = self._queues.get(delivery.subscription_id)
        if queue is None:
            return None
        copy = queue.leased.pop(delivery.receipt, None)
        if copy is None:
            return None
        return queue, copy

    async def ack(self, deliveries: Sequence[Delivery]) -> bool:
        """Forget delivered (or filtered) copies; False if any lease had already ended."""
        ours = True
        for delivery in deliveries:
            ended = self._end_lease(delivery)
            if ended is None:
                ours = False
            else:
                self._drop(ended[1].envelope)
        return ours

    async def retry_at(self, delivery: Delivery, due_at_ms: int) -> bool:
        """Reschedule the copy for its next attempt; False if the lease had already ended."""
        ended = self._end_lease(delivery)
        if ended is None:
            return False
        queue, copy = ended
        copy.attempt = delivery.attempt + 1
        self._schedule(queue, copy, due_at_ms)
        return True

    async def dead_letter(self, delivery: Delivery, entry: DlqEntry) -> bool:
        """Move the copy into the topic's DLQ (the DLQ entry keeps the message held)."""
        ended = self._end_lease(delivery)
        if ended is None:
            return False
        self._dlq.setdefault(entry.topic, {})[entry.id] = entry
        self._topics.add(entry.topic)
        # The lease's reference now belongs to the DLQ entry: no _drop here.
        return True

    async def release(self, deliveries: Sequence[Delivery]) -> None:
        """Put untried copies back at the head of their queue."""
        for delivery in reversed(deliveries):
            ended = self._end_lease(delivery)
            if ended is None:
                continue
            queue, copy = ended
            queue.ready.appendleft(copy)
            queue.wakeup.set()

    # -- dead-letter queue ---------------------------------------------------------------

    def _select(self, topic: str, selection: DlqFilter) -> list[DlqEntry]:
        entries = self._dlq.get(topic, {})
        if selection.ids is None:
            return selection.select(entries.values())
        return selection.select(entries[i] for i in sorted(selection.ids) if i in entries)

    async def dlq_count(self, topic: str, subscription_id: str | None = None) -> int:
        """Count entries (linear in the topic's DLQ, which lives in memory)."""
        if subscription_id is None:
            return len(self._dlq.get(topic, {}))
        return len(self._select(topic, DlqFilter.of(subscription_id)))

    async def dlq_list(
        self,
        topic: str,
        subscription_id: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> DlqPage:
        """Entries after ``cursor`` (an entry id; ids sort by failure time)."""
        return first_page(self._select(topic, DlqFilter.of(subscription_id, after=cursor)), limit)

    async def dlq_redrive(
        self,
        topic: str,
        subscription_id: str | None = None,
        ids: Sequence[str] | None = None,
    ) -> int:
        """Requeue entries to the subscription that failed them, attempt 1."""
        moved = 0
        for entry in self._select(topic, DlqFilter.of(subscription_id, ids)):
            queue = self._queues.get(entry.subscription_id)
            if queue is None:
                continue
            del self._dlq[topic][entry.id]
            queue.ready.append(_Copy(entry.message, 1))
            queue.wakeup.set()
            moved += 1
        return moved

    async def dlq_purge(
        self,
        topic: str,
        subscription_id: str | None = None,
        ids: Sequence[str] | None = None,
    ) -> int:
        """Delete entries and release what they held."""
        chosen = self._select(topic, DlqFilter.of(subscription_id, ids))
        for entry in chosen:
            del self._dlq[topic][entry.id]
            self._drop(entry.message)
        return len(chosen)

    # -- subscription registry -----------------------------------------------------------

    async def create_subscription(self, subscription: Subscription) -> None:
        """Register and give it an empty queue."""
        if subscription.id in self._subscriptions:
            raise SubscriptionExistsError(subscription.id)
        self._subscriptions[subscription.id] = subscription
        queue = _SubscriptionQueue(subscription.topic)
        self._queues[subscription.id] = queue
        self._by_topic.setdefault(subscription.topic, {})[subscription.id] = queue
        self._topics.add(subscription.topic)
        self._changes.record(subscription.id)

    async def update_subscription(self, subscription: Subscription) -> None:
        """Replace the stored definition; its queue is kept."""
        self._subscriptions[subscription.id] = subscription
        queue = self._queues.setdefault(subscription.id, _SubscriptionQueue(subscription.topic))
        self._by_topic.setdefault(queue.topic, {})[subscription.id] = queue
        self._changes.record(subscription.id)

    async def get_subscription(self, subscription_id: str) -> Subscription | None:
        """Look one up."""
        return self._subscriptions.get(subscription_id)

    async def list_subscriptions(self, topic: str | None = None) -> list[Subscription]:
        """All, or those of one topic, in creation order."""
        subs = list(self._subscriptions.values())
        return subs if topic is None else [s for s in subs if s.topic == topic]

    async def registry_version(self) -> str:
        """A counter bumped by every registry change (in-process)."""
        return str(self._changes.version)

    async def registry_changes(self, since: str) -> RegistryChanges | None:
        """From the in-process change log."""
        return self._changes.since(since)

    async def delete_subscription(self, subscription_id: str) -> bool:
        """Drop it and everything queued for it (its DLQ entries stay)."""
        if self._subscriptions.pop(subscription_id, None) is None:
            return False
        self._changes.record(subscription_id)
        queue = self._queues.pop(subscription_id, None)
        if queue is not None:
            self._by_topic.get(queue.topic, {}).pop(subscription_id, None)
            if not self._by_topic.get(queue.topic, True):
                del self._by_topic[queue.topic]
            for copy in itertools.chain(
                queue.ready, (c for _, _, c in queue.scheduled), queue.leased.values()
            ):
                self._drop(copy.envelope)
            queue.wakeup.set()
        return True

    # -- idempotency ----------------------------------------------------------------------

    async def claim_idempotency_key(
        self, topic: str, key: str, message_id: str, ttl_ms: int
    ) -> str | None:
        """Remember the key in a dict (expired keys are swept as the dict grows)."""
        now = time.monotonic()
        existing = self._idempotency.get((topic, key))
        if existing is not None and existing[1] > now:
            return existing[0]
        if len(self._idempotency) > 10_000 and len(self._idempotency) % 1000 == 0:
            self._idempotency = {k: v for k, v in self._idempotency.items() if v[1] > now}
        self._idempotency[(topic, key)] = (message_id, now + ttl_ms / 1000)
        return None

    async def release_idempotency_key(self, topic: str, key: str) -> None:
        """Forget a key."""
        self._idempotency.pop((topic, key), None)

    # -- delivery insight, parking, resend ------------------------------------------------

    def insight_store(self, settings: InsightSettings) -> MemoryInsightStore:
        """Insight in this process's memory, bounded (nothing else could see it anyway).

        It shares the envelope objects the queues hold instead of copying them (one body
        per message, not two) and is told when a message is let go of (see ``_drop``).
        """
        self._insight = MemoryInsightStore(settings, held=self._refs.__contains__)
        return self._insight

    async def requeue(self, subscription: Subscription, envelope: Envelope) -> None:
        """Append a fresh copy (attempt 1) to the subscription's queue."""
        queue = self._queues.get(subscription.id)
        if queue is None:
            return
        self._hold(envelope, self._size(envelope))
        queue.ready.append(_Copy(envelope, 1))
        queue.wakeup.set()

    async def park_scheduled(self, subscription: Subscription) -> int:
        """Scheduled copies join the ready queue (not leased while paused), oldest first."""
        queue = self._queues.get(subscription.id)
        if queue is None or not queue.scheduled:
            return 0
        moved = [copy for _, _, copy in queue.scheduled]
        queue.scheduled.clear()
        everything = sorted([*queue.ready, *moved], key=lambda c: c.envelope.published_at)
        queue.ready = deque(everything)
        queue.wakeup.set()
        return len(moved)

    # -- introspection -------------------------------------------------------------------

    async def topic_stats(self, topic: str) -> TopicStats:
        """Live figures straight from the queues."""
        dlq = self._dlq.get(topic, {})
        per_sub: dict[str, int] = {}
        for entry in dlq.values():
            per_sub[entry.subscription_id] = per_sub.get(entry.subscription_id, 0) + 1
        stats = []
        for sub_id, queue in self._queues.items():
            if queue.topic != topic:
                continue
            stats.append(
                SubscriptionStats(
                    subscription_id=sub_id,
                    backlog=len(queue.ready),
                    in_flight=len(queue.leased),
                    scheduled=len(queue.scheduled),
                    dlq=per_sub.get(sub_id, 0),
                )
            )
        return TopicStats(topic=topic, subscriptions=stats, dlq=len(dlq))

    async def list_topics(self) -> list[str]:
        """Topics seen by publish, subscriptions or the DLQ."""
        return sorted(self._topics)
