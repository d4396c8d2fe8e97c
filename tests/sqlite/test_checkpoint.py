"""Commits never checkpoint, the WAL stays bounded under a load that never pauses, and with
``synchronous: full`` only commits that accept something wait for an fsync.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from app.adapters.sqlite import checkpoint
from app.adapters.sqlite.database import SWITCH_INTERVAL_S
from tests.adapter_helpers import make_msg, make_sub, publish, receive_n
from tests.backends import unique
from tests.sqlite.conftest import OpenAdapter

PAD = "x" * 3000
MESSAGES = 3000
"""Published before looking: a WAL that never restarted would hold this many frames."""


def _wal_frames(db_path: Path) -> int:
    """Frames in the WAL now, as a PASSIVE checkpoint of another connection reports them."""
    conn = sqlite3.connect(db_path)
    try:
        return int(conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])
    finally:
        conn.close()


async def test_the_wal_starts_over_under_writes_that_never_pause(
    open_sqlite: OpenAdapter, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checkpoint, "MAX_WAL_FRAMES", 200)
    monkeypatch.setattr(checkpoint, "INTERVAL_S", 0.01)
    topic = unique("wal")
    async with open_sqlite() as adapter:
        await adapter.create_subscription(make_sub(topic))
        stop = time.monotonic() + 60
        writers_done = asyncio.Event()
        published = 0

        async def write_forever() -> None:
            nonlocal published
            while not writers_done.is_set() and time.monotonic() < stop:
                await publish(adapter, *[make_msg(topic, {"pad": PAD}) for _ in range(20)])
                published += 20

        writers = [asyncio.create_task(write_forever()) for _ in range(4)]
        try:
            while adapter.database.checkpointer.restarts < 2 or published < MESSAGES:
                assert time.monotonic() < stop, "the WAL never started over"
                await asyncio.sleep(0.02)  # polling a deadline-bounded condition
        finally:
            writers_done.set()
            await asyncio.gather(*writers)
        # Every message of ~3 KB takes at least one 4 KB page of the WAL: without restarts
        # the WAL would hold a frame per message at least (group commits or not).
        assert _wal_frames(db_path) < published


async def test_commits_never_checkpoint_in_the_writer(open_sqlite: OpenAdapter) -> None:
    async with open_sqlite() as adapter:

        def autocheckpoint(conn: sqlite3.Connection) -> int:
            return int(conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0])

        assert await adapter.database.write(autocheckpoint) == 0
        assert sys.getswitchinterval() <= SWITCH_INTERVAL_S


def _level(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA synchronous").fetchone()[0])


async def test_full_syncs_what_accepts_messages_not_what_settles_them(
    open_sqlite: OpenAdapter,
) -> None:
    full, normal = 2, 1
    topic = unique("full-sync")
    sub = make_sub(topic)
    async with open_sqlite(synchronous="full") as adapter:
        db = adapter.database
        await adapter.create_subscription(sub)
        await publish(adapter, make_msg(topic, 1))
        assert await db.write(_level) == full  # a durable job (the default) is synced
        assert await db.write(_level, durable=False) == normal
        [delivery] = await receive_n(adapter, sub, 1)
        assert await adapter.ack([delivery])
        assert await db.write(_level) == full
    async with open_sqlite(synchronous="normal") as adapter:
        assert await adapter.database.write(_level) == normal
        assert await adapter.database.write(_level, durable=False) == normal
