"""What the file keeps across a restart, and what one commit carries."""

from __future__ import annotations

import asyncio
import time

import pytest

from app.adapters.sqlite import database
from app.core.models import now_ms
from app.core.ports import OutgoingMessage
from tests.adapter_helpers import dlq_entry, make_msg, make_sub, publish, receive_n
from tests.backends import unique
from tests.sqlite.conftest import OpenAdapter


async def test_everything_survives_a_restart(open_sqlite: OpenAdapter) -> None:
    topic = unique("keep")
    sub = make_sub(topic, timeout_ms=100)
    leases = {"visibility_timeout_ms": 500, "lease_margin_ms": 0}
    async with open_sqlite(**leases) as adapter:
        await adapter.create_subscription(sub)
        await publish(adapter, *[make_msg(topic, i) for i in range(4)])
        await publish(adapter, make_msg(topic, "later"), at=now_ms() + 60_000)
        leased = await receive_n(adapter, sub, 3)
        await adapter.retry_at(leased[0], now_ms() + 60_000)
        await adapter.dead_letter(leased[1], dlq_entry(leased[1], topic))
        assert await adapter.claim_idempotency_key(topic, "k", "msg_1", 60_000) is None
        # leased[2] stays leased: the process "dies" holding it
    async with open_sqlite(**leases) as adapter:
        assert await adapter.get_subscription(sub.id) == sub
        assert await adapter.dlq_count(topic) == 1
        assert await adapter.claim_idempotency_key(topic, "k", "msg_2", 60_000) == "msg_1"
        [stats] = (await adapter.topic_stats(topic)).subscriptions
        assert (stats.scheduled, stats.dlq) == (2, 1)
        got = []
        for _ in range(2):  # the dead process's lease expires: its copy is handed out again
            [delivery] = await receive_n(adapter, sub, 1)
            assert await adapter.ack([delivery]) is True
            got.append(delivery.message.data)
        assert sorted(got) == [2, 3]


async def test_concurrent_writes_share_commits(open_sqlite: OpenAdapter) -> None:
    topic = unique("group")
    sub = make_sub(topic)
    async with open_sqlite() as adapter:
        await adapter.create_subscription(sub)
        before = adapter.database.commits
        await asyncio.gather(
            *(adapter.publish([OutgoingMessage(make_msg(topic, i))]) for i in range(200))
        )
        commits = adapter.database.commits - before
        assert commits < 100, commits  # 200 publishes, far fewer transactions
        got = await receive_n(adapter, sub, 200)
        assert sorted(d.message.data for d in got) == list(range(200))
        before = adapter.database.commits
        assert all(await asyncio.gather(*(adapter.ack([d]) for d in got)))
        assert adapter.database.commits - before < 100


async def test_an_acknowledgement_waits_for_the_next_commit(
    open_sqlite: OpenAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = unique("lazy")
    sub = make_sub(topic)
    async with open_sqlite() as adapter:
        await adapter.create_subscription(sub)
        await publish(adapter, *[make_msg(topic, i) for i in range(2)])
        first, second = await receive_n(adapter, sub, 2)

        monkeypatch.setattr(database, "LAZY_S", 30.0)
        before, started = adapter.database.commits, time.monotonic()
        acking = asyncio.create_task(adapter.ack([first]))
        await asyncio.sleep(0)  # its job is queued, waiting for company
        await publish(adapter, make_msg(topic, "next"))  # the company
        assert await acking is True
        assert adapter.database.commits == before + 1  # one commit carried both
        assert time.monotonic() - started < 30

        monkeypatch.setattr(database, "LAZY_S", 0.2)
        before, started = adapter.database.commits, time.monotonic()
        assert await adapter.ack([second]) is True  # alone: committed once LAZY_S is up
        assert time.monotonic() - started >= 0.2
        assert adapter.database.commits == before + 1
        [stats] = (await adapter.topic_stats(topic)).subscriptions
        assert stats.backlog == 1  # the acknowledged copies are gone, "next" waits


async def test_a_failing_job_rolls_back_alone(open_sqlite: OpenAdapter) -> None:
    topic = unique("alone")
    sub = make_sub(topic)
    async with open_sqlite() as adapter:
        await adapter.create_subscription(sub)
        results = await asyncio.gather(
            adapter.create_subscription(sub),  # taken id: refused
            publish(adapter, make_msg(topic, "kept")),
            return_exceptions=True,
        )
        assert type(results[0]).__name__ == "SubscriptionExistsError"
        assert results[1] is None
        [got] = await receive_n(adapter, sub, 1)
        assert got.message.data == "kept"
