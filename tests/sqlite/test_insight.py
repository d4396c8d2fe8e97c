"""Delivery insight on the SQLite adapter: bounded storage in the file, parking, resend,
and real ``hookline serve`` processes sharing one file seeing each other's attempts.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest

from app.core.errors import BackendUnavailableError
from app.core.insight import AttemptRecord, InsightBatch, InsightSettings, StateMark
from app.core.models import Envelope, Subscription, now_ms
from tests.harness import eventually
from tests.process import serving, subscribe, until, write_config
from tests.receiver import Receiver, Reply
from tests.sqlite.conftest import OpenAdapter


def rows(db_path: Path, table: str) -> int:
    """Rows of ``table``, read from the file itself."""
    with sqlite3.connect(db_path, timeout=5) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def envelope(topic: str, n: int) -> Envelope:
    return Envelope(id=f"m-{n}", topic=topic, data={"n": n}, published_at=now_ms())


def attempt(message: Envelope, sub: str, n: int, at: int, status: int = 500) -> AttemptRecord:
    return AttemptRecord(
        message_id=message.id,
        topic=message.topic,
        subscription_id=sub,
        attempt=n,
        started_at=at,
        duration_ms=2.0,
        status=status,
        reason=f"http_{status}",
        next_step="scheduled",
        next_attempt_at=at + 50,
    )


async def test_caps_are_enforced_in_the_file(open_sqlite: OpenAdapter, db_path: Path) -> None:
    settings = InsightSettings(
        max_attempts_per_message=2, max_attempts_per_subscription=10, max_messages=20
    )
    async with open_sqlite() as adapter:
        store = adapter.insight_store(settings)
        await store.open()
        now = now_ms()
        messages = [envelope("caps", n) for n in range(30)]
        await store.write(InsightBatch(messages=messages))
        await store.write(
            InsightBatch(attempts=[attempt(messages[0], "s", n, now + n) for n in range(1, 6)])
        )
        # per (message, subscription): trimmed as written, newest kept
        assert rows(db_path, "ins_attempts") == 2
        assert rows(db_path, "ins_log") == 5
        for n in range(1, 30):
            await store.write(InsightBatch(attempts=[attempt(messages[n], "s", 1, now + 10 + n)]))
        assert rows(db_path, "ins_log") == 34
        await store.sweep()
        assert rows(db_path, "ins_messages") == 20
        assert rows(db_path, "ins_log") == 10
        page = await store.list_attempts("caps", "s", limit=100)
        assert [a.message_id for a in page.attempts] == [f"m-{n}" for n in range(29, 19, -1)]
        # the least recently touched went first: the newest 20 are the ones written last
        assert await store.get_message("m-0") is None
        kept = await store.get_message("m-29")
        assert kept is not None
        assert kept.message == messages[29]


async def test_retention_deletes_rows_not_just_hides_them(
    open_sqlite: OpenAdapter, db_path: Path
) -> None:
    async with open_sqlite() as adapter:
        store = adapter.insight_store(InsightSettings(retention_ms=300))
        await store.open()
        message = envelope("old", 1)
        await store.write(
            InsightBatch(
                messages=[message],
                attempts=[attempt(message, "s", 1, now_ms())],
                # an attempt's own mark is not stored (it implies it); another copy's is
                marks=[
                    attempt(message, "s", 1, now_ms()).mark(),
                    StateMark(message.id, "old", "s-filtered", "filtered", now_ms()),
                ],
            )
        )
        assert rows(db_path, "ins_marks") == 1

        async def hidden() -> bool:
            return await store.get_message(message.id) is None

        await eventually(hidden, within_s=5)
        assert (await store.recent_attempts("old", "s", 10)) == []

        async def swept() -> bool:  # by the store's own periodic task
            tables = ("ins_messages", "ins_marks", "ins_attempts", "ins_log", "messages")
            return all(rows(db_path, table) == 0 for table in tables)

        await eventually(swept, within_s=10)


async def test_park_scheduled_makes_retries_due_and_requeue_adds_attempt_one(
    open_sqlite: OpenAdapter,
) -> None:
    async with open_sqlite() as adapter:
        sub = Subscription(id="parked", topic="park", url="http://127.0.0.1:9/x")
        await adapter.create_subscription(sub)
        message = envelope("park", 1)
        await adapter.requeue(sub, message)
        [delivery] = await adapter.receive(sub, 10, 1000)
        assert (delivery.message, delivery.attempt) == (message, 1)
        assert await adapter.retry_at(delivery, now_ms() + 3_600_000)
        assert await adapter.receive(sub, 10, 50) == []
        assert (await adapter.topic_stats("park")).subscriptions[0].scheduled == 1
        assert await adapter.park_scheduled(sub) == 1
        assert await adapter.park_scheduled(sub) == 0
        [again] = await adapter.receive(sub, 10, 1000)
        assert (again.message, again.attempt) == (message, 2)
        assert await adapter.ack([again])
        await adapter.delete_subscription(sub.id)
        await adapter.requeue(sub, message)  # a deleted subscription gets nothing
        assert (await adapter.topic_stats("park")).subscriptions == []


@pytest.mark.slow
async def test_processes_on_one_file_see_each_others_attempts_and_serve_the_console(
    tmp_path: Path, receiver: Receiver
) -> None:
    adapter = {"path": str(tmp_path / "data" / "hookline.db"), "poll_interval_ms": 20}
    config = write_config(tmp_path / "config.yaml", "modules::queue::SqliteAdapter", adapter)
    with serving(config, tmp_path) as serve:
        first, second = await serve(), await serve("--workers", "2")
        receiver.script("/seen", Reply(500, body=b"first fails"))
        sub_id = await subscribe(first, "seen", receiver.url("/seen"), retry={"retry_delay_ms": 20})
        async with (
            httpx.AsyncClient(base_url=first.url) as one,
            httpx.AsyncClient(base_url=second.url) as two,
        ):
            published = await two.post("/v1/topics/seen/messages", json={"data": {"n": 1}})
            assert published.status_code == 202, published.text
            message_id = published.json()["id"]

            async def delivered_seen_by_both() -> bool:
                for client in (one, two):
                    response = await client.get(f"/v1/messages/{message_id}")
                    if response.status_code != 200:
                        return False
                    [state] = response.json()["deliveries"]
                    if state["state"] != "delivered" or len(state["attempts"]) != 2:
                        return False
                return True

            await until(delivered_seen_by_both, what="both processes see both attempts")
            log = (await two.get(f"/v1/subscriptions/{sub_id}/attempts")).json()["attempts"]
            assert [a["status"] for a in log] == [200, 500]
            console = await two.get("/ui/")
            assert console.status_code == 200
            assert "text/html" in console.headers["content-type"]


async def test_a_full_disk_refuses_log_writes_not_reads(open_sqlite: OpenAdapter) -> None:
    async with open_sqlite(min_free_disk_bytes=2**62) as adapter:
        store = adapter.insight_store(InsightSettings())
        await store.open()
        message = envelope("full", 1)
        with pytest.raises(BackendUnavailableError, match="disk is full"):
            await store.write(InsightBatch(messages=[message]))
        assert await store.get_message(message.id) is None
        await store.sweep()  # deletes free space: never refused
