"""Older database files to the current schema (3), in place.

- Version 1 kept the envelope in every copy row, and again in the insight log's message
  row; since version 2 it is stored once, in ``messages``.
- Version 2 kept each message's reference count in its ``messages`` row; version 3 keeps it
  in ``refs``, and the copies' due-time index holds their attempt numbers too (see
  :mod:`.schema` for why).

The move runs inside the schema transaction of the first process of this version that opens
the file (:func:`app.adapters.sqlite.schema.create_schema`), so it happens whole or not at
all, and processes starting meanwhile wait for it on the write lock. Tables whose shape
changed are renamed aside before the current tables are created (:func:`set_aside`), then
their rows move over and they are dropped (:func:`move_rows`):

- each version 1 copy becomes a message of its own whose ``seq`` is the copy's old row id
  (publish order, and so ordered subscriptions' order, is kept), with one copy row keeping
  its attempt, due time and lease (a lease of a process that ran version 1 expires and is
  handed out again, as after a crash);
- each version 1 insight message row holding an envelope points at a new message holding
  it;
- each version 2 message keeps its ``seq`` and envelope, its count moves to ``refs``.

Every process sharing the file must run the same version: stop them all before upgrading
(an older process still running fails its statements on the new tables; an older process
starting refuses the file).
"""

from __future__ import annotations

import logging
import sqlite3

logger = logging.getLogger("hookline.sqlite")


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {
        str(row[0]) for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    }


def set_aside(conn: sqlite3.Connection, version: int) -> None:
    """Rename the tables of a ``version`` file whose shape changed since (and drop their
    indexes, whose names the current schema reuses), before the current tables are created.
    """
    tables = _tables(conn)
    if version == 1:
        if "copies" in tables:
            conn.execute("DROP INDEX IF EXISTS copies_due")
            conn.execute("DROP INDEX IF EXISTS copies_order")
            conn.execute("ALTER TABLE copies RENAME TO v1_copies")
        if "ins_messages" in tables:
            conn.execute("DROP INDEX IF EXISTS ins_messages_touched")
            conn.execute("ALTER TABLE ins_messages RENAME TO v1_ins_messages")
    if version == 2:
        conn.execute("DROP INDEX IF EXISTS copies_due")  # created again with ``attempt``
        if "messages" in tables:
            conn.execute("ALTER TABLE messages RENAME TO v2_messages")


def move_rows(conn: sqlite3.Connection, version: int) -> None:
    """Move the set-aside rows of a ``version`` file into the current tables, then drop the
    old tables (nothing to do for a file of the current version or a new one).
    """
    if version == 1:
        _move_v1_rows(conn)
    elif version == 2:
        _move_v2_rows(conn)


def _move_v1_rows(conn: sqlite3.Connection) -> None:
    tables = _tables(conn)
    copies = 0
    if "v1_copies" in tables:
        conn.execute("INSERT INTO messages (seq, body) SELECT id, body FROM v1_copies")
        conn.execute("INSERT INTO refs (msg, n) SELECT id, 1 FROM v1_copies")
        copies = conn.execute(
            "INSERT INTO copies (sub_id, msg, attempt, due_at, lease_token, lease_owner) "
            "SELECT sub_id, id, attempt, due_at, lease_token, lease_owner FROM v1_copies"
        ).rowcount
        conn.execute("DROP TABLE v1_copies")
    looked_up = 0
    if "v1_ins_messages" in tables:
        base = int(conn.execute("SELECT coalesce(max(seq), 0) FROM messages").fetchone()[0])
        conn.execute(
            "INSERT INTO messages (seq, body) SELECT ? + rowid, body "
            "FROM v1_ins_messages WHERE body IS NOT NULL",
            (base,),
        )
        conn.execute(
            "INSERT INTO refs (msg, n) SELECT ? + rowid, 1 FROM v1_ins_messages "
            "WHERE body IS NOT NULL",
            (base,),
        )
        looked_up = conn.execute(
            "INSERT INTO ins_messages (id, touched_at, msg) SELECT id, touched_at, "
            "CASE WHEN body IS NULL THEN NULL ELSE ? + rowid END FROM v1_ins_messages",
            (base,),
        ).rowcount
        conn.execute("DROP TABLE v1_ins_messages")
    logger.info(
        "sqlite database migrated from schema 1: %d copies, %d insight messages",
        copies,
        looked_up,
    )


def _move_v2_rows(conn: sqlite3.Connection) -> None:
    if "v2_messages" not in _tables(conn):
        return
    moved = conn.execute("INSERT INTO messages (seq, body) SELECT seq, body FROM v2_messages")
    conn.execute("INSERT INTO refs (msg, n) SELECT seq, refs FROM v2_messages")
    conn.execute("DROP TABLE v2_messages")
    logger.info("sqlite database migrated from schema 2: %d messages", moved.rowcount)
