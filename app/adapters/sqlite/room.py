"""Whether a publish may still be accepted: headroom is kept for draining.

A database that is completely full cannot even lease or acknowledge (those write too), so
publishes stop short of the limit: a fraction of ``max_bytes``, and ``min_free_disk_bytes``
of the disk. What is refused answers 503; what is held keeps being delivered.

The free disk counted is what is left once the write-ahead log has been copied into the
database file: a burst of publishes can fill the log faster than checkpoints empty it, and
each of its pages then needs room twice (log and file) until the log starts over. A disk
that fills in the middle of a checkpoint leaves the log unable to start over and every
later write (acks too) failing, so the check keeps the log's size in reserve.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from app.adapters.sqlite.schema import PAGE_SIZE
from app.adapters.sqlite.settings import SqliteSettings
from app.core.errors import BackendUnavailableError


class Room:
    """The publish-side limits of one database file."""

    def __init__(self, settings: SqliteSettings) -> None:
        """Limits come from ``max_bytes`` and ``min_free_disk_bytes``."""
        database = Path(settings.path).resolve()
        self._directory = str(database.parent)
        self._wal = f"{database}-wal"
        self._min_free = settings.min_free_disk_bytes
        hard_pages = settings.max_bytes // PAGE_SIZE
        self._max_pages = hard_pages - max(16, hard_pages // 8) if hard_pages else 0

    def check(self, conn: sqlite3.Connection) -> None:
        """Raise :class:`BackendUnavailableError` when a publish would eat the headroom."""
        if self._max_pages:
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            free = conn.execute("PRAGMA freelist_count").fetchone()[0]
            if pages - free >= self._max_pages:
                raise BackendUnavailableError("sqlite: the database is full (max_bytes)")
        if self._min_free:
            stat = os.statvfs(self._directory)
            if stat.f_bavail * stat.f_frsize - self._wal_bytes() < self._min_free:
                raise BackendUnavailableError(
                    "sqlite: the disk is full (less than min_free_disk_bytes left)"
                )

    def _wal_bytes(self) -> int:
        """The write-ahead log's size: at most what a checkpoint adds to the database file."""
        try:
            return os.stat(self._wal).st_size
        except FileNotFoundError:
            return 0
