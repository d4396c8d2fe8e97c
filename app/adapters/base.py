"""The adapter contract: what a storage backend must do, and nothing more.

An adapter only stores and moves messages. Policy (which outcome means what, backoff,
conditions, signing, tracing) lives in :mod:`app.core` and :mod:`app.dispatch`. The same
contract test suite (``tests/contract``) runs against every implementation.

Fan-out is the adapter's job: ``publish`` gives every subscription registered on the
topic at that moment its own copy (a subscription created later sees only later
messages). ``receive`` leases copies to one subscription; each lease ends with exactly
one of ``ack``, ``retry_at``, ``dead_letter`` or ``release``. A lease that never ends
(the process died) is handed out again by durable adapters: delivery is at-least-once.
The settling calls report whether the lease was still ours, so the dispatcher counts and
logs only outcomes that were recorded.

During a backend outage ``receive`` waits out its ``wait_ms`` and returns ``[]`` (so the
dispatcher's loops resume within one wait once the backend is back), while ``publish`` and
the lease-ending calls raise :class:`BackendUnavailableError`: the dispatcher logs it and
leaves the lease to be handed out again.

Idle cost must not grow with the number of subscriptions: the dispatcher leases with
``wait_ms=0`` and, when nothing came, parks on :meth:`QueueAdapter.wait_for_work` (a local
event the adapter sets when the subscription's topic or own queue gets work), and follows
the registry through :meth:`QueueAdapter.registry_version`, re-reading it only on change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from app.core.models import Delivery, DlqEntry, Envelope, Subscription, TopicStats


class AdapterError(Exception):
    """Base class for errors an adapter raises on purpose."""


class BackendUnavailableError(AdapterError):
    """The backend cannot be reached right now; the API answers 503 and nothing is accepted."""


class CapacityExceededError(AdapterError):
    """The adapter is full (the builtin adapter's bound); the API answers 503."""


class SubscriptionExistsError(AdapterError):
    """A subscription with this id already exists; the API answers 409."""


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A message to publish, optionally not to be delivered before ``deliver_at_ms``."""

    envelope: Envelope
    deliver_at_ms: int | None = None


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


@runtime_checkable
class QueueAdapter(Protocol):
    """A storage backend for hookline (builtin, Redis, RabbitMQ)."""

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

    # -- messages -------------------------------------------------------------------------

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        """Store messages for every subscription of their topics, all or nothing.

        Returns only once the backend holds them durably (as durable as it can be), so a
        202 is never a lie. Raises :class:`BackendUnavailableError` or
        :class:`CapacityExceededError` instead of accepting what it cannot keep.
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

    # -- dead-letter queue ---------------------------------------------------------------

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

    # -- subscription registry -----------------------------------------------------------

    async def create_subscription(self, subscription: Subscription) -> None:
        """Register a new subscription; raises :class:`SubscriptionExistsError` on a taken id."""

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

        The dispatcher polls it each second and calls :meth:`list_subscriptions` only when
        it changed, so following the registry costs O(1) per poll, not O(subscriptions).
        """

    # -- idempotency ----------------------------------------------------------------------

    async def claim_idempotency_key(
        self, topic: str, key: str, message_id: str, ttl_ms: int
    ) -> str | None:
        """Remember ``key`` -> ``message_id``; returns the earlier id if the key was taken."""

    async def release_idempotency_key(self, topic: str, key: str) -> None:
        """Forget a key whose publish failed, so a retry of the request can succeed."""

    # -- introspection -------------------------------------------------------------------

    async def topic_stats(self, topic: str) -> TopicStats:
        """Backlog, in-flight, scheduled and DLQ figures per subscription of ``topic``."""

    async def list_topics(self) -> list[str]:
        """Topics that have subscriptions, messages or DLQ entries."""
