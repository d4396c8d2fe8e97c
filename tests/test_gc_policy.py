"""The process's collector policy (app/gc_policy.py): settled at start, frozen after
bursts of new workers (issue 11: a full pass stalled a 10,000-subscription fan-out).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from app.gc_policy import YOUNG_THRESHOLD, HeapFreezer, settle_heap


@pytest.fixture
def restored_gc() -> Iterator[None]:
    """Put the test process's collector back as it was."""
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_gc")
def test_settle_heap_freezes_what_exists_and_spaces_young_collections() -> None:
    before = gc.get_threshold()
    built_at_start = [{"kept": i} for i in range(1000)]
    settle_heap()
    assert gc.get_freeze_count() >= len(built_at_start)
    assert gc.get_threshold() == (YOUNG_THRESHOLD, before[1], before[2])
    # Frozen objects are never scanned again: a full collection leaves them where they are.
    gc.collect()
    assert gc.get_freeze_count() >= len(built_at_start)


@pytest.mark.usefixtures("restored_gc")
def test_cyclic_garbage_made_after_settling_is_still_collected() -> None:
    settle_heap()

    class Node:
        other: object = None

    a, b = Node(), Node()
    a.other, b.other = b, a
    del a, b
    assert gc.collect() >= 2


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
