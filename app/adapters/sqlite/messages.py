"""Storing messages: each envelope once in ``messages`` with its count in ``refs``, and a
small ``copies`` row per subscription pointing at it (see :mod:`.schema`).

A whole job's rows go in a few multi-row statements (:mod:`.bulk`). Sequence numbers are
taken inside the writer's transaction, which holds the file's write lock: they follow
commit order across every process sharing the file, which is the publish order ordered
subscriptions deliver in.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

from app.adapters.sqlite import bulk


class NewMessage(NamedTuple):
    """One message to store: where its copies go, when they are due, its stored envelope."""

    topic: str
    due_at: int
    body: bytes
    message_id: str


def next_seq(conn: sqlite3.Connection) -> int:
    """The sequence number of the next message stored (call inside the write transaction)."""
    return int(conn.execute("SELECT coalesce(max(seq), 0) + 1 FROM messages").fetchone()[0])


def store_messages(
    conn: sqlite3.Connection, messages: Sequence[NewMessage], *, logged: bool
) -> list[tuple[str, int]]:
    """Store ``messages`` with a copy (attempt 1) for every subscription of each one's topic.

    ``logged``: the insight log keeps each message too (its count includes that row, which
    the caller writes in the same job from the returned ``(message id, seq)`` pairs). A
    message nobody keeps (no subscription, no log) is not stored.
    """
    subscribers: dict[str, list[str]] = {}
    for topic in {m.topic for m in messages}:
        subscribers[topic] = [
            str(row[0])
            for row in conn.execute("SELECT id FROM subscriptions WHERE topic = ?", (topic,))
        ]
    seq = next_seq(conn)
    pin = 1 if logged else 0
    stored: list[tuple[int, bytes]] = []
    counts: list[tuple[int, int]] = []
    copies: list[tuple[str, int, int, int]] = []
    kept: list[tuple[str, int]] = []
    for message in messages:
        subs = subscribers[message.topic]
        refs = len(subs) + pin
        if not refs:
            continue
        stored.append((seq, message.body))
        counts.append((seq, refs))
        copies.extend((sub_id, seq, 1, message.due_at) for sub_id in subs)
        if logged:
            kept.append((message.message_id, seq))
        seq += 1
    bulk.insert(conn, "INSERT INTO messages (seq, body)", stored)
    bulk.insert(conn, "INSERT INTO refs (msg, n)", counts)
    bulk.insert(conn, "INSERT INTO copies (sub_id, msg, attempt, due_at)", copies)
    return kept


def store_one(conn: sqlite3.Connection, body: bytes) -> int:
    """Store one envelope for one row pointing at it (its caller inserts that row); its seq."""
    seq = next_seq(conn)
    conn.execute("INSERT INTO messages (seq, body) VALUES (?, ?)", (seq, body))
    conn.execute("INSERT INTO refs (msg, n) VALUES (?, 1)", (seq,))
    return seq


def store_copy(conn: sqlite3.Connection, sub_id: str, body: bytes, due_at: int) -> bool:
    """A message of its own with one copy (attempt 1) for ``sub_id``, if it still exists:
    a resend or a redrive, which go behind every message stored before them.
    """
    if conn.execute("SELECT 1 FROM subscriptions WHERE id = ?", (sub_id,)).fetchone() is None:
        return False
    seq = store_one(conn, body)
    conn.execute(
        "INSERT INTO copies (sub_id, msg, attempt, due_at) VALUES (?, ?, 1, ?)",
        (sub_id, seq, due_at),
    )
    return True


def drop_referring(
    conn: sqlite3.Connection,
    table: Literal["copies", "ins_messages"],
    where: str,
    before: Sequence[Any] = (),
    values: Sequence[Any] | None = None,
) -> int:
    """Delete the rows of ``table`` matching ``where`` (at most one per message) and count
    them down in ``refs`` (which deletes the messages they were the last to point at: the
    ``refs_gone`` trigger); returns the rows of ``table`` deleted.

    ``where`` takes the parameters ``before``, then, when ``values`` is given, a list of
    ``values`` in place of its ``(?*)`` (:func:`.bulk.in_lists`). Set-based: two
    statements per chunk, whatever the number of rows.
    """
    count_down = f"UPDATE refs SET n = n - 1 WHERE msg IN (SELECT msg FROM {table} WHERE {where})"  # noqa: S608
    delete = f"DELETE FROM {table} WHERE {where}"  # noqa: S608
    if values is None:
        conn.execute(count_down, before)
        return conn.execute(delete, before).rowcount
    deleted = 0
    for part in bulk.in_lists(values):
        args = [*before, *part]
        conn.execute(bulk.in_sql(count_down, len(part)), args)
        deleted += conn.execute(bulk.in_sql(delete, len(part)), args).rowcount
    return deleted
