"""The adapter contract: what every storage backend does, checked against each one."""

from __future__ import annotations

import asyncio

import pytest

from app.core.errors import SubscriptionExistsError
from app.core.ids import new_message_id
from app.core.models import DlqEntry, LastError, now_ms
from app.core.ports import QueueAdapter
from tests.adapter_helpers import dlq_entry, make_msg, make_sub, publish, receive_n
from tests.backends import unique


async def test_fan_out_gives_every_subscription_every_message_in_order(
    adapter: QueueAdapter,
) -> None:
    topic = unique("fan")
    subs = [make_sub(topic), make_sub(topic)]
    for sub in subs:
        await adapter.create_subscription(sub)
    messages = [make_msg(topic, {"n": i}) for i in range(5)]
    await publish(adapter, *messages)
    for sub in subs:
        got = await receive_n(adapter, sub, 5)
        assert [d.message.data for d in got] == [{"n": i} for i in range(5)]
        assert all(d.attempt == 1 and d.subscription_id == sub.id for d in got)
        assert got[0].message == messages[0]
        await adapter.ack(got)
        assert await adapter.receive(sub, 10, 100) == []


async def test_other_topics_and_earlier_messages_are_not_seen(adapter: QueueAdapter) -> None:
    topic = unique("iso")
    await publish(adapter, make_msg(topic, "before"))
    sub = make_sub(topic)
    await adapter.create_subscription(sub)
    await publish(adapter, make_msg(unique("other"), "elsewhere"), make_msg(topic, "after"))
    got = await receive_n(adapter, sub, 2, within_s=1.5)
    assert [d.message.data for d in got] == ["after"]
    await adapter.ack(got)


async def test_retry_at_schedules_the_next_attempt_no_earlier_than_due(
    adapter: QueueAdapter,
) -> None:
    topic = unique("retry")
    sub = make_sub(topic)
    await adapter.create_subscription(sub)
    await publish(adapter, make_msg(topic, "x"))
    [first] = await receive_n(adapter, sub, 1)
    due = now_ms() + 400
    await adapter.retry_at(first, due)
    assert await adapter.receive(sub, 1, 100) == []
    [second] = await receive_n(adapter, sub, 1)
    assert now_ms() >= due - 5
    assert second.attempt == 2
    assert second.message.id == first.message.id
    await adapter.ack([second])


async def test_delayed_publish_is_held_until_due(adapter: QueueAdapter) -> None:
    topic = unique("delay")
    sub = make_sub(topic)
    await adapter.create_subscription(sub)
    due = now_ms() + 400
    await publish(adapter, make_msg(topic, "later"), at=due)
    await publish(adapter, make_msg(topic, "now"))
    [now_delivery] = await receive_n(adapter, sub, 1)
    assert now_delivery.message.data == "now"
    await adapter.ack([now_delivery])
    [later] = await receive_n(adapter, sub, 1)
    assert later.message.data == "later"
    assert now_ms() >= due - 5
    assert later.attempt == 1
    await adapter.ack([later])


async def test_release_hands_the_same_attempt_back(adapter: QueueAdapter) -> None:
    topic = unique("rel")
    sub = make_sub(topic)
    await adapter.create_subscription(sub)
    await publish(adapter, make_msg(topic, 1), make_msg(topic, 2))
    got = await receive_n(adapter, sub, 2)
    await adapter.release(got)
    again = await receive_n(adapter, sub, 2)
    assert sorted(d.message.data for d in again) == [1, 2]
    assert all(d.attempt == 1 for d in again)
    await adapter.ack(again)


async def test_dead_letter_count_list_and_cursor(adapter: QueueAdapter) -> None:
    topic = unique("dlq")
    sub_a, sub_b = make_sub(topic), make_sub(topic)
    await adapter.create_subscription(sub_a)
    await adapter.create_subscription(sub_b)
    await publish(adapter, *[make_msg(topic, {"i": i}) for i in range(5)])
    for sub in (sub_a, sub_b):
        for delivery in await receive_n(adapter, sub, 5):
            if sub is sub_b and delivery.message.data["i"] >= 2:
                await adapter.ack([delivery])
            else:
                await adapter.dead_letter(delivery, dlq_entry(delivery, topic))
    assert await adapter.dlq_count(topic) == 7
    assert await adapter.dlq_count(topic, sub_a.id) == 5
    assert await adapter.dlq_count(topic, sub_b.id) == 2
    assert await adapter.dlq_count(unique("none")) == 0

    seen: list[DlqEntry] = []
    cursor = None
    for _ in range(10):
        page = await adapter.dlq_list(topic, sub_a.id, limit=2, cursor=cursor)
        seen += page.entries
        cursor = page.next_cursor
        if cursor is None:
            break
    assert [e.message.data["i"] for e in seen] == [0, 1, 2, 3, 4]
    entry = seen[0]
    assert entry.subscription_id == sub_a.id
    assert entry.topic == topic
    assert entry.attempts == 1
    assert entry.last_error == LastError(reason="http_error", status=500, body_excerpt="boom")
    everything = await adapter.dlq_list(topic, limit=100)
    assert len(everything.entries) == 7
    assert everything.next_cursor is None


async def test_redrive_goes_back_only_to_the_failing_subscription(adapter: QueueAdapter) -> None:
    topic = unique("redrive")
    failing, happy = make_sub(topic), make_sub(topic)
    await adapter.create_subscription(failing)
    await adapter.create_subscription(happy)
    await publish(adapter, make_msg(topic, "m"))
    [ok] = await receive_n(adapter, happy, 1)
    await adapter.ack([ok])
    [bad] = await receive_n(adapter, failing, 1)
    await adapter.retry_at(bad, now_ms())
    [bad2] = await receive_n(adapter, failing, 1)
    assert bad2.attempt == 2
    await adapter.dead_letter(bad2, dlq_entry(bad2, topic))
    assert await adapter.dlq_count(topic) == 1

    assert await adapter.dlq_redrive(topic) == 1
    assert await adapter.dlq_count(topic) == 0
    [again] = await receive_n(adapter, failing, 1)
    assert again.message.id == bad.message.id
    assert again.attempt == 1
    await adapter.ack([again])
    assert await adapter.receive(happy, 1, 200) == []


async def test_redrive_and_purge_by_ids_and_subscription(adapter: QueueAdapter) -> None:
    topic = unique("sel")
    sub_a, sub_b = make_sub(topic), make_sub(topic)
    await adapter.create_subscription(sub_a)
    await adapter.create_subscription(sub_b)
    await publish(adapter, *[make_msg(topic, i) for i in range(3)])
    entries: list[DlqEntry] = []
    for sub in (sub_a, sub_b):
        for delivery in await receive_n(adapter, sub, 3):
            entry = dlq_entry(delivery, topic)
            entries.append(entry)
            await adapter.dead_letter(delivery, entry)
    a_ids = [e.id for e in entries if e.subscription_id == sub_a.id]
    assert await adapter.dlq_redrive(topic, ids=[a_ids[1], "dlq_missing"]) == 1
    [back] = await receive_n(adapter, sub_a, 1)
    assert back.message.data == 1
    await adapter.ack([back])
    assert await adapter.dlq_count(topic, sub_a.id) == 2
    assert await adapter.dlq_purge(topic, subscription_id=sub_b.id) == 3
    assert await adapter.dlq_count(topic) == 2
    assert await adapter.dlq_purge(topic, ids=[a_ids[0]]) == 1
    assert await adapter.dlq_redrive(topic, subscription_id=sub_a.id) == 1
    [last] = await receive_n(adapter, sub_a, 1)
    assert last.message.data == 2
    await adapter.ack([last])
    assert await adapter.dlq_count(topic) == 0
    assert await adapter.dlq_purge(topic) == 0


async def test_subscription_registry(adapter: QueueAdapter) -> None:
    topic = unique("reg")
    sub = make_sub(topic, condition="data.x == 1", secret="whsec_" + "A" * 32)
    await adapter.create_subscription(sub)
    with pytest.raises(SubscriptionExistsError):
        await adapter.create_subscription(sub)
    assert await adapter.get_subscription(sub.id) == sub
    assert await adapter.get_subscription("sub-missing") is None
    other = make_sub(unique("reg2"))
    await adapter.create_subscription(other)
    assert [s.id for s in await adapter.list_subscriptions(topic)] == [sub.id]
    assert {sub.id, other.id} <= {s.id for s in await adapter.list_subscriptions()}
    paused = sub.with_changes(paused=True, max_in_flight=3)
    await adapter.update_subscription(paused)
    assert await adapter.get_subscription(sub.id) == paused

    await publish(adapter, make_msg(topic, "pending"))
    assert await adapter.delete_subscription(sub.id) is True
    assert await adapter.delete_subscription(sub.id) is False
    assert await adapter.get_subscription(sub.id) is None
    assert await adapter.list_subscriptions(topic) == []
    await adapter.delete_subscription(other.id)


async def test_idempotency_keys(adapter: QueueAdapter) -> None:
    topic = unique("idem")
    first, second = new_message_id(), new_message_id()
    assert await adapter.claim_idempotency_key(topic, "k1", first, 60_000) is None
    assert await adapter.claim_idempotency_key(topic, "k1", second, 60_000) == first
    assert await adapter.claim_idempotency_key(unique("idem"), "k1", second, 60_000) is None
    await adapter.release_idempotency_key(topic, "k1")
    assert await adapter.claim_idempotency_key(topic, "k1", second, 60_000) is None
    assert await adapter.claim_idempotency_key(topic, "short", first, 50) is None
    await asyncio.sleep(0.2)  # the key's own TTL is what is under test here
    assert await adapter.claim_idempotency_key(topic, "short", second, 50) is None


async def test_topic_stats_and_listing(adapter: QueueAdapter) -> None:
    topic = unique("stats")
    sub = make_sub(topic)
    await adapter.create_subscription(sub)
    await publish(adapter, *[make_msg(topic, i) for i in range(4)])
    leased = await receive_n(adapter, sub, 2)
    await adapter.retry_at(leased[0], now_ms() + 60_000)
    await adapter.dead_letter(leased[1], dlq_entry(leased[1], topic))
    [third] = await receive_n(adapter, sub, 1)
    stats = await adapter.topic_stats(topic)
    assert stats.topic == topic
    assert stats.dlq == 1
    [sub_stats] = stats.subscriptions
    assert sub_stats.subscription_id == sub.id
    assert sub_stats.backlog == 1
    assert sub_stats.in_flight == 1
    assert sub_stats.scheduled == 1
    assert sub_stats.dlq == 1
    assert topic in await adapter.list_topics()
    await adapter.ack([third])


async def test_ping(adapter: QueueAdapter) -> None:
    assert await adapter.ping() is True


async def test_settling_reports_whether_the_lease_was_still_ours(adapter: QueueAdapter) -> None:
    topic = unique("settle")
    sub = make_sub(topic)
    await adapter.create_subscription(sub)
    await publish(adapter, *[make_msg(topic, i) for i in range(3)])
    acked, retried, dead = await receive_n(adapter, sub, 3)
    assert await adapter.ack([]) is True
    assert await adapter.ack([acked]) is True
    assert await adapter.retry_at(retried, now_ms() + 60_000) is True
    assert await adapter.dead_letter(dead, dlq_entry(dead, topic)) is True

    # each lease has ended: a second outcome for any of them is refused and stores nothing
    for ended in (acked, retried, dead):
        assert await adapter.ack([ended]) is False
        assert await adapter.retry_at(ended, now_ms()) is False
        assert await adapter.dead_letter(ended, dlq_entry(ended, topic)) is False
    assert await adapter.dlq_count(topic) == 1
    assert await adapter.receive(sub, 10, 300) == []  # no retry was scheduled for "now"
    [stats] = (await adapter.topic_stats(topic)).subscriptions
    assert (stats.in_flight, stats.scheduled, stats.dlq) == (0, 1, 1)


async def test_a_lease_of_a_deleted_subscription_records_no_outcome(
    adapter: QueueAdapter,
) -> None:
    topic = unique("gone")
    sub = make_sub(topic)
    await adapter.create_subscription(sub)
    await publish(adapter, make_msg(topic, 1), make_msg(topic, 2))
    first, second = await receive_n(adapter, sub, 2)
    assert await adapter.delete_subscription(sub.id) is True
    assert await adapter.retry_at(first, now_ms()) is False
    assert await adapter.dead_letter(second, dlq_entry(second, topic)) is False
    assert await adapter.dlq_count(topic) == 0
    await adapter.release([first, second])  # nothing to hand back to: no error either


async def test_update_of_an_unknown_subscription_creates_it(adapter: QueueAdapter) -> None:
    topic = unique("upsert")
    sub = make_sub(topic)
    await adapter.update_subscription(sub)
    assert await adapter.get_subscription(sub.id) == sub
    await publish(adapter, make_msg(topic, "after"))
    [got] = await receive_n(adapter, sub, 1)
    assert got.message.data == "after"
    assert await adapter.ack([got]) is True


async def test_publishing_nothing_stores_nothing(adapter: QueueAdapter) -> None:
    topic = unique("empty")
    sub = make_sub(topic)
    await adapter.create_subscription(sub)
    await adapter.publish([])
    assert await adapter.receive(sub, 10, 200) == []
    [stats] = (await adapter.topic_stats(topic)).subscriptions
    assert (stats.backlog, stats.in_flight, stats.scheduled, stats.dlq) == (0, 0, 0, 0)
