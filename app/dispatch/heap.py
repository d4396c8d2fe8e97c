"""Keeps the garbage collector off the dispatcher's long-lived heap.

Every subscription holds a worker with its tasks, events and metric children: with ten
thousand subscriptions that is millions of objects that live as long as the process.
CPython's full collection walks all of them whenever the long-lived heap grew by a
quarter, which a fan-out burst does (new metric children, attempt records): measured,
one such pass stopped the event loop for 0.4-0.8 s with 10,000 subscriptions, in the
middle of a 1,000-delivery fan-out. After a burst of new workers the heap is frozen
(:func:`gc.freeze`): what exists then is left out of later collections, which then only
look at what is new. Objects freed later are still freed by reference counting.
"""

from __future__ import annotations

import gc

FREEZE_AFTER = 200
"""New workers since the last freeze that make the next one worth it."""


class HeapFreezer:
    """Counts new long-lived state and freezes the heap once enough of it accumulated."""

    def __init__(self, after: int = FREEZE_AFTER) -> None:
        """``after``: new workers between two freezes."""
        self._after = after
        self._grown = 0
        self.freezes = 0

    def grew(self, workers: int) -> None:
        """``workers`` new workers were started; freeze when enough accumulated."""
        self._grown += workers
        if self._grown < self._after:
            return
        self._grown = 0
        gc.collect(1)  # young garbage is dropped, not frozen with the rest
        gc.freeze()
        self.freezes += 1
