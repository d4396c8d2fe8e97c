"""The adapter contract: what a storage backend must do, and nothing more, role by role.

An adapter only stores and moves messages. Policy (which outcome means what, backoff,
conditions, signing, tracing) lives in :mod:`app.core` and :mod:`app.dispatch`. The same
contract test suite (``tests/contract``) runs against every implementation.

Each role is a small Protocol, so a service names only what it uses (the publisher
:class:`MessagePort` and :class:`IdempotencyPort`, the subscription service
:class:`RegistryPort`...); :class:`QueueAdapter` is all of them together, what an adapter
implements.

Fan-out is the adapter's job: ``publish`` gives every subscription registered on the
topic at that moment its own copy (a subscription created later sees only later
messages). ``receive`` leases copies to one subscription; each lease ends with exactly
one of ``ack``, ``retry_at``, ``dead_letter`` or ``release``. A lease that never ends
(the process died) is handed out again by durable adapters: delivery is at-least-once.
The settling calls report whether the lease was still ours, so the dispatcher counts and
logs only outcomes that were recorded.

During a backend outage ``receive`` waits out its ``wait_ms`` and returns ``[]`` (so the
dispatcher's loops resume within one wait once the backend is back), while ``publish`` and
the lease-ending calls raise :class:`~app.core.errors.BackendUnavailableError`: the
dispatcher logs it and leaves the lease to be handed out again.

Idle cost must not grow with the number of subscriptions: the dispatcher leases with
``wait_ms=0`` and, when nothing came, parks on :meth:`QueueAdapter.wait_for_work` (a local
event the adapter sets when the subscription's topic or own queue gets work), and follows
the registry through :meth:`QueueAdapter.registry_version`, reading only what changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from app.core.insight import (
    AttemptOutcome,
    AttemptPage,
    AttemptRecord,
    InsightBatch,
    InsightSettings,
    MessageInsight,
)
from app.core.models import Delivery, DlqEntry, Envelope, Subscription, TopicStats


@dataclass(slots=True)
class OutgoingMessage:
    """A message to publish, optionally not to be delivered before ``deliver_at_ms``.

    Not frozen, as :class:`~app.core.models.Envelope`: one is built per message published.
    """

    envelope: Envelope
    deliver_at_ms: int | None = None


@dataclass(frozen=True, slots=True)
class RegistryChanges:
    """The subscriptions changed (created, updated or deleted) after some registry version,
    up to and including ``version``: what an instance re-reads instead of the whole registry.
    """

    version: str
    subscription_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class DlqPage:
    """One page of DLQ entries, oldest first; ``next_cursor`` is None on the last page."""

    entries: list[DlqEntry] = field(default_factory=list)
    next_cursor: str | None = None

    @classmethod
    def first(cls, entries: list[DlqEntry], limit: int) -> DlqPage:
        """The first ``limit`` of ``entries`` (already filtered and sorted by id)."""
        page = entries[:limit]
        more = len(entries) > limit
        return cls(page, page[-1].id if more and page else None)


class Lifecycle(Protocol):
    """Connecting, closing and probing the backend."""

    name: str
    """Short name used in logs and metrics (``builtin``, ``redis``, ``rabbitmq``)."""

    shared_across_processes: bool
    """True when several hookline processes may share this backend (``--workers``)."""

    async def start(self) -> None:
        """Connect and declare what is needed; a backend that is down must not make this raise.

        Durable adapters keep trying in the background and report it through :meth:`ping`.
        """

    async def close(self) -> None:
        """Release connections; unended leases are left for redelivery."""

    async def ping(self) -> bool:
        """True when the backend answers now (drives ``/readyz``)."""


class MessagePort(Protocol):
    """Storing messages, leasing copies, ending leases."""

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        """Store messages for every subscription of their topics, all or nothing.

        Returns only once the backend holds them durably (as durable as it can be), so a
        202 is never a lie. Raises :class:`~app.core.errors.BackendUnavailableError` or
        :class:`~app.core.errors.CapacityExceededError` instead of accepting what it
        cannot keep.
        """

    async def receive(
        self, subscription: Subscription, max_count: int, wait_ms: int
    ) -> list[Delivery]:
        """Lease up to ``max_count`` due deliveries, waiting at most ``wait_ms`` for the first."""

    async def wait_for_work(self, subscription: Subscription, timeout_s: float) -> None:
        """Return once the subscription may have work, or after ``timeout_s`` at the latest.

        A hint, never a lease: the caller follows with ``receive(..., wait_ms=0)``. Work
        that arrived since the subscription's last ``receive`` began makes it return at
        once, so nothing published between that lease and this wait is slept through.
        It may return early (a scheduled copy falls due, another instance's leases may
        need taking over); it must be safe to cancel, and holds no broker connection.
        """

    async def ack(self, deliveries: Sequence[Delivery]) -> bool:
        """End leases for good: delivered, or skipped by the subscription's condition.

        True when every lease was still ours; False when one had already ended (settled
        before, its subscription deleted, its channel gone, taken over by another instance).
        """

    async def retry_at(self, delivery: Delivery, due_at_ms: int) -> bool:
        """End a lease and schedule attempt ``delivery.attempt + 1`` at ``due_at_ms``, atomically.

        The retry must be stored before the lease ends: no window in which a crash loses it.
        Returns False, scheduling nothing, when the lease was no longer ours: whoever holds
        it now decides the outcome, so the caller must not count this one.
        """

    async def dead_letter(self, delivery: Delivery, entry: DlqEntry) -> bool:
        """End a lease and keep ``entry`` in the topic's DLQ, atomically.

        Returns False, keeping nothing, when the lease was no longer ours (as ``retry_at``).
        """

    async def release(self, deliveries: Sequence[Delivery]) -> None:
        """Hand leases back untried (shutdown, pause): the same attempt is leased again."""


class DeadLetterPort(Protocol):
    """The dead-letter queue of every topic."""

    async def dlq_count(self, topic: str, subscription_id: str | None = None) -> int:
        """Number of DLQ entries of ``topic`` (of one subscription when given)."""

    async def dlq_list(
        self,
        topic: str,
        subscription_id: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> DlqPage:
        """A page of DLQ entries, oldest first, continuing after ``cursor``."""

    async def dlq_redrive(
        self,
        topic: str,
        subscription_id: str | None = None,
        ids: Sequence[str] | None = None,
    ) -> int:
        """Give entries back to the subscription that failed them, attempts reset to 1.

        Entries whose subscription no longer exists stay in the DLQ. Returns how many moved.
        """

    async def dlq_purge(
        self,
        topic: str,
        subscription_id: str | None = None,
        ids: Sequence[str] | None = None,
    ) -> int:
        """Delete DLQ entries; returns how many."""


class RegistryPort(Protocol):
    """The subscription registry, shared by every instance on the backend."""

    async def create_subscription(self, subscription: Subscription) -> None:
        """Register a new subscription; raises
        :class:`~app.core.errors.SubscriptionExistsError` on a taken id.
        """

    async def update_subscription(self, subscription: Subscription) -> None:
        """Replace a stored subscription (same id and topic)."""

    async def get_subscription(self, subscription_id: str) -> Subscription | None:
        """One subscription, or None."""

    async def list_subscriptions(self, topic: str | None = None) -> list[Subscription]:
        """All subscriptions (of one topic when given), visible to every instance."""

    async def delete_subscription(self, subscription_id: str) -> bool:
        """Remove a subscription and its pending deliveries; its DLQ entries stay."""

    async def registry_version(self) -> str:
        """A cheap token that changes whenever any instance changes the registry.

        The dispatcher polls it each second and, when it changed, asks
        :meth:`registry_changes`, so following the registry costs O(1) per poll and O(1)
        per change, not O(subscriptions).
        """

    async def registry_changes(self, since: str) -> RegistryChanges | None:
        """The ids changed after version ``since`` (each id once is enough), and the
        version they lead to; None when the adapter cannot tell (``since`` is unknown or
        older than the change log it keeps): the caller then reads the whole registry.
        """


class IdempotencyPort(Protocol):
    """Remembering ``Idempotency-Key`` s for their dedup window."""

    async def claim_idempotency_key(
        self, topic: str, key: str, message_id: str, ttl_ms: int
    ) -> str | None:
        """Remember ``key`` -> ``message_id``; returns the earlier id if the key was taken."""

    async def release_idempotency_key(self, topic: str, key: str) -> None:
        """Forget a key whose publish failed, so a retry of the request can succeed."""


class StatsPort(Protocol):
    """What the backend holds, topic by topic."""

    async def topic_stats(self, topic: str) -> TopicStats:
        """Backlog, in-flight, scheduled and DLQ figures per subscription of ``topic``."""

    async def list_topics(self) -> list[str]:
        """Topics that have subscriptions, messages or DLQ entries."""


class PublishPort(MessagePort, IdempotencyPort, Protocol):
    """What accepting a message needs: storing it and remembering its idempotency key."""


@runtime_checkable
class QueueAdapter(
    Lifecycle, MessagePort, DeadLetterPort, RegistryPort, IdempotencyPort, StatsPort, Protocol
):
    """A storage backend for hookline (builtin, Redis, RabbitMQ): every role together."""


# -- ordering keys -------------------------------------------------------------------------


@runtime_checkable
class OrderingPort(Protocol):
    """One instance at a time delivers an ``ordering: key`` subscription: its owner.

    Messages sharing an ``ordering_key`` must reach the receiver one at a time, in publish
    order, so an ordered subscription is leased by one instance only, which keeps order per
    key in memory (:mod:`app.dispatch.ordering`). What an adapter promises for a subscription
    whose ``ordered`` is true:

    - ``receive`` leases nothing unless :meth:`claim_order` last answered True here, and
      leases in publish order (a delayed, retried-by-schedule, released, redriven or resent
      copy takes its place when it is leased, as any other);
    - a copy leased by the owner stays leased until settled, however long (no visibility
      timeout hands it to anyone while the owner holds its ownership): a keyed retry is
      held in memory with its lease, never rescheduled (that would put it behind later
      messages of its key);
    - when ownership moves (the owner stopped renewing: it died, or gave it up), the new
      owner's first leases are the previous owner's unsettled copies, in publish order,
      before anything newer; ``release`` puts copies back ahead of newer ones, in the
      order given.

    An adapter that is never shared by several processes (builtin) owns everything: it
    need not implement this role.
    """

    async def claim_order(self, subscription: Subscription) -> bool:
        """Take, or renew, this instance's ownership of ``subscription``; True if held.

        Called about every :data:`~app.core.ordering.OWNERSHIP_RENEW_S` by the worker; an
        ownership not renewed for :data:`~app.core.ordering.OWNERSHIP_TTL_MS` lapses.
        """

    async def release_order(self, subscription: Subscription) -> None:
        """Give ownership up now (the worker stopped, its leases handed back)."""


# -- delivery insight ------------------------------------------------------------------------


@runtime_checkable
class InsightStore(Protocol):
    """Keeps what the dispatcher recorded about messages, for ``retention_ms``, bounded.

    Facts come from :mod:`app.core.insight` in :class:`InsightBatch` es written by one
    buffered recorder per process (never on the hot path of a delivery). Everything the
    API shows is derived from what :meth:`get_message` and :meth:`list_attempts` return,
    so a new adapter (SQLite...) implements these six methods and nothing else
    (``tests/contract/test_insight_contract.py`` then tells whether it is right):

    - every instance sharing the backend must see every instance's facts;
    - storage must stay bounded under any load: facts older than ``retention_ms`` go,
      attempts per (message, subscription) and per subscription are capped (newest kept);
    - a write may be lost in an outage (it is a log, not the queue): raise, the recorder
      logs it and drops the batch.
    """

    async def open(self) -> None:
        """Start following the shared log (RabbitMQ) or nothing; called once, after the
        adapter's own ``start``.
        """

    async def close(self) -> None:
        """Stop following; nothing to flush (the recorder flushes before)."""

    async def write(self, batch: InsightBatch) -> None:
        """Keep one batch of facts: messages, attempts, then marks.

        The recorder already reduced the batch's marks to the newest per (message,
        subscription) (an attempt's own mark included): each replaces the stored one.
        Batches arrive in the order they happened in this process.
        """

    async def get_message(self, message_id: str) -> MessageInsight | None:
        """What is known of one message across every instance, or None."""

    async def list_attempts(
        self,
        topic: str,
        subscription_id: str,
        *,
        outcome: AttemptOutcome | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> AttemptPage:
        """One subscription's attempts, newest first, continuing after ``cursor``."""

    async def recent_attempts(
        self, topic: str, subscription_id: str, limit: int
    ) -> list[AttemptRecord]:
        """The newest ``limit`` attempts of a subscription, newest first (health figures)."""


@runtime_checkable
class InsightAdapter(Protocol):
    """What delivery insight, parking and resend need of a queue adapter beyond the queue."""

    def insight_store(self, settings: InsightSettings) -> InsightStore:
        """The backend's :class:`InsightStore` (shared by every instance on the backend)."""

    async def requeue(self, subscription: Subscription, envelope: Envelope) -> None:
        """Give ``subscription`` one more copy of ``envelope`` at attempt 1 (resend).

        The copy is delivered like any other (same id, so the same ``webhook-id``),
        whatever happened to earlier copies.
        """

    async def park_scheduled(self, subscription: Subscription) -> int:
        """Make the subscription's scheduled retries due now; returns how many moved.

        Called when a subscription is paused automatically: its retries then wait in its
        backlog with everything else (a paused subscription's backlog is not leased: it is
        the parked set), so resume delivers all of them at once, at ``max_in_flight``.
        An adapter that cannot reach into its schedule returns 0: its retries join the
        parked backlog when they come due.
        """
