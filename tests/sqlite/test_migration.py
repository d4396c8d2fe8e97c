"""Older files opened by today's adapter: migrated in place at start, nothing lost, order and
attempts kept (version 1: each copy with its own envelope; version 2: the reference count
beside the envelope); a newer file is refused in one line.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from app.adapters.kit import codec
from app.adapters.sqlite import SqliteAdapter
from app.adapters.sqlite.schema import SCHEMA_VERSION
from app.core.errors import ConfigError
from app.core.insight import InsightSettings
from app.core.models import Envelope, Subscription, now_ms
from tests.adapter_helpers import make_sub, receive_n
from tests.sqlite.conftest import OpenAdapter

V1_SCHEMA = (Path(__file__).parent / "schema_v1.sql").read_text()
V2_SCHEMA = (Path(__file__).parent / "schema_v2.sql").read_text()


def envelope(topic: str, n: int) -> Envelope:
    return Envelope(id=f"msg-{topic}-{n}", topic=topic, data={"n": n}, published_at=now_ms())


def write_v1(path: Path, rows: list[tuple[int, str, int, int, int | None, bytes]]) -> None:
    """A version 1 file holding the subscriptions of ``rows`` and these copies:
    ``(id, sub_id, attempt, due_at, lease_token, envelope)``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as conn:
        conn.executescript(V1_SCHEMA)
        conn.executemany(
            "INSERT INTO copies (id, sub_id, attempt, due_at, lease_token, lease_owner, body) "
            "VALUES (?, ?, ?, ?, ?, CASE WHEN ?5 IS NULL THEN NULL ELSE 'gone:1' END, ?)",
            rows,
        )


def insert_subscriptions(conn: sqlite3.Connection, *subs: Subscription) -> None:
    """Subscription rows as every schema version so far stores them."""
    conn.executemany(
        "INSERT INTO subscriptions (id, topic, created_at, body) VALUES (?,?,?,?)",
        [(s.id, s.topic, s.created_at, codec.encode(s.to_dict())) for s in subs],
    )


def version(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


async def test_a_version_1_file_is_migrated_with_nothing_lost(
    open_sqlite: OpenAdapter, db_path: Path
) -> None:
    sub, other = make_sub("old"), make_sub("old")
    now = now_ms()
    messages = [envelope("old", n) for n in range(5)]
    bodies = [codec.encode_envelope(m) for m in messages]
    write_v1(
        db_path,
        [
            (10, sub.id, 1, now, None, bodies[0]),
            (11, sub.id, 3, now - 5, None, bodies[1]),  # a retry, due
            (12, sub.id, 2, now + 3_600_000, None, bodies[2]),  # a retry, scheduled
            (13, sub.id, 1, now - 1, 42, bodies[3]),  # leased by a process gone, expired
            (20, other.id, 1, now, None, bodies[4]),
        ],
    )
    with sqlite3.connect(db_path) as conn:
        insert_subscriptions(conn, sub, other)
        conn.execute(
            "INSERT INTO ins_messages (id, touched_at, body) VALUES (?, ?, ?), (?, ?, NULL)",
            (messages[0].id, now, bodies[0], "msg-marks-only", now),
        )
    assert version(db_path) == 1

    async with open_sqlite() as adapter:
        assert version(db_path) == SCHEMA_VERSION
        assert await adapter.get_subscription(sub.id) == sub
        [stats] = [
            s
            for s in (await adapter.topic_stats("old")).subscriptions
            if s.subscription_id == sub.id
        ]
        assert (stats.backlog, stats.scheduled) == (3, 1)
        got = await receive_n(adapter, sub, 3)
        assert [(d.message, d.attempt) for d in got] == [
            (messages[1], 3),
            (messages[3], 1),
            (messages[0], 1),
        ]  # by due time, as before
        assert await adapter.ack(got) is True
        [theirs] = await receive_n(adapter, other, 1)
        assert theirs.message == messages[4]
        await adapter.release([theirs])

        store = adapter.insight_store(InsightSettings())
        await store.open()
        found = await store.get_message(messages[0].id)
        assert found is not None
        assert found.message == messages[0]  # acknowledged, kept by the log
        marks_only = await store.get_message("msg-marks-only")
        assert marks_only is not None
        assert marks_only.message is None

    with sqlite3.connect(db_path) as conn:
        seqs = conn.execute("SELECT msg FROM copies ORDER BY sub_id = ?, msg", (sub.id,))
        assert [row[0] for row in seqs] == [20, 12]  # publish order kept
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        assert not {"v1_copies", "v1_ins_messages", "copies_order"} & tables
    async with open_sqlite() as adapter:  # opened again: nothing more to migrate
        assert [d.message for d in await receive_n(adapter, other, 1)] == [messages[4]]


async def test_a_version_2_file_keeps_its_messages_and_their_counts(
    open_sqlite: OpenAdapter, db_path: Path
) -> None:
    sub, other = make_sub("two"), make_sub("two")
    now = now_ms()
    messages = [envelope("two", n) for n in range(3)]
    db_path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(db_path) as conn:
        conn.executescript(V2_SCHEMA)
        insert_subscriptions(conn, sub, other)
        conn.executemany(
            "INSERT INTO messages (seq, refs, body) VALUES (?, ?, ?)",
            [  # message 0: both copies and the insight log; 1: one copy; 2: the log only
                (1, 3, codec.encode_envelope(messages[0])),
                (2, 1, codec.encode_envelope(messages[1])),
                (3, 1, codec.encode_envelope(messages[2])),
            ],
        )
        conn.executemany(
            "INSERT INTO copies (sub_id, msg, attempt, due_at) VALUES (?, ?, ?, ?)",
            [(sub.id, 1, 1, now), (other.id, 1, 2, now), (sub.id, 2, 1, now)],
        )
        conn.executemany(
            "INSERT INTO ins_messages (id, touched_at, msg) VALUES (?, ?, ?)",
            [(messages[0].id, now, 1), (messages[2].id, now, 3)],
        )
    assert version(db_path) == 2

    async with open_sqlite() as adapter:
        assert version(db_path) == SCHEMA_VERSION
        with sqlite3.connect(db_path) as conn:
            assert conn.execute("SELECT msg, n FROM refs ORDER BY msg").fetchall() == [
                (1, 3),
                (2, 1),
                (3, 1),
            ]
            columns = [row[1] for row in conn.execute("PRAGMA table_info(messages)")]
            assert columns == ["seq", "body"]
            indexed = [row[2] for row in conn.execute("PRAGMA index_info(copies_due)")]
            assert indexed == ["sub_id", "due_at", "attempt"]
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
            assert "v2_messages" not in tables
        got = await receive_n(adapter, sub, 2)
        assert [d.message for d in got] == messages[:2]  # publish order kept
        [theirs] = await receive_n(adapter, other, 1)
        assert (theirs.message, theirs.attempt) == (messages[0], 2)
        assert await adapter.ack([*got, theirs]) is True
        with sqlite3.connect(db_path) as conn:
            # message 1 went with its only copy; 0 and 2 stay for the insight log
            assert conn.execute("SELECT seq FROM messages ORDER BY seq").fetchall() == [(1,), (3,)]
            assert conn.execute("SELECT msg, n FROM refs ORDER BY msg").fetchall() == [
                (1, 1),
                (3, 1),
            ]
        store = adapter.insight_store(InsightSettings())
        await store.open()
        found = await store.get_message(messages[2].id)
        assert found is not None
        assert found.message == messages[2]


def test_a_file_of_a_newer_hookline_is_refused(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    with sqlite3.connect(db_path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(ConfigError, match="written by a newer hookline"):
        SqliteAdapter.from_config({"path": str(db_path)})
