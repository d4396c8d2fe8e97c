"""How the Redis insight store keeps a message (issue 13's cost): attempts in the message's
hash, a mark only when no attempt implies it, one script call per flush; and what the
earlier layout (a list per subscription) wrote is still read.
"""

from __future__ import annotations

import json

from app.adapters.redis.insight import RedisInsightStore
from app.core.insight import AttemptRecord, InsightBatch, InsightSettings, StateMark
from app.core.models import now_ms
from tests.adapter_helpers import make_msg
from tests.backends import unique
from tests.redis.conftest import OpenAdapter


def attempt(message_id: str, topic: str, n: int, status: int) -> AttemptRecord:
    ok = status == 200
    return AttemptRecord(
        message_id,
        topic,
        "s1",
        n,
        now_ms(),
        1.0,
        status,
        "delivered" if ok else "http_500",
        "delivered" if ok else "scheduled",
        None if ok else "nope",
        None if ok else now_ms() + 1000,
    )


async def test_attempts_live_in_the_hash_and_implied_marks_are_not_stored(
    open_redis: OpenAdapter,
) -> None:
    async with open_redis() as adapter:
        store = adapter.insight_store(InsightSettings(max_attempts_per_message=2))
        assert isinstance(store, RedisInsightStore)
        topic = unique("topic")
        message = make_msg(topic, {"n": 1})
        client = adapter.connection.client
        key = store._message_key(message.id)
        first = attempt(message.id, topic, 1, 500)
        await store.write(InsightBatch([message], [first.mark()], [first]))
        stored = await client.hgetall(key)
        assert set(stored) == {"m", "a:s1"}  # no mark: the attempt implies it
        parked = StateMark(message.id, topic, "s1", "parked", now_ms(), 1)
        await store.write(InsightBatch(marks=[parked]))
        found = await store.get_message(message.id)
        assert found is not None
        assert found.marks["s1"].state == "parked"  # newer than the attempt
        later = [attempt(message.id, topic, 2, 500), attempt(message.id, topic, 3, 200)]
        await store.write(InsightBatch(marks=[later[-1].mark()], attempts=later))
        assert set(await client.hgetall(key)) == {"m", "a:s1"}  # the attempt cleared it
        found = await store.get_message(message.id)
        assert found is not None
        assert found.message == message
        assert found.marks["s1"].state == "delivered"
        assert [a.attempt for a in found.attempts["s1"]] == [2, 3]  # capped, newest kept
        assert await client.keys(f"{key}:*") == []  # no list per subscription


async def test_the_earlier_layout_is_still_read(open_redis: OpenAdapter) -> None:
    async with open_redis() as adapter:
        store = adapter.insight_store(InsightSettings())
        assert isinstance(store, RedisInsightStore)
        topic = unique("topic")
        message = make_msg(topic, {"n": 2})
        record = attempt(message.id, topic, 1, 500)
        client = adapter.connection.client
        key = store._message_key(message.id)
        mark = record.mark()
        mark.implied = False
        await client.hset(
            key,
            mapping={
                "m": _json(message.to_dict()),
                "a:s1": "1",
                "s:s1": _json(mark.to_dict()),
            },
        )
        await client.rpush(f"{key}:a:s1", _json(record.to_dict()))
        found = await store.get_message(message.id)
        assert found is not None
        assert found.message == message
        assert [a.attempt for a in found.attempts["s1"]] == [1]
        assert found.marks["s1"].state == "scheduled"
        # A new attempt replaces the flag with the new layout.
        await store.write(InsightBatch(attempts=[attempt(message.id, topic, 2, 200)]))
        found = await store.get_message(message.id)
        assert found is not None
        assert found.marks["s1"].state == "delivered"


def _json(document: object) -> str:
    return json.dumps(document, separators=(",", ":"))


async def test_a_flush_is_one_round_trip_on_the_coalescer_and_survives_a_script_flush(
    open_redis: OpenAdapter,
) -> None:
    """The store writes through the adapter's coalescer (its own RESP packing): a flush of
    many messages and logs is one buffer, and a Redis that forgot the script (``SCRIPT
    FLUSH``, a restart) gets it again instead of losing the batch.
    """
    async with open_redis() as adapter:
        store = adapter.insight_store(InsightSettings())
        assert isinstance(store, RedisInsightStore)
        topic = unique("topic")
        messages = [make_msg(topic, {"n": n}) for n in range(600)]  # > one chunk of calls
        records = [attempt(m.id, topic, 1, 200) for m in messages]
        before = adapter.scripts.round_trips
        await store.write(InsightBatch(messages, [], records))
        assert adapter.scripts.round_trips == before + 1
        await adapter.connection.client.script_flush()
        await store.write(InsightBatch(attempts=[attempt(messages[0].id, topic, 2, 500)]))
        found = await store.get_message(messages[0].id)
        assert found is not None
        assert [a.attempt for a in found.attempts["s1"]] == [1, 2]
        page = await store.list_attempts(topic, "s1", limit=1000)
        assert len(page.attempts) == 601
