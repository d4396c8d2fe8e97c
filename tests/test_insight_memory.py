"""The in-memory insight store's retention, as kept by expiry that visits only stale logs
(issue 11: with thousands of subscriptions each batch used to walk every attempt log).
"""

from __future__ import annotations

from app.adapters.kit.insight_memory import MemoryInsightStore
from app.core.insight import AttemptRecord, InsightBatch, InsightSettings
from app.core.models import now_ms


def record(sub: str, at: int, n: int = 1) -> AttemptRecord:
    return AttemptRecord(
        message_id=f"m-{sub}-{n}",
        topic="t",
        subscription_id=sub,
        attempt=n,
        started_at=at,
        duration_ms=1.0,
        status=200,
        reason="delivered",
        next_step="delivered",
    )


async def test_logs_idle_past_retention_are_forgotten_and_busy_ones_kept() -> None:
    store = MemoryInsightStore(InsightSettings(retention_ms=1000))
    start = now_ms() - 5000
    store.apply(InsightBatch(attempts=[record(f"s{i}", start) for i in range(2000)]), at=start)
    # s7 stays busy: a recent attempt keeps its log (and only its recent attempts show).
    store.apply(InsightBatch(attempts=[record("s7", now_ms(), 2)]))
    assert await store.recent_attempts("t", "s1", 10) == []
    assert (await store.list_attempts("t", "s1999")).attempts == []
    assert [a.attempt for a in await store.recent_attempts("t", "s7", 10)] == [2]
    assert [a.attempt for a in (await store.list_attempts("t", "s7")).attempts] == [2]
    assert set(store._logs) == {"s7"}


async def test_a_log_read_before_the_next_batch_shows_nothing_past_retention() -> None:
    store = MemoryInsightStore(InsightSettings(retention_ms=1000))
    old = now_ms() - 5000
    store.apply(InsightBatch(attempts=[record("s", old, 1)]), at=old)
    store.apply(InsightBatch(attempts=[record("s", old + 4500, 2)]), at=old + 4500)
    assert [a.attempt for a in await store.recent_attempts("t", "s", 10)] == [2]
