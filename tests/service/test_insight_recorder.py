"""The recorder writes an in_flight mark only when the attempt's outcome is late, and
whatever it holds when flushed explicitly or stopped.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from app.adapters.kit.insight_memory import MemoryInsightStore
from app.core.insight import AttemptRecord, InsightBatch, InsightSettings, StateMark
from app.core.models import now_ms
from app.dispatch import insight_recorder
from app.dispatch.insight_recorder import InsightRecorder


class CountingStore(MemoryInsightStore):
    """The in-memory store, noting the states written: each mark's, and each attempt's
    (the state it leaves the copy in; the recorder sends no separate mark for it).
    """

    def __init__(self) -> None:
        super().__init__(InsightSettings())
        self.states: list[str] = []

    async def write(self, batch: InsightBatch) -> None:
        self.states += [m.state for m in batch.marks]
        self.states += [a.next_step for a in batch.attempts]
        await super().write(batch)


def leased(message_id: str, at: int) -> StateMark:
    return StateMark(message_id, "t", "s", "in_flight", at, 1)


def delivered(message_id: str, started: int) -> AttemptRecord:
    return AttemptRecord(message_id, "t", "s", 1, started, 2.0, 200, "delivered", "delivered")


async def test_a_quick_outcome_replaces_its_in_flight_mark() -> None:
    store = CountingStore()
    recorder = InsightRecorder(store, InsightSettings())
    recorder.start()
    try:
        started = now_ms()
        recorder.mark(leased("m-1", started))
        await asyncio.sleep(0.05)  # several flush intervals pass with the outcome pending
        recorder.attempt(delivered("m-1", started))
        deadline = time.monotonic() + 5
        while "delivered" not in store.states:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)  # polling a deadline-bounded condition
        assert store.states == ["delivered"]
        found = await store.get_message("m-1")
        assert found is not None
        assert found.marks["s"].state == "delivered"
    finally:
        await recorder.stop()


async def test_a_slow_attempt_shows_in_flight_after_the_hold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(insight_recorder, "IN_FLIGHT_HOLD_MS", 50)
    store = CountingStore()
    recorder = InsightRecorder(store, InsightSettings())
    recorder.start()
    try:
        recorder.mark(leased("m-2", now_ms()))
        deadline = time.monotonic() + 5
        while store.states != ["in_flight"]:
            assert time.monotonic() < deadline, store.states
            await asyncio.sleep(0.01)  # polling a deadline-bounded condition
        found = await store.get_message("m-2")
        assert found is not None
        assert found.marks["s"].state == "in_flight"
    finally:
        await recorder.stop()


async def test_flush_and_stop_write_held_marks_at_once() -> None:
    store = CountingStore()
    recorder = InsightRecorder(store, InsightSettings())
    recorder.mark(leased("m-3", now_ms()))
    await recorder.flush()
    assert store.states == ["in_flight"]
    recorder.mark(leased("m-4", now_ms()))
    await recorder.stop()
    assert store.states == ["in_flight", "in_flight"]
