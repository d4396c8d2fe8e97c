"""Slots on the wire for an ordered subscription's worker, handed out first come, first served.

An ordered worker leases up to its hold bound (several times ``max_in_flight``) so that
busy keys do not starve the others; only ``max_in_flight`` of those may be attempted at
once. Each attempt takes a slot here; one that finds none waits in line (a future, woken
in O(1) when a slot frees), so thousands of waiting attempts cost nothing while they wait.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable


class WireSlots:
    """A counting gate whose size (``limit()``) may change at any time."""

    def __init__(self, limit: Callable[[], int]) -> None:
        """``limit``: how many attempts may be on the wire now (read at every hand-out)."""
        self._limit = limit
        self._used = 0
        self._line: deque[asyncio.Future[None]] = deque()
        self.closed = False
        """Set by :meth:`close`: nobody gets a slot any more."""

    async def acquire(self) -> bool:
        """Wait for a slot; False (holding none) once closed."""
        if self.closed:
            return False
        if self._used < self._limit() and not self._line:
            self._used += 1
            return True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._line.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()
            raise
        if self.closed:
            self.release()
            return False
        return True

    def release(self) -> None:
        """Give a slot back; the next in line gets it."""
        self._used -= 1
        self.pump()

    def pump(self) -> None:
        """Hand free slots to those waiting, oldest first (also after the limit grew)."""
        while self._line and self._used < self._limit():
            self._hand_out()

    def close(self) -> None:
        """Stopping: everyone waiting is let through at once, sees ``closed`` and leaves."""
        self.closed = True
        while self._line:
            self._hand_out()

    def _hand_out(self) -> None:
        waiter = self._line.popleft()
        if not waiter.done():
            self._used += 1
            waiter.set_result(None)
