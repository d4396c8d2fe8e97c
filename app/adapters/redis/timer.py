"""Moves scheduled copies into their subscription's stream the moment they are due.

Retries and delayed publishes wait in a sorted set per subscription. Every ``receive``
also moves what is due, but a receiver may be blocked for its whole wait; this timer
promotes each copy at its due time, and the XADD wakes the blocked receiver at once, so
delivery lands within a few milliseconds of the due time instead of at the next poll.
It learns due times from this process's own retries and publishes and from what each
``receive`` reports, so copies scheduled by a process that died are found as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from collections.abc import Awaitable, Callable

from app.core.errors import BackendUnavailableError
from app.core.models import now_ms

logger = logging.getLogger("hookline.redis")

Promote = Callable[[str, str], Awaitable[int | None]]
"""``(topic, subscription_id) -> next due time (ms) or None``."""

_RETRY_AFTER_OUTAGE_MS = 500


class DueTimer:
    """One timer for all subscriptions of this process."""

    def __init__(self, promote: Promote) -> None:
        """``promote`` moves due copies and returns the next due time."""
        self._promote = promote
        self._due: dict[tuple[str, str], int] = {}
        self._heap: list[tuple[int, str, str]] = []
        self._changed = asyncio.Event()

    def notify(self, topic: str, subscription_id: str, due_ms: int) -> None:
        """Something of this subscription is due at ``due_ms``."""
        key = (topic, subscription_id)
        current = self._due.get(key)
        if current is not None and current <= due_ms:
            return
        self._due[key] = due_ms
        heapq.heappush(self._heap, (due_ms, topic, subscription_id))
        self._changed.set()

    def forget(self, topic: str, subscription_id: str) -> None:
        """Stop tracking a deleted subscription."""
        self._due.pop((topic, subscription_id), None)

    def _pop_due(self) -> list[tuple[str, str]]:
        now = now_ms()
        due: list[tuple[str, str]] = []
        while self._heap and self._heap[0][0] <= now:
            at, topic, sub_id = heapq.heappop(self._heap)
            if self._due.get((topic, sub_id)) == at:
                del self._due[(topic, sub_id)]
                due.append((topic, sub_id))
        return due

    async def _fire(self, topic: str, subscription_id: str) -> None:
        try:
            next_due = await self._promote(topic, subscription_id)
        except BackendUnavailableError:
            next_due = now_ms() + _RETRY_AFTER_OUTAGE_MS
        except Exception:
            logger.exception("promoting scheduled deliveries of %s failed", subscription_id)
            next_due = now_ms() + _RETRY_AFTER_OUTAGE_MS
        if next_due is not None:
            self.notify(topic, subscription_id, next_due)

    async def run(self) -> None:
        """Sleep until the earliest due time, promote, repeat (cancelled at close)."""
        while True:
            due = self._pop_due()
            if due:
                await asyncio.gather(*(self._fire(t, s) for t, s in due))
                continue
            timeout = None
            if self._heap:
                timeout = max(0.0, (self._heap[0][0] - now_ms() + 1) / 1000)
            self._changed.clear()
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancel that
            # lands as the event fires, which would keep this loop alive after close().
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._changed.wait()
