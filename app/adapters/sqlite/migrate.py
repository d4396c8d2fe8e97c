"""Version 1 database files to version 2: each envelope stored once.

Version 1 kept the envelope in every copy row, and again in the insight log's message row.
Version 2 keeps it once, in ``messages``. The move runs inside the schema transaction of
the first version 2 process that opens the file (:func:`app.adapters.sqlite.schema.
create_schema`), so it happens whole or not at all, and processes starting meanwhile wait
for it on the write lock:

- each version 1 copy becomes a message of its own whose ``seq`` is the copy's old row id
  (publish order, and so ordered subscriptions' order, is kept), with one copy row keeping
  its attempt, due time and lease (a lease of a process that ran version 1 expires and is
  handed out again, as after a crash);
- each insight message row holding an envelope points at a new message holding it.

Every process sharing the file must run the same version: stop them all before upgrading
(a version 1 process still running fails its statements on the new tables; a version 1
process starting refuses the file).
"""

from __future__ import annotations

import logging
import sqlite3

logger = logging.getLogger("hookline.sqlite")


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {
        str(row[0]) for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    }


def set_aside_v1(conn: sqlite3.Connection) -> None:
    """Rename the version 1 tables whose shape changed (and drop their indexes, whose names
    version 2 reuses), before the version 2 tables are created.
    """
    tables = _tables(conn)
    if "copies" in tables:
        conn.execute("DROP INDEX IF EXISTS copies_due")
        conn.execute("DROP INDEX IF EXISTS copies_order")
        conn.execute("ALTER TABLE copies RENAME TO v1_copies")
    if "ins_messages" in tables:
        conn.execute("DROP INDEX IF EXISTS ins_messages_touched")
        conn.execute("ALTER TABLE ins_messages RENAME TO v1_ins_messages")


def move_v1_rows(conn: sqlite3.Connection) -> None:
    """Move the set-aside rows into the version 2 tables, then drop the old tables."""
    tables = _tables(conn)
    copies = 0
    if "v1_copies" in tables:
        conn.execute("INSERT INTO messages (seq, refs, body) SELECT id, 1, body FROM v1_copies")
        copies = conn.execute(
            "INSERT INTO copies (sub_id, msg, attempt, due_at, lease_token, lease_owner) "
            "SELECT sub_id, id, attempt, due_at, lease_token, lease_owner FROM v1_copies"
        ).rowcount
        conn.execute("DROP TABLE v1_copies")
    looked_up = 0
    if "v1_ins_messages" in tables:
        base = int(conn.execute("SELECT coalesce(max(seq), 0) FROM messages").fetchone()[0])
        conn.execute(
            "INSERT INTO messages (seq, refs, body) SELECT ? + rowid, 1, body "
            "FROM v1_ins_messages WHERE body IS NOT NULL",
            (base,),
        )
        looked_up = conn.execute(
            "INSERT INTO ins_messages (id, touched_at, msg) SELECT id, touched_at, "
            "CASE WHEN body IS NULL THEN NULL ELSE ? + rowid END FROM v1_ins_messages",
            (base,),
        ).rowcount
        conn.execute("DROP TABLE v1_ins_messages")
    logger.info(
        "sqlite database migrated to schema 2: %d copies, %d insight messages", copies, looked_up
    )
