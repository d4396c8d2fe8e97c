"""Waking receivers when work is due: at once for this process's writes, within one poll
interval for writes of other processes sharing the file.

One task per process (not per subscription) watches ``PRAGMA data_version`` on the reader
connection, which changes whenever any other connection commits. Only then does it read,
per subscription this process receives for, when its next copy is due (an index seek
each), and wakes a receiver whose next copy became due earlier than it planned to look.
An idle process costs one tiny pragma per interval.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import sqlite3
from dataclasses import dataclass, field

from app.adapters.sqlite.database import Database
from app.core.errors import BackendUnavailableError
from app.core.models import now_ms

logger = logging.getLogger("hookline.sqlite")

NEVER = math.inf


@dataclass(slots=True)
class Waiter:
    """What this process knows about one subscription's next due copy."""

    topic: str
    next_due: float = 0.0
    """Epoch ms when a lease attempt may find something (0: look now; NEVER: nothing)."""
    event: asyncio.Event = field(default_factory=asyncio.Event)

    def due(self, at_ms: float) -> None:
        """Something may be due at ``at_ms``: wake the receiver if that is earlier."""
        if at_ms < self.next_due:
            self.next_due = at_ms
            self.event.set()


class Wakeups:
    """The waiters of this process and the one task that watches the file for others."""

    def __init__(self, database: Database, interval_ms: int) -> None:
        """``interval_ms`` bounds how late work committed by another process is noticed."""
        self._db = database
        self._interval_s = interval_ms / 1000
        self._waiters: dict[str, Waiter] = {}

    def waiter(self, subscription_id: str, topic: str) -> Waiter:
        """The subscription's waiter, created (due now) on first use."""
        waiter = self._waiters.get(subscription_id)
        if waiter is None:
            waiter = self._waiters[subscription_id] = Waiter(topic)
        return waiter

    def topic_changed(self, topic: str) -> None:
        """A publish of this process to ``topic``: its receivers look at once."""
        for waiter in self._waiters.values():
            if waiter.topic == topic:
                waiter.due(0)

    def subscription_changed(self, subscription_id: str, due_at_ms: float = 0) -> None:
        """A copy of the subscription becomes due at ``due_at_ms`` (a retry, a release)."""
        waiter = self._waiters.get(subscription_id)
        if waiter is not None:
            waiter.due(due_at_ms)

    def forget(self, subscription_id: str) -> None:
        """The subscription is gone: wake its receiver so it returns, and stop tracking it."""
        waiter = self._waiters.pop(subscription_id, None)
        if waiter is not None:
            waiter.event.set()

    async def run(self) -> None:
        """Watch the file until cancelled."""
        seen: int | None = None
        while True:
            await asyncio.sleep(self._interval_s)
            if not self._waiters:
                continue
            try:
                seen, due = await self._db.read(
                    functools.partial(_changes, seen=seen, ids=list(self._waiters))
                )
            except BackendUnavailableError as exc:
                logger.debug("cannot watch the database: %s", exc)
                continue
            for sub_id, at in due.items():
                waiter = self._waiters.get(sub_id)
                if waiter is not None:
                    waiter.due(NEVER if at is None else at)


def _changes(
    conn: sqlite3.Connection, *, seen: int | None, ids: list[str]
) -> tuple[int, dict[str, int | None]]:
    """The data version and, when it moved, each subscription's earliest due time."""
    version = int(conn.execute("PRAGMA data_version").fetchone()[0])
    if version == seen:
        return version, {}
    conn.execute("BEGIN")
    try:
        due = {
            sub_id: conn.execute(
                "SELECT min(due_at) FROM copies WHERE sub_id = ?", (sub_id,)
            ).fetchone()[0]
            for sub_id in ids
        }
    finally:
        conn.execute("COMMIT")
    return version, due


def wait_s(waiter: Waiter, deadline_ms: float) -> float:
    """Seconds to sleep: until the deadline, or earlier when a copy falls due before it."""
    return max(0.0, (min(deadline_ms, waiter.next_due) - now_ms()) / 1000)
