"""The InsightStore role (issue 13) on every adapter: what a new adapter must satisfy."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from app.adapters.factory import build_adapter
from app.core.insight import AttemptRecord, InsightBatch, InsightSettings, StateMark
from app.core.models import Envelope, now_ms
from app.core.ports import InsightAdapter, InsightStore, QueueAdapter
from tests.adapter_helpers import two_adapters
from tests.backends import ADAPTER_KINDS, isolated_adapter_config, unique
from tests.harness import eventually

SETTINGS = InsightSettings(max_attempts_per_message=3)


async def opened(adapter: QueueAdapter, settings: InsightSettings = SETTINGS) -> InsightStore:
    assert isinstance(adapter, InsightAdapter)
    store = adapter.insight_store(settings)
    await store.open()
    return store


def attempt(message: Envelope, sub: str, n: int, status: int, at: int) -> AttemptRecord:
    return AttemptRecord(
        message_id=message.id,
        topic=message.topic,
        subscription_id=sub,
        attempt=n,
        started_at=at,
        duration_ms=1.5,
        status=status,
        reason="delivered" if status == 200 else f"http_{status}",
        next_step="delivered" if status == 200 else "scheduled",
        response_excerpt=None if status == 200 else "nope",
        next_attempt_at=None if status == 200 else at + 100,
    )


def envelope(topic: str) -> Envelope:
    return Envelope(id=unique("m"), topic=topic, data={"n": 1}, published_at=now_ms())


async def test_message_marks_and_attempts_round_trip(adapter: QueueAdapter) -> None:
    store = await opened(adapter)
    topic = unique("topic")
    message = envelope(topic)
    now = now_ms()
    records = [attempt(message, "s1", n, 500, now + n) for n in range(1, 5)]
    records.append(attempt(message, "s1", 5, 200, now + 5))
    await store.write(InsightBatch(messages=[message]))
    await store.write(
        InsightBatch(
            attempts=records,
            marks=[
                records[-1].mark(),
                StateMark(message.id, topic, "s2", "filtered", now),
            ],
        )
    )
    found = await store.get_message(message.id)
    assert found is not None
    assert found.message == message
    assert found.marks["s1"].state == "delivered"
    assert found.marks["s2"].state == "filtered"
    # capped per (message, subscription), newest kept
    assert [a.attempt for a in found.attempts["s1"]] == [3, 4, 5]
    assert "s2" not in found.attempts
    assert await store.get_message("unknown-id") is None


async def test_an_attempt_supersedes_the_copys_stored_mark(adapter: QueueAdapter) -> None:
    """The recorder sends no mark with an attempt (the attempt implies it): a mark stored
    earlier for the copy (an in_flight written after the hold, a parked one) must not
    outlive it, while an explicit mark that comes after the attempt wins.
    """
    store = await opened(adapter)
    topic = unique("topic")
    message = envelope(topic)
    now = now_ms()
    await store.write(
        InsightBatch(
            messages=[message],
            marks=[
                StateMark(message.id, topic, "s1", "in_flight", now, 1),
                StateMark(message.id, topic, "s2", "in_flight", now, 1),
            ],
        )
    )
    failed = attempt(message, "s2", 1, 500, now + 1)
    await store.write(InsightBatch(attempts=[attempt(message, "s1", 1, 200, now + 1), failed]))
    found = await store.get_message(message.id)
    assert found is not None
    assert found.marks["s1"].state == "delivered"
    assert found.marks["s2"].state == "scheduled"
    await store.write(InsightBatch(marks=[StateMark(message.id, topic, "s2", "parked", now + 5)]))
    found = await store.get_message(message.id)
    assert found is not None
    assert found.marks["s2"].state == "parked"
    assert [a.attempt for a in found.attempts["s2"]] == [1]


async def test_attempt_log_is_newest_first_filtered_and_paged(adapter: QueueAdapter) -> None:
    store = await opened(adapter)
    topic = unique("topic")
    message = envelope(topic)
    now = now_ms()
    for n in range(1, 8):
        status = 200 if n % 2 else 500
        await store.write(InsightBatch(attempts=[attempt(message, "s1", n, status, now + n)]))
    first = await store.list_attempts(topic, "s1", limit=3)
    assert [a.attempt for a in first.attempts] == [7, 6, 5]
    assert first.next_cursor is not None
    second = await store.list_attempts(topic, "s1", limit=10, cursor=first.next_cursor)
    assert [a.attempt for a in second.attempts] == [4, 3, 2, 1]
    assert second.next_cursor is None
    failed = await store.list_attempts(topic, "s1", outcome="failed")
    assert [a.attempt for a in failed.attempts] == [6, 4, 2]
    recent = await store.recent_attempts(topic, "s1", 2)
    assert [a.attempt for a in recent] == [7, 6]
    assert (await store.list_attempts(topic, "other")).attempts == []


async def test_retention_expires_what_was_recorded(adapter_kind: str) -> None:
    async with isolated_adapter_config(adapter_kind) as config:
        adapter = build_adapter(adapter_kind, config)
        await adapter.start()
        try:
            store = await opened(adapter, InsightSettings(retention_ms=1000))
            topic = unique("topic")
            message = envelope(topic)
            await store.write(
                InsightBatch(messages=[message], attempts=[attempt(message, "s", 1, 200, now_ms())])
            )
            assert await store.get_message(message.id) is not None

            async def gone() -> bool:
                # A later write drives in-memory expiry; Redis expires on its own.
                await store.write(InsightBatch(messages=[envelope(topic)]))
                return await store.get_message(message.id) is None

            await eventually(gone, within_s=10, every_s=0.2)
            assert (await store.list_attempts(topic, "s")).attempts == []
        finally:
            await adapter.close()


@pytest.fixture(params=[k for k in ADAPTER_KINDS if k != "builtin"])
async def two_instances(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[QueueAdapter, QueueAdapter]]:
    """Two adapters on one backend, as two hookline instances would be."""
    async with two_adapters(str(request.param)) as pair:
        yield pair


async def test_instances_sharing_a_backend_see_each_others_attempts(
    two_instances: tuple[QueueAdapter, QueueAdapter],
) -> None:
    one, two = [await opened(a) for a in two_instances]
    topic = unique("topic")
    message = envelope(topic)
    await one.write(InsightBatch(messages=[message]))
    await two.write(InsightBatch(attempts=[attempt(message, "s", 1, 200, now_ms())]))

    async def both_see_both() -> bool:
        for store in (one, two):
            found = await store.get_message(message.id)
            if found is None or found.message is None or "s" not in found.attempts:
                return False
        return True

    await eventually(both_see_both)
    page = await one.list_attempts(topic, "s")
    assert [a.message_id for a in page.attempts] == [message.id]
