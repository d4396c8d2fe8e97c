"""Keeps one delivery loop per active subscription, in step with the shared registry.

The registry lives in the adapter, so a subscription created, paused or deleted through
any instance reaches this one at the next poll (about a second), or at once when the
change was made here (:meth:`Dispatcher.poke`). A poll asks only for the registry's
version token; the whole list is read (and compared with the running workers) when the
token changed, on a poke, and every ``FULL_RESYNC_S`` as a safety net, so following ten
thousand subscriptions costs no more per second than following ten.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from app.core.models import Subscription
from app.dispatch.context import DeliveryContext
from app.dispatch.worker import OnTrip, SubscriptionWorker

logger = logging.getLogger("hookline.dispatch")

FULL_RESYNC_S = 60.0
"""The registry is read in full at least this often, whatever its version token says."""


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

    def start(self) -> None:
        """Begin following the registry."""
        self._task = asyncio.create_task(self._follow_registry(), name="dispatcher")

    def poke(self) -> None:
        """Re-read the registry now (a subscription changed in this process)."""
        self._wakeup.set()

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
            poked = self._wakeup.is_set()
            self._wakeup.clear()
            try:
                version = await self._adapter.registry_version()
                if poked or version != seen or time.monotonic() >= next_full:
                    await self.sync(await self._adapter.list_subscriptions())
                    seen, next_full = version, time.monotonic() + FULL_RESYNC_S
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
            # Paused or deleted: let its in-flight attempts finish in the background, so a
            # slow receiver never holds up the other subscriptions' registry updates.
            retiring = asyncio.create_task(self._workers.pop(sub_id).stop(self._shutdown_grace_s))
            self._retiring.add(retiring)
            retiring.add_done_callback(self._retiring.discard)
            self._retiring_of[sub_id] = retiring
            retiring.add_done_callback(self._forget_retired)
        for sub_id, subscription in wanted.items():
            existing = self._workers.get(sub_id)
            if existing is None:
                worker = SubscriptionWorker(subscription, self._context, on_trip=self.on_trip)
                self._workers[sub_id] = worker
                worker.start(after=self._retiring_of.get(sub_id))
            elif existing.subscription != subscription:
                existing.update(subscription)
