"""WAL checkpoints off the writer thread, so a commit never pays for copying the WAL back.

SQLite's automatic checkpoint runs inside the ``COMMIT`` that crosses
``wal_autocheckpoint`` pages: the writer (and every publish waiting on its group commit)
stalls while a thousand pages are copied into the database file and it is synced. The
writer's connection turns that off; this thread, on a connection of its own, runs
``PRAGMA wal_checkpoint(PASSIVE)`` at most every ``INTERVAL_S`` after commits happened.
PASSIVE never takes a lock a writer or reader waits for, so it changes nothing that
commits promise: a commit is as durable in the WAL as in the database file.

Under a write load that never pauses, a PASSIVE checkpoint backfills what was committed
when it started while new frames keep arriving, so the WAL would never restart (and a long
WAL slows every read: each page is looked up in the WAL index first). When it passes
``MAX_WAL_FRAMES`` the checkpointer runs one RESTART checkpoint instead: writers wait
(their busy timeout) while it backfills the rest, and the next transaction restarts the
WAL from its beginning; ``journal_size_limit`` then truncates the file. That keeps the
WAL, and the disk it takes, bounded.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

from app.adapters.sqlite.schema import connect
from app.adapters.sqlite.settings import SqliteSettings

logger = logging.getLogger("hookline.sqlite")

INTERVAL_S = 0.25
"""Pause between two checkpoints while commits keep coming (more pages coalesce per run)."""

MAX_WAL_FRAMES = 1_000
"""About 4 MB of WAL (SQLite's own auto-checkpoint size): past it one RESTART checkpoint
makes the WAL start over, so a small or nearly full disk is not eaten by the WAL."""


class Checkpointer:
    """One thread and connection per process that move the WAL into the database file."""

    def __init__(self, settings: SqliteSettings) -> None:
        """No I/O: :meth:`start` connects."""
        self._settings = settings
        self._committed = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.restarts = 0
        """RESTART checkpoints run because the WAL outgrew ``MAX_WAL_FRAMES``."""
        self.runs = 0
        """Checkpoints run by this thread (tests and the bench read it)."""

    def start(self) -> None:
        """Connect (in the caller's thread, so an error surfaces there) and start."""
        if self._thread is not None:
            return
        conn = connect(self._settings)
        self._thread = threading.Thread(
            target=self._loop, args=(conn,), name="sqlite-checkpoint", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (blocking: call it off the event loop)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            self._committed.set()
            thread.join()

    def committed(self) -> None:
        """The writer committed: there is something to checkpoint."""
        self._committed.set()

    def _loop(self, conn: sqlite3.Connection) -> None:
        try:
            while True:
                self._committed.wait()
                if self._stop.is_set():
                    return
                self._committed.clear()
                self._checkpoint(conn)
                # Let commits accumulate: one checkpoint copies a page rewritten by many.
                if self._stop.wait(INTERVAL_S):
                    return
        finally:
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        try:
            busy, frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            self.runs += 1
            if not busy and frames > MAX_WAL_FRAMES:
                conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
                self.restarts += 1
        except sqlite3.Error as exc:  # disk full, I/O: the WAL keeps every commit meanwhile
            logger.debug("checkpoint failed: %s", exc)
