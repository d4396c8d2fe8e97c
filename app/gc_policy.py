"""The process's garbage-collector policy: keep CPython's cyclic collector off what lives
as long as the process.

**At start** (:func:`settle_heap`).
CPython's cyclic collector pauses the whole event loop while it scans. With the default
thresholds a server that allocates a few hundred containers per request runs a young
collection every few hundred requests and a full one every few seconds, and a full one
scans everything alive: the modules, FastAPI/pydantic's schemas and validators, the
configuration (~100k objects before the first request), plus whatever the process keeps
(backlog, insight). Measured under the open-loop sweep, full collections paused the loop
for 100-800 ms each: the p99 publish-to-receipt latency, not the work itself.

So, once the app is built: everything alive then is frozen (``gc.freeze``: never scanned
again; it lives as long as the process anyway), and the young generation is collected
every ``YOUNG_THRESHOLD`` net allocations instead of 700, which makes full collections
about 14 times rarer. Reference counting still frees everything acyclic at once; only
cyclic garbage waits longer for a collection.

**While serving** (:class:`HeapFreezer`).
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

YOUNG_THRESHOLD = 10_000
"""Net container allocations between two young collections (CPython's default: 700)."""


def settle_heap() -> None:
    """Freeze what the process built at start and space the collections out (call once,
    after the app is built, before serving).
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)


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
