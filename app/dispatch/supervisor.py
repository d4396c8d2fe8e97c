"""Keeps one delivery loop per active subscription, in step with the shared registry.

The registry lives in the adapter, so a subscription created, paused or deleted through
any instance reaches this one at the next poll (about a second), or at once when the
change was made here (:meth:`Dispatcher.poke`). A poll asks only for the registry's
version token; when it changed, only the subscriptions changed since the version last
seen are read (:meth:`~app.core.ports.RegistryPort.registry_changes`) and their workers
started, updated or stopped. The whole list is read at start, when the adapter cannot
say what changed, and every ``FULL_RESYNC_S`` as a safety net. So following ten
thousand subscriptions costs no more per second than following ten, and creating N
subscriptions costs O(N) registry reads in all, not O(N) each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from app.core.models import Subscription
from app.core.ports import RegistryChanges
from app.dispatch.context import DeliveryContext
from app.dispatch.worker import OnTrip, SubscriptionWorker
from app.gc_policy import HeapFreezer

logger = logging.getLogger("hookline.dispatch")

FULL_RESYNC_S = 300.0
"""The registry is read in full at least this often, whatever its version token says (a
safety net: the change log names every change; a full read of 10,000 subscriptions
holds the event loop for a few hundred milliseconds)."""


class Dispatcher:
    """Starts, updates and stops :class:`SubscriptionWorker` s."""

    def __init__(
        self,
        context: DeliveryContext,
        poll_interval_s: float = 1.0,
        shutdown_grace_s: float = 10.0,
    ) -> None:
        """``context`` goes to every worker; ``shutdown_grace_s`` bounds how long stop()
        waits for running attempts. ``on_trip`` (set once the services exist) pauses a
        subscription whose auto-pause policy trips.
        """
        self._context = context
        self._adapter = context.adapter
        self._metrics = context.metrics
        self._poll_interval_s = poll_interval_s
        self._shutdown_grace_s = shutdown_grace_s
        self.on_trip: OnTrip | None = None
        self._workers: dict[str, SubscriptionWorker] = {}
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._retiring: set[asyncio.Task[None]] = set()
        self._retiring_of: dict[str, asyncio.Task[None]] = {}
        """The stop of each subscription's last retired worker (a resumed one waits for it)."""
        self.heap = HeapFreezer()

    def start(self) -> None:
        """Begin following the registry."""
        self._task = asyncio.create_task(self._follow_registry(), name="dispatcher")

    def poke(self) -> None:
        """Look at the registry now (a subscription changed in this process)."""
        self._wakeup.set()

    def changed_here(self, subscription_id: str, subscription: Subscription | None) -> None:
        """A subscription was changed through this process (``None``: deleted).

        A pause or a delete halts its worker before the request is answered, so no attempt
        starts here once the client has its answer (a redrive right after a pause waits
        instead of failing again). Everything else follows at the registry look this asks
        for; other instances follow at their next poll.
        """
        if not self._stopping and (subscription is None or subscription.paused):
            self._retire(subscription_id)
        self.poke()

    def in_flight(self, subscription_id: str) -> int:
        """Attempts running in this process for one subscription."""
        worker = self._workers.get(subscription_id)
        return worker.in_flight if worker else 0

    def concurrency_window(self, subscription_id: str) -> int | None:
        """The adaptive window of one subscription in this process (None: not adaptive, or
        no delivery loop here).
        """
        worker = self._workers.get(subscription_id)
        return worker.concurrency_window if worker else None

    async def stop(self) -> None:
        """Stop leasing; let attempts finish within the grace period; hand back the rest."""
        self._stopping = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
        await asyncio.gather(
            *(w.stop(self._shutdown_grace_s) for w in self._workers.values()), *self._retiring
        )
        self._workers.clear()
        await self._context.conditions.close()

    async def _follow_registry(self) -> None:
        seen: str | None = None
        next_full = 0.0
        while not self._stopping:
            self._wakeup.clear()
            try:
                version = await self._adapter.registry_version()
                changes = None
                if seen is not None and time.monotonic() < next_full:
                    if version == seen:
                        changes = RegistryChanges(version)
                    else:
                        changes = await self._adapter.registry_changes(seen)
                if changes is None:
                    # Read after the version: a change in between is in the list and
                    # is also applied again (idempotently) from the change log next time.
                    await self.sync(await self._adapter.list_subscriptions())
                    seen, next_full = version, time.monotonic() + FULL_RESYNC_S
                else:
                    await self._apply_changes(changes.subscription_ids)
                    seen = changes.version
            except Exception as exc:  # noqa: BLE001 - keep following through outages
                logger.warning("cannot read subscriptions: %s", exc)
                seen = None
            if self._stopping or self._wakeup.is_set():
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self._poll_interval_s)

    def _forget_retired(self, task: asyncio.Task[None]) -> None:
        for sub_id in [k for k, t in self._retiring_of.items() if t is task]:
            del self._retiring_of[sub_id]

    async def sync(self, subscriptions: list[Subscription]) -> None:
        """Make the running workers match ``subscriptions`` (paused ones get none)."""
        if self._stopping:
            return
        self._metrics.track(subscriptions)
        wanted = {s.id: s for s in subscriptions if not s.paused}
        for sub_id in [i for i in self._workers if i not in wanted]:
            self._retire(sub_id)
        started = sum(self._run(subscription) for subscription in wanted.values())
        self.heap.grew(started)

    async def _apply_changes(self, subscription_ids: list[str]) -> None:
        """Bring the workers of these subscriptions in line with what the registry holds."""
        started = 0
        for sub_id in subscription_ids:
            subscription = await self._adapter.get_subscription(sub_id)
            if self._stopping:
                return
            if subscription is None:
                self._metrics.forget({sub_id})
                self._retire(sub_id)
                continue
            self._metrics.follow(subscription)
            if subscription.paused:
                self._retire(sub_id)
            else:
                started += self._run(subscription)
        self.heap.grew(started)

    def _run(self, subscription: Subscription) -> bool:
        """Start the subscription's worker (True), or hand it a changed definition."""
        existing = self._workers.get(subscription.id)
        if existing is None:
            worker = SubscriptionWorker(subscription, self._context, on_trip=self.on_trip)
            self._workers[subscription.id] = worker
            worker.start(after=self._retiring_of.get(subscription.id))
            return True
        if existing.subscription != subscription:
            existing.update(subscription)
        return False

    def _retire(self, sub_id: str) -> None:
        """Paused or deleted: let its in-flight attempts finish in the background, so a
        slow receiver never holds up the other subscriptions' registry updates.
        """
        worker = self._workers.pop(sub_id, None)
        if worker is None:
            return
        worker.halt()
        retiring = asyncio.create_task(worker.stop(self._shutdown_grace_s))
        self._retiring.add(retiring)
        retiring.add_done_callback(self._retiring.discard)
        self._retiring_of[sub_id] = retiring
        retiring.add_done_callback(self._forget_retired)
