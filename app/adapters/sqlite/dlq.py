"""The DLQ of each topic: entries keyed by their time-sortable id.

Two indexes, ``(topic, id)`` and ``(topic, sub_id, id)``, give oldest-first pages with the
last id as cursor and counts that read only the index, for a whole topic or one
subscription. Redrive inserts a fresh copy (attempt 1) for the failing subscription and
deletes the entry in the same transaction, so an entry is never both or neither.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from app.adapters.kit import codec
from app.adapters.sqlite.database import Database
from app.adapters.sqlite.messages import store_copy
from app.adapters.sqlite.wakeups import Wakeups
from app.core.models import now_ms
from app.core.ports import DlqPage

BATCH = 500
"""Entries moved per transaction during redrive and purge (keeps the write lock short)."""


def _where(
    topic: str, subscription_id: str | None, after: str | None = None
) -> tuple[str, list[Any]]:
    clause, args = "topic = ?", [topic]
    if subscription_id is not None:
        clause += " AND sub_id = ?"
        args.append(subscription_id)
    if after is not None:
        clause += " AND id > ?"
        args.append(after)
    return clause, args


class DeadLetterStore:
    """Count, list, redrive and purge DLQ entries."""

    def __init__(self, database: Database, wakeups: Wakeups) -> None:
        """Redrives wake this process's receivers of the subscriptions they fill."""
        self._db = database
        self._wakeups = wakeups

    async def count(self, topic: str, subscription_id: str | None) -> int:
        """Entries of a topic (of one subscription), counted on an index."""
        clause, args = _where(topic, subscription_id)

        def job(conn: sqlite3.Connection) -> int:
            return int(conn.execute(f"SELECT count(*) FROM dlq WHERE {clause}", args).fetchone()[0])  # noqa: S608

        return await self._db.read(job)

    async def page(
        self, topic: str, subscription_id: str | None, limit: int, cursor: str | None
    ) -> DlqPage:
        """``limit`` entries after ``cursor``, oldest first."""
        clause, args = _where(topic, subscription_id, cursor)

        def job(conn: sqlite3.Connection) -> list[bytes]:
            rows = conn.execute(
                f"SELECT body FROM dlq WHERE {clause} ORDER BY id LIMIT ?",  # noqa: S608
                [*args, limit + 1],
            ).fetchall()
            return [bytes(row[0]) for row in rows]

        entries = [codec.decode_entry(raw) for raw in await self._db.read(job)]
        more = len(entries) > limit
        entries = entries[:limit]
        return DlqPage(entries, entries[-1].id if more and entries else None)

    async def redrive(
        self, topic: str, subscription_id: str | None, ids: Sequence[str] | None
    ) -> int:
        """Back to the failing subscription, attempt 1; entries of deleted ones stay."""
        moved: dict[str, int] = {}
        async for batch in self._batches(topic, subscription_id, ids):
            for sub_id, count in (await self._db.write(_redrive_job(batch))).items():
                moved[sub_id] = moved.get(sub_id, 0) + count
        for sub_id in moved:
            self._wakeups.subscription_changed(sub_id)
        return sum(moved.values())

    async def purge(
        self, topic: str, subscription_id: str | None, ids: Sequence[str] | None
    ) -> int:
        """Delete entries; returns how many existed."""
        purged = 0
        async for batch in self._batches(topic, subscription_id, ids):
            keys = [(entry_id,) for entry_id, _, _ in batch]

            purged += await self._db.write(functools.partial(_delete, keys))
        return purged

    async def _batches(
        self, topic: str, subscription_id: str | None, ids: Sequence[str] | None
    ) -> AsyncIterator[list[_Entry]]:
        """Batches of ``(id, sub_id, body)`` of the chosen entries, oldest first."""
        if ids is not None:
            wanted = sorted(set(ids))
            for i in range(0, len(wanted), BATCH):
                chunk = wanted[i : i + BATCH]
                clause, args = _where(topic, subscription_id)
                marks = ",".join("?" * len(chunk))
                sql = f"{_SELECT} WHERE {clause} AND id IN ({marks}) ORDER BY id"
                batch = await self._db.read(functools.partial(_fetch, sql, [*args, *chunk]))
                if batch:
                    yield batch
            return
        cursor: str | None = None
        while True:
            clause, args = _where(topic, subscription_id, cursor)
            sql = f"{_SELECT} WHERE {clause} ORDER BY id LIMIT ?"
            batch = await self._db.read(functools.partial(_fetch, sql, [*args, BATCH]))
            if not batch:
                return
            yield batch
            if len(batch) < BATCH:
                return
            cursor = batch[-1][0]


_Entry = tuple[str, str, bytes]  # id, sub_id, stored entry
_SELECT = "SELECT id, sub_id, body FROM dlq"


def _fetch(sql: str, args: list[Any], conn: sqlite3.Connection) -> list[_Entry]:
    return [(str(i), str(s), bytes(b)) for i, s, b in conn.execute(sql, args)]


def _delete(keys: list[tuple[str]], conn: sqlite3.Connection) -> int:
    return conn.executemany("DELETE FROM dlq WHERE id = ?", keys).rowcount


def _redrive_job(batch: list[_Entry]) -> Callable[[sqlite3.Connection], dict[str, int]]:
    """The write job moving ``batch`` back to its subscriptions; counts moved per sub."""
    now = now_ms()
    copies = []
    for entry_id, sub_id, body in batch:
        envelope = codec.encode_envelope(codec.decode_entry(body).message)
        copies.append((entry_id, sub_id, envelope))

    def job(conn: sqlite3.Connection) -> dict[str, int]:
        moved: dict[str, int] = {}
        for entry_id, sub_id, envelope in copies:
            if (
                conn.execute("SELECT 1 FROM subscriptions WHERE id = ?", (sub_id,)).fetchone()
                is None
            ):
                continue
            if conn.execute("DELETE FROM dlq WHERE id = ?", (entry_id,)).rowcount != 1:
                continue  # redriven or purged meanwhile by someone else
            store_copy(conn, sub_id, envelope, now)
            moved[sub_id] = moved.get(sub_id, 0) + 1
        return moved

    return job
