"""Each envelope is stored once: its copies point at it, and it goes with the last of them
(and the insight log's row): counted in the file itself (``refs``, one count per stored
message, gone with it).
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from app.core.insight import InsightSettings
from app.core.models import now_ms
from tests.adapter_helpers import dlq_entry, make_msg, make_sub, publish, receive_n
from tests.backends import unique
from tests.harness import eventually
from tests.sqlite.conftest import OpenAdapter


def count(db_path: Path, table: str) -> int:
    """Rows of ``table``, read from the file itself."""
    with sqlite3.connect(db_path, timeout=5) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


async def test_an_envelope_is_stored_once_and_goes_with_its_last_copy(
    open_sqlite: OpenAdapter, db_path: Path
) -> None:
    topic = unique("once")
    first, second = make_sub(topic), make_sub(topic)
    async with open_sqlite() as adapter:
        await adapter.create_subscription(first)
        await adapter.create_subscription(second)
        await publish(adapter, *[make_msg(topic, i) for i in range(3)])
        assert (count(db_path, "messages"), count(db_path, "copies")) == (3, 6)

        assert await adapter.ack(await receive_n(adapter, first, 3)) is True
        assert (count(db_path, "messages"), count(db_path, "copies")) == (3, 3)

        acked, dead, kept = sorted(
            await receive_n(adapter, second, 3), key=lambda d: int(str(d.message.data))
        )
        assert await adapter.ack([acked]) is True
        assert await adapter.dead_letter(dead, dlq_entry(dead, topic)) is True
        assert await adapter.retry_at(kept, now_ms() + 60_000) is True
        assert (count(db_path, "messages"), count(db_path, "copies")) == (1, 1)
        assert count(db_path, "refs") == 1

        assert await adapter.delete_subscription(second.id) is True
        assert (count(db_path, "messages"), count(db_path, "copies")) == (0, 0)
        assert count(db_path, "refs") == 0
        [entry] = (await adapter.dlq_list(topic)).entries
        assert entry.message.data == 1  # the DLQ keeps its own copy of the envelope


async def test_a_message_nobody_keeps_is_not_stored(
    open_sqlite: OpenAdapter, db_path: Path
) -> None:
    async with open_sqlite() as adapter:
        await publish(adapter, make_msg(unique("nobody"), 1))
        assert count(db_path, "messages") == 0


async def test_resend_and_redrive_store_a_message_of_their_own(
    open_sqlite: OpenAdapter, db_path: Path
) -> None:
    topic = unique("again")
    sub = make_sub(topic)
    async with open_sqlite() as adapter:
        await adapter.create_subscription(sub)
        message = make_msg(topic, "x")
        await publish(adapter, message)
        [delivery] = await receive_n(adapter, sub, 1)
        assert await adapter.dead_letter(delivery, dlq_entry(delivery, topic)) is True
        assert count(db_path, "messages") == 0
        await adapter.requeue(sub, message)
        assert await adapter.dlq_redrive(topic) == 1
        assert count(db_path, "messages") == 2
        again = await receive_n(adapter, sub, 2)
        assert [d.message for d in again] == [message, message]
        assert all(d.attempt == 1 for d in again)
        assert await adapter.ack(again) is True
        assert count(db_path, "messages") == 0


async def test_the_insight_log_keeps_the_envelope_until_it_forgets_the_message(
    open_sqlite: OpenAdapter, db_path: Path
) -> None:
    topic = unique("kept")
    sub = make_sub(topic)
    async with open_sqlite() as adapter:
        store = adapter.insight_store(InsightSettings(retention_ms=400))
        await store.open()
        await adapter.create_subscription(sub)
        message = make_msg(topic, "looked up")
        await publish(adapter, message)
        assert count(db_path, "messages") == 1
        assert await adapter.ack(await receive_n(adapter, sub, 1)) is True
        found = await store.get_message(message.id)
        assert found is not None
        assert found.message == message  # delivered, and still there to look up
        assert count(db_path, "messages") == 1

        async def forgotten() -> bool:  # by the store's own periodic delete
            return count(db_path, "ins_messages") == 0 and count(db_path, "messages") == 0

        await eventually(forgotten, within_s=10)


async def test_a_stale_receipt_settles_nothing(open_sqlite: OpenAdapter, db_path: Path) -> None:
    topic = unique("stale")
    sub = make_sub(topic, timeout_ms=100)
    async with open_sqlite(visibility_timeout_ms=200, lease_margin_ms=0) as adapter:
        await adapter.create_subscription(sub)
        await publish(adapter, make_msg(topic, 1), make_msg(topic, 2))
        old = await receive_n(adapter, sub, 2)
        new = await receive_n(adapter, sub, 2)  # once the leases expired
        assert len(new) == 2
        assert await adapter.ack(old) is False  # both leases were taken over
        assert count(db_path, "copies") == 2
        assert await adapter.ack(new) is True
        assert count(db_path, "messages") == 0


@pytest.mark.parametrize("fails", ["before writing", "after writing"])
async def test_a_failing_job_in_a_busy_commit_rolls_back_alone(
    open_sqlite: OpenAdapter, db_path: Path, fails: str
) -> None:
    topic = unique("busy")
    sub = make_sub(topic)

    def failing(conn: sqlite3.Connection) -> None:
        if fails == "after writing":
            conn.execute("DELETE FROM subscriptions")
        raise RuntimeError("this job fails")

    async with open_sqlite() as adapter:
        await adapter.create_subscription(sub)
        calls = [publish(adapter, make_msg(topic, i)) for i in range(50)]
        calls.insert(25, adapter.database.write(failing))
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert [type(r).__name__ for r in results if r is not None] == ["RuntimeError"]
        assert await adapter.get_subscription(sub.id) == sub
        assert (count(db_path, "messages"), count(db_path, "copies")) == (50, 50)


async def test_a_message_id_published_twice_is_looked_up_once(
    open_sqlite: OpenAdapter, db_path: Path
) -> None:
    topic = unique("twice")
    sub = make_sub(topic)
    async with open_sqlite() as adapter:
        store = adapter.insight_store(InsightSettings())
        await store.open()
        await adapter.create_subscription(sub)
        message = make_msg(topic, "same id")
        await publish(adapter, message)
        await publish(adapter, message, message)
        assert (count(db_path, "messages"), count(db_path, "ins_messages")) == (3, 1)
        assert await adapter.ack(await receive_n(adapter, sub, 3)) is True
        assert count(db_path, "messages") == 1  # the one the log points at
        found = await store.get_message(message.id)
        assert found is not None
        assert found.message == message


async def test_a_body_stored_as_text_is_delivered_whole(
    open_sqlite: OpenAdapter, db_path: Path
) -> None:
    topic = unique("text")
    sub = make_sub(topic)
    async with open_sqlite() as adapter:
        await adapter.create_subscription(sub)
        first, second = make_msg(topic, "snow ☃ man"), make_msg(topic, "plain")
        await publish(adapter, first, second)
        with sqlite3.connect(db_path) as conn:  # as another writer might have stored it
            conn.execute("UPDATE messages SET body = CAST(body AS TEXT)")
        got = await receive_n(adapter, sub, 2)
        assert sorted(str(d.message.data) for d in got) == ["plain", "snow ☃ man"]
