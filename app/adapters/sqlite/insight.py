"""Delivery insight on SQLite: in the adapter's file, so every process sharing it sees it.

Tables (:mod:`.schema`)::

    ins_messages (id, touched_at, msg)       when the message was last written, and its
                                            stored envelope in ``messages`` (NULL while
                                            only marks or attempts came)
    ins_marks    (message_id, sub_id, body) a copy's state mark when no attempt implies it
                                            (filtered, parked, a held in_flight...): an
                                            attempt of the copy deletes it
    ins_attempts (seq, message_id, sub_id, body)     a message's attempts, oldest first
    ins_log      (seq, topic, sub_id, at, ok, body)  each subscription's attempt log

The envelope is the one the queue's copies point at: a publish writes it once, with its
``ins_messages`` row, and it stays (``messages.refs`` counts that row) until the log
forgets the message, however soon its copies are delivered. An attempt is kept twice, as on
Redis (a list per message and a stream per subscription): the two are bounded
independently. A whole batch of the recorder is one job of the adapter's group-commit
writer thread, a few multi-row statements (it shares the commit with deliveries' acks and
leases, off the event loop); reads run on the reader connection, one snapshot each.

Bounds, as on Redis: a message is forgotten ``retention_ms`` after its last write (to within
:func:`touch_slack_ms`: 1 % of it, a minute at most; reads hide it at once, a periodic
delete removes it), the oldest-touched messages beyond ``max_messages`` go too; each
(message, subscription) keeps its newest ``max_attempts_per_message`` attempts (trimmed
when a series passes it; reads show the newest that many); a subscription's log loses
entries older than ``retention_ms`` and beyond its newest ``max_attempts_per_subscription``
(periodic deletes, in bounded batches so that no commit holds the write lock long).

Cost per delivered message (one attempt): its ``ins_messages`` row, written by the publish
(and written again only by a write more than the slack later), no mark (the attempt implies
it; a probe deletes a stale one), the attempt twice (~200 bytes each) and their index
entries, in the same commit as the delivery's own writes; and its envelope stays
``retention_ms`` (capped by ``max_messages``) after delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from app.adapters.kit import codec
from app.adapters.sqlite import bulk
from app.adapters.sqlite.database import Database
from app.adapters.sqlite.messages import drop_referring, store_one
from app.adapters.sqlite.room import Room
from app.core.codec import encode_json
from app.core.errors import BackendUnavailableError
from app.core.insight import (
    AttemptOutcome,
    AttemptPage,
    AttemptRecord,
    InsightBatch,
    InsightSettings,
    MessageInsight,
    StateMark,
    merge_marks,
)
from app.core.models import now_ms

logger = logging.getLogger("hookline.sqlite")

T = TypeVar("T")

TOUCH_SLACK_MS = 60_000
"""A message's last write moves its expiry only when it comes at least this long (or 1 % of
``retention_ms`` if less) after the previous one: a delivery seconds after its publish
writes no ``ins_messages`` row and index entry of its own."""


def touch_slack_ms(settings: InsightSettings) -> int:
    """How much sooner than ``retention_ms`` after its last write a message may be forgotten:
    a write within this long of the one that set its expiry does not move it.
    """
    return min(TOUCH_SLACK_MS, settings.retention_ms // 100)


MAX_RECORDED = 200_000
"""Ids of published messages awaiting the recorder's flush, at most."""

SWEEP_BATCH = 1000
"""Rows one sweeping job deletes at most (one short commit each)."""

MAX_SWEEP_INTERVAL_MS = 5000


def sweep_interval_s(settings: InsightSettings) -> float:
    """How often expired and excess facts are deleted (reads hide them meanwhile)."""
    return min(MAX_SWEEP_INTERVAL_MS, max(100, settings.retention_ms // 4)) / 1000


class SqliteInsightStore:
    """Implementation of :class:`app.core.ports.InsightStore` on the adapter's file."""

    def __init__(self, database: Database, settings: InsightSettings, room: Room) -> None:
        """Writes go through ``database``'s writer thread, reads through its reader; ``room``
        keeps the log out of the headroom deliveries need when the disk fills (the recorder
        then drops the batch, as in any outage of the store).
        """
        self._db = database
        self._room = room
        self._settings = settings
        self._written_logs: set[tuple[str, str]] = set()
        self._task: asyncio.Task[None] | None = None
        self._touch = (
            " ON CONFLICT (id) DO UPDATE SET touched_at = excluded.touched_at WHERE "
            f"excluded.touched_at - ins_messages.touched_at > {touch_slack_ms(settings):d}"
        )
        self._recorded: set[str] = set()
        """Ids whose rows a publish wrote (:meth:`record_messages`): the recorder's copy of
        those envelopes is not written again (bounded by ``MAX_RECORDED``).
        """

    # -- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        """Start the periodic deletes (the tables are the schema's)."""
        if self._task is None:
            self._task = asyncio.create_task(self._sweep_forever(), name="sqlite-insight-sweep")

    async def close(self) -> None:
        """Stop the periodic deletes (the adapter closes the file)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- writing --------------------------------------------------------------------------

    def record_messages(
        self, conn: sqlite3.Connection, kept: list[tuple[str, int]], now: int
    ) -> None:
        """Rows for the ``(message id, seq)`` pairs a publish stored with a reference for the
        log (:func:`.messages.store_messages`), inside its job: a publish keeps its messages
        for lookup in the commit that accepts them, and the envelope is written once.
        """
        _keep(conn, [(message_id, now, seq) for message_id, seq in kept])

    def recorded(self, message_ids: list[str]) -> None:
        """Those messages' rows are committed (called on the event loop after the publish)."""
        if len(self._recorded) > MAX_RECORDED:
            self._recorded.clear()  # facts the recorder dropped: at worst a second write
        self._recorded.update(message_ids)

    async def write(self, batch: InsightBatch) -> None:
        """The whole batch in one job of the next group commit."""
        if not len(batch):
            return
        now = now_ms()
        touched: dict[str, bytes | None] = {}
        for record in batch.attempts:
            touched.setdefault(record.message_id, None)
        for mark in batch.marks:
            touched.setdefault(mark.message_id, None)
        recorded = self._recorded
        for envelope in batch.messages:
            if envelope.id in recorded:
                recorded.discard(envelope.id)
            else:
                touched[envelope.id] = codec.encode_envelope(envelope)
        attempts = []
        log = []
        cap = self._settings.max_attempts_per_message
        pairs: set[tuple[str, str]] = set()
        attempted: set[tuple[str, str]] = set()
        for record in batch.attempts:
            raw = encode_json(record.to_dict())
            attempts.append((record.message_id, record.subscription_id, raw))
            attempted.add((record.message_id, record.subscription_id))
            ok = record.outcome == "succeeded"
            log.append((record.topic, record.subscription_id, record.started_at, ok, raw))
            if record.attempt > cap:
                # Only a series longer than the cap can overflow it (a resent message's
                # earlier series stay until retention forgets the message: reads show the
                # newest ``cap``).
                pairs.add((record.message_id, record.subscription_id))
        marks = [
            (m.message_id, m.subscription_id, encode_json(m.to_dict()))
            for m in batch.marks
            if not (m.implied and (m.message_id, m.subscription_id) in attempted)
        ]
        # A copy's state is its stored mark, else its newest attempt's: an attempt makes
        # any stored mark of the copy stale (a mark the batch sets again is written after).
        cleared: dict[str, list[str]] = {}
        for message_id, sub_id in attempted:
            cleared.setdefault(sub_id, []).append(message_id)
        if not touched:
            return  # only messages, which their publishes wrote already

        touches = [(message_id, now) for message_id, body in touched.items() if body is None]
        bodies = [(message_id, body) for message_id, body in touched.items() if body is not None]
        trims = [(message_id, sub_id, cap) for message_id, sub_id in pairs]
        touch = self._touch

        def job(conn: sqlite3.Connection) -> None:
            self._room.check(conn)
            bulk.insert(conn, "INSERT INTO ins_messages (id, touched_at)", touches, touch)
            _write_rows(conn, now, bodies, attempts, log, trims, cleared, marks)

        await self._db.write(job, durable=False, lazy=True)
        self._written_logs.update((r.topic, r.subscription_id) for r in batch.attempts)

    # -- reading --------------------------------------------------------------------------

    async def get_message(self, message_id: str) -> MessageInsight | None:
        """The message, its marks and its attempts, read in one snapshot."""
        horizon = now_ms() - self._settings.retention_ms
        cap = self._settings.max_attempts_per_message

        def job(conn: sqlite3.Connection) -> MessageInsight | None:
            conn.execute("BEGIN")
            try:
                row = conn.execute(
                    "SELECT i.touched_at, m.body FROM ins_messages AS i LEFT JOIN messages "
                    "AS m ON m.seq = i.msg WHERE i.id = ?",
                    (message_id,),
                ).fetchone()
                if row is None or int(row[0]) < horizon:
                    return None
                marks = conn.execute(
                    "SELECT sub_id, body FROM ins_marks WHERE message_id = ?", (message_id,)
                ).fetchall()
                attempts = conn.execute(
                    "SELECT sub_id, body FROM ins_attempts WHERE message_id = ? ORDER BY seq",
                    (message_id,),
                ).fetchall()
            finally:
                conn.execute("COMMIT")
            by_sub: dict[str, list[AttemptRecord]] = {}
            for sub_id, raw in attempts:
                by_sub.setdefault(str(sub_id), []).append(
                    AttemptRecord.from_dict(codec.decode(raw))
                )
            kept = {sub: records[-cap:] for sub, records in by_sub.items()}
            explicit = {str(sub): StateMark.from_dict(codec.decode(raw)) for sub, raw in marks}
            return MessageInsight(
                codec.decode_envelope(row[1]) if row[1] is not None else None,
                merge_marks(explicit, kept),
                kept,
            )

        return await self._read(job)

    async def list_attempts(
        self,
        topic: str,
        subscription_id: str,
        *,
        outcome: AttemptOutcome | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> AttemptPage:
        """Newest first; the cursor is the log sequence number of the last one returned."""
        horizon = now_ms() - self._settings.retention_ms
        before = int(cursor) if cursor and cursor.isdigit() else None
        sql = "SELECT seq, body FROM ins_log WHERE topic = ? AND sub_id = ? AND at >= ?"
        args: list[Any] = [topic, subscription_id, horizon]
        if before is not None:
            sql += " AND seq < ?"
            args.append(before)
        if outcome is not None:
            sql += " AND ok = ?"
            args.append(outcome == "succeeded")
        sql += " ORDER BY seq DESC LIMIT ?"
        args.append(limit + 1)

        def job(conn: sqlite3.Connection) -> list[tuple[int, bytes]]:
            return conn.execute(sql, args).fetchall()

        rows = await self._read(job)
        more = len(rows) > limit
        rows = rows[:limit]
        return AttemptPage(
            [AttemptRecord.from_dict(codec.decode(raw)) for _, raw in rows],
            str(rows[-1][0]) if more and rows else None,
        )

    async def recent_attempts(
        self, topic: str, subscription_id: str, limit: int
    ) -> list[AttemptRecord]:
        """Newest first, one index range."""
        page = await self.list_attempts(topic, subscription_id, limit=limit)
        return page.attempts

    async def _read(self, job: Callable[[sqlite3.Connection], T]) -> T:
        return await self._db.read(job)

    # -- bounds ---------------------------------------------------------------------------

    async def _sweep_forever(self) -> None:
        interval = sweep_interval_s(self._settings)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sweep()
            except BackendUnavailableError as exc:
                logger.debug("cannot delete expired insight yet: %s", exc)

    async def sweep(self) -> None:
        """Delete what retention and the caps no longer keep, in short commits."""
        settings = self._settings
        write = self._db.write
        while await write(_forget_messages(now_ms() - settings.retention_ms), durable=False):
            pass
        # Counted once per sweep (a count visits every row): then deleted in short commits.
        excess = await self._read(_excess_messages(settings.max_messages))
        while excess > 0:
            forgotten = await write(_forget_oldest(min(excess, SWEEP_BATCH)), durable=False)
            if not forgotten:
                break
            excess -= forgotten
        while await self._db.write(_expire_log(now_ms() - settings.retention_ms), durable=False):
            pass
        logs, self._written_logs = self._written_logs, set()
        cap = settings.max_attempts_per_subscription
        for topic, sub_id in logs:
            await self._db.write(_cap_log(topic, sub_id, cap), durable=False)


Job = Callable[[sqlite3.Connection], bool]


def _write_rows(
    conn: sqlite3.Connection,
    now: int,
    bodies: list[tuple[str, bytes]],
    attempts: list[tuple[str, str, bytes]],
    log: list[tuple[str, str, int, bool, bytes]],
    trims: list[tuple[str, str, int]],
    cleared: dict[str, list[str]],
    marks: list[tuple[str, str, bytes]],
) -> None:
    """One flush of the recorder, in the writer thread: a few multi-row statements."""
    for message_id, body in bodies:  # not stored by a publish of this process: rare
        seq = store_one(conn, body)
        _keep(conn, [(message_id, now, seq)])
    bulk.insert(conn, "INSERT INTO ins_attempts (message_id, sub_id, body)", attempts)
    bulk.insert(conn, "INSERT INTO ins_log (topic, sub_id, at, ok, body)", log)
    if trims:
        conn.executemany(
            "DELETE FROM ins_attempts WHERE message_id = ?1 AND sub_id = ?2 AND seq <= "
            "(SELECT seq FROM ins_attempts WHERE message_id = ?1 AND sub_id = ?2 "
            "ORDER BY seq DESC LIMIT 1 OFFSET ?3)",
            trims,
        )
    # Nearly always no row: primary-key probes that dirty no page, an IN list per
    # subscription (one statement step, not one per row: see :mod:`.bulk`).
    for sub_id, message_ids in cleared.items():
        bulk.where_in(
            conn,
            "DELETE FROM ins_marks WHERE sub_id = ? AND message_id IN (?*)",
            (sub_id,),
            message_ids,
        )
    bulk.insert(
        conn,
        "INSERT INTO ins_marks (message_id, sub_id, body)",
        marks,
        " ON CONFLICT (message_id, sub_id) DO UPDATE SET body = excluded.body",
    )


def _keep(conn: sqlite3.Connection, rows: list[tuple[str, int, int]]) -> None:
    """``ins_messages`` rows ``(id, touched_at, seq)`` for messages just stored with a count
    for them; a row the id had already (a message id stored twice) goes first, with its
    count.
    """
    head = "INSERT INTO ins_messages (id, touched_at, msg)"
    if bulk.insert(conn, head, rows, " ON CONFLICT (id) DO NOTHING") == len(rows):
        return
    for message_id, at, seq in rows:
        row = conn.execute("SELECT msg FROM ins_messages WHERE id = ?", (message_id,)).fetchone()
        if row is None or row[0] != seq:
            drop_referring(conn, "ins_messages", "id = ?", (message_id,))
            bulk.insert(conn, head, [(message_id, at, seq)])


def _forget(conn: sqlite3.Connection, ids: list[str]) -> None:
    """Forget messages: their marks, attempts and rows (and their stored envelopes, unless
    a copy still points at one).
    """
    bulk.where_in(conn, "DELETE FROM ins_marks WHERE message_id IN (?*)", (), ids)
    bulk.where_in(conn, "DELETE FROM ins_attempts WHERE message_id IN (?*)", (), ids)
    drop_referring(conn, "ins_messages", "id IN (?*)", (), ids)


def _forget_messages(horizon: int) -> Job:
    """Messages untouched since ``horizon``; True when there may be more."""

    def job(conn: sqlite3.Connection) -> bool:
        ids = [
            str(row[0])
            for row in conn.execute(
                "SELECT id FROM ins_messages WHERE touched_at < ? LIMIT ?", (horizon, SWEEP_BATCH)
            )
        ]
        _forget(conn, ids)
        return len(ids) == SWEEP_BATCH

    return job


def _excess_messages(max_messages: int) -> Callable[[sqlite3.Connection], int]:
    """How many messages the log keeps beyond ``max_messages`` (a read)."""

    def job(conn: sqlite3.Connection) -> int:
        return int(conn.execute("SELECT count(*) FROM ins_messages").fetchone()[0]) - max_messages

    return job


def _forget_oldest(count: int) -> Callable[[sqlite3.Connection], int]:
    """Forget the ``count`` least recently touched messages; how many were forgotten."""

    def job(conn: sqlite3.Connection) -> int:
        ids = [
            str(row[0])
            for row in conn.execute(
                "SELECT id FROM ins_messages ORDER BY touched_at, msg LIMIT ?", (count,)
            )
        ]
        _forget(conn, ids)
        return len(ids)

    return job


def _expire_log(horizon: int) -> Job:
    """Log entries older than ``horizon``; True when there may be more."""

    def job(conn: sqlite3.Connection) -> bool:
        deleted = conn.execute(
            "DELETE FROM ins_log WHERE seq IN (SELECT seq FROM ins_log WHERE at < ? LIMIT ?)",
            (horizon, SWEEP_BATCH),
        ).rowcount
        return bool(deleted == SWEEP_BATCH)

    return job


def _cap_log(topic: str, sub_id: str, cap: int) -> Job:
    """Keep the newest ``cap`` entries of one subscription's log."""

    def job(conn: sqlite3.Connection) -> bool:
        conn.execute(
            "DELETE FROM ins_log WHERE topic = ?1 AND sub_id = ?2 AND seq <= (SELECT seq "
            "FROM ins_log WHERE topic = ?1 AND sub_id = ?2 ORDER BY seq DESC LIMIT 1 OFFSET ?3)",
            (topic, sub_id, cap),
        )
        return False

    return job
