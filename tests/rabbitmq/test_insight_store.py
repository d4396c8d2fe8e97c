"""The RabbitMQ insight store keeps no message in memory: a lookup reads the one stream
event that announced it (issue 12's backlog RSS), on the shared broker.
"""

from __future__ import annotations

import asyncio

import pytest

from app.adapters.rabbitmq.insight import EVENT_MESSAGES, StreamInsightStore
from app.core.insight import AttemptRecord, InsightBatch, InsightSettings
from app.core.models import now_ms
from tests.adapter_helpers import make_msg, make_sub, publish, receive_n
from tests.backends import unique
from tests.rabbitmq.conftest import OpenAdapter


@pytest.fixture
def queue_type() -> str:
    """Insight does not depend on the queue type: classic only."""
    return "classic"


def delivered(message_id: str, topic: str) -> AttemptRecord:
    return AttemptRecord(message_id, topic, "s1", 1, now_ms(), 2.0, 200, "delivered", "delivered")


async def test_lookups_read_messages_back_from_the_stream(open_rabbit: OpenAdapter) -> None:
    async with open_rabbit() as adapter:
        store = adapter.insight_store(InsightSettings())
        assert isinstance(store, StreamInsightStore)
        await store.open()
        topic = unique("topic")
        messages = [
            make_msg(topic, {"n": n, "text": "é" * n}) for n in range(EVENT_MESSAGES * 2 + 7)
        ]
        await store.write(InsightBatch(messages=messages))  # three events
        await store.write(InsightBatch(attempts=[delivered(messages[5].id, topic)]))
        assert store._memory._envelopes == {}  # no copy in memory
        assert len(store._published) == len(messages)
        chosen = [messages[0], messages[5], messages[EVENT_MESSAGES], messages[-1]]
        found = await asyncio.gather(*(store.get_message(m.id) for m in chosen * 5))
        assert [f.message if f else None for f in found] == chosen * 5
        assert found[1] is not None
        assert found[1].marks["s1"].state == "delivered"
        assert await store.get_message(make_msg(topic).id) is None  # never announced
        # The lookups' channels are gone cleanly: the adapter's connections still work.
        sub = make_sub(topic)
        await adapter.create_subscription(sub)
        await publish(adapter, make_msg(topic, 1))
        assert len(await receive_n(adapter, sub, 1)) == 1


async def test_events_of_the_earlier_format_are_still_read(open_rabbit: OpenAdapter) -> None:
    # Before, an event carried its messages under b.msgs, each a JSON object.
    async with open_rabbit() as adapter:
        store = adapter.insight_store(InsightSettings())
        assert isinstance(store, StreamInsightStore)
        await store.open()
        topic = unique("topic")
        message = make_msg(topic, {"old": True})
        old = InsightBatch([message], [], [delivered(message.id, topic)])
        session = await adapter.connection.session()
        event = {"op": "batch", "at": now_ms(), "bid": "earlier", "b": old.to_dict()}
        await store.log.append(session, event)
        found = await store.get_message(message.id)
        assert found is not None
        assert found.message == message
        assert [a.attempt for a in found.attempts["s1"]] == [1]
