"""The dispatcher's heap freezer (issue 11): after a burst of new workers the long-lived
heap leaves the collector's full passes, which stalled a 10,000-subscription fan-out.
"""

from __future__ import annotations

import gc

from app.dispatch.heap import HeapFreezer


def test_freezes_once_enough_new_workers_accumulated() -> None:
    freezer = HeapFreezer(after=100)
    before = gc.get_freeze_count()
    try:
        freezer.grew(60)
        assert freezer.freezes == 0
        assert gc.get_freeze_count() == before
        kept = [object() for _ in range(10)]  # noqa: F841 - live state to be frozen
        tracked = [[i] for i in range(1000)]
        freezer.grew(40)
        assert freezer.freezes == 1
        assert gc.get_freeze_count() >= before + len(tracked)
        freezer.grew(99)
        assert freezer.freezes == 1, "the count starts again after each freeze"
    finally:
        gc.unfreeze()
