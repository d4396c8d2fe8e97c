"""The database file: its tables, how a connection to it is opened, and the start-up probe.

A published message is stored once, in ``messages`` (its envelope), and counted in
``refs``: how many rows point at it. Each subscription's copy of it is a small row of
``copies`` keyed by ``(sub_id, msg)``, the message's publish sequence: a lease is an UPDATE
of that row (``due_at`` becomes the lease's expiry, ``lease_token`` names the lease), so an
expired lease is simply due again; the index on ``(sub_id, due_at, attempt)`` serves
receiving (it holds every column a lease reads from the copy), waiting and counting, and
the key itself is publish order for ordered subscriptions (owned by one instance at a time,
``owners``). The delivery insight log's message rows
(``ins_messages``) point at the same stored envelope. A message is deleted in the statement
that counts its last reference down (its last copy acknowledged, dead-lettered or deleted,
and the insight log done with it): the ``refs_gone`` trigger.

The count lives in a table of its own, not beside the envelope: counting down rewrites the
page holding the count, and a page of ``refs`` holds hundreds of counts where a page of
``messages`` holds three or four ~1 KB envelopes (an acknowledgement of 30 copies dirtied,
and wrote to the WAL, about ten envelope pages; now one page: drain 0.65 -> 0.69 of
builtin's in the duel).

Older files are migrated in place when this hookline first opens them (:mod:`.migrate`):
version 1 kept an envelope in each copy and insight row, version 2 kept the count in
``messages``.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from app.adapters.sqlite.bulk import STATEMENT_CACHE
from app.adapters.sqlite.migrate import move_rows, set_aside
from app.adapters.sqlite.settings import SqliteSettings

SCHEMA_VERSION = 3

DDL = """
CREATE TABLE IF NOT EXISTS subscriptions (
    id TEXT PRIMARY KEY,
    topic TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS registry_version (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT OR IGNORE INTO registry_version (id, version) VALUES (1, 0);
CREATE TABLE IF NOT EXISTS registry_changes (
    version INTEGER PRIMARY KEY,
    sub_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS subscriptions_topic ON subscriptions (topic);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS refs (
    msg INTEGER PRIMARY KEY,
    n INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS refs_gone AFTER UPDATE OF n ON refs WHEN new.n <= 0 BEGIN
    DELETE FROM messages WHERE seq = new.msg;
    DELETE FROM refs WHERE msg = new.msg;
END;
CREATE TABLE IF NOT EXISTS copies (
    sub_id TEXT NOT NULL,
    msg INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    due_at INTEGER NOT NULL,
    lease_token INTEGER,
    lease_owner TEXT,
    PRIMARY KEY (sub_id, msg)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS copies_due ON copies (sub_id, due_at, attempt);
CREATE TABLE IF NOT EXISTS owners (
    sub_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dlq (
    id TEXT PRIMARY KEY,
    topic TEXT NOT NULL,
    sub_id TEXT NOT NULL,
    body BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dlq_topic ON dlq (topic, id);
CREATE INDEX IF NOT EXISTS dlq_sub ON dlq (topic, sub_id, id);
CREATE TABLE IF NOT EXISTS idempotency (
    topic TEXT NOT NULL,
    key TEXT NOT NULL,
    message_id TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (topic, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idempotency_expiry ON idempotency (expires_at);
CREATE TABLE IF NOT EXISTS ins_messages (
    id TEXT PRIMARY KEY,
    touched_at INTEGER NOT NULL,
    msg INTEGER
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ins_messages_touched ON ins_messages (touched_at);
CREATE TABLE IF NOT EXISTS ins_marks (
    message_id TEXT NOT NULL,
    sub_id TEXT NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (message_id, sub_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ins_attempts (
    seq INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL,
    sub_id TEXT NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS ins_attempts_message ON ins_attempts (message_id, sub_id, seq);
CREATE TABLE IF NOT EXISTS ins_log (
    seq INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    sub_id TEXT NOT NULL,
    at INTEGER NOT NULL,
    ok INTEGER NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS ins_log_sub ON ins_log (topic, sub_id, seq);
CREATE INDEX IF NOT EXISTS ins_log_at ON ins_log (at);
"""
"""Every table. ``refs.n`` counts the ``copies`` and ``ins_messages`` rows pointing at the
message ``refs.msg``: whoever stores a message sets it to the rows it inserts with it, and
whoever deletes such rows counts them down in the same statement group; the count reaching
zero deletes the message (``refs_gone``, :func:`.messages.drop_referring`).
"""

PAGE_SIZE = 4096

SECURE_DELETE = "FAST"
"""Deleted rows are zeroed inside the pages they leave, not in pages freed whole (Debian's
SQLite zeroes those too by default: a WAL frame per freed page, ~1.5 us per delivery of
commit and checkpoint work, measured). A freed page keeps its old bytes until reused."""

JOURNAL_SIZE_LIMIT = 4 * 1024 * 1024
"""Bytes of WAL file kept after the WAL restarts (the rest is truncated)."""


def connect(settings: SqliteSettings) -> sqlite3.Connection:
    """A connection in WAL mode, autocommit (transactions are explicit), waiting on locks.

    ``check_same_thread`` is off: a connection is opened by the caller and then used by one
    dedicated thread only (the writer's or the reader's).
    """
    conn = sqlite3.connect(
        settings.path,
        isolation_level=None,
        check_same_thread=False,
        timeout=settings.busy_timeout_ms / 1000,
        cached_statements=STATEMENT_CACHE,
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {settings.busy_timeout_ms}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {settings.synchronous.upper()}")
        conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
        conn.execute(f"PRAGMA secure_delete = {SECURE_DELETE}")
        if settings.max_bytes:
            conn.execute(f"PRAGMA max_page_count = {max(1, settings.max_bytes // PAGE_SIZE)}")
    except BaseException:
        conn.close()
        raise
    return conn


def statements(script: str) -> list[str]:
    """The complete SQL statements of ``script`` (a trigger's body keeps its semicolons)."""
    found: list[str] = []
    pending = ""
    for part in script.split(";"):
        pending += part + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                found.append(pending.strip())
            pending = ""
    return found


def create_schema(conn: sqlite3.Connection) -> None:
    """Create what is missing, migrating an older file first (idempotent; concurrent starts
    wait on the write lock, and only the first migrates).
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        _check_version(version)
        set_aside(conn, version)
        for statement in statements(DDL):
            conn.execute(statement)
        move_rows(conn, version)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise


def _check_version(version: int) -> None:
    if version > SCHEMA_VERSION:
        raise ValueError(f"written by a newer hookline (schema {version} > {SCHEMA_VERSION})")


def probe(settings: SqliteSettings) -> None:
    """Open the file, create the schema, prove it writable; ``ValueError`` in one line if not.

    Runs once while the app is built, before anything serves, so a corrupt file or an
    unwritable path stops ``hookline serve`` and ``check-config`` with a clear message
    instead of answering 503 forever.
    """
    path = Path(settings.path)
    where = f"path {settings.path!r}"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"{where}: cannot create its directory ({exc.strerror})") from exc
    if path.is_dir():
        raise ValueError(f"{where}: is a directory, expected a database file")
    try:
        conn = connect(settings)
    except sqlite3.Error as exc:
        raise ValueError(f"{where}: cannot open ({_reason(exc)})") from exc
    try:
        create_schema(conn)
        conn.execute("BEGIN IMMEDIATE")  # proves the write lock and the journal are usable
        conn.execute("ROLLBACK")
    except sqlite3.DatabaseError as exc:
        raise ValueError(f"{where}: {_reason(exc)}") from exc
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from exc
    finally:
        conn.close()


def _reason(exc: sqlite3.Error) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "not a database" in text or "malformed" in text:
        return f"not a usable SQLite database ({text}); move it away or fix the path"
    if "readonly" in text or "read-only" in text:
        return f"not writable ({text})"
    return text
