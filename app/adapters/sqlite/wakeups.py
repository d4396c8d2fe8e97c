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
        self._by_topic: dict[str, dict[str, Waiter]] = {}
        """The same waiters by topic: a publish wakes its topic's, not a scan of all."""

    def waiter(self, subscription_id: str, topic: str) -> Waiter:
        """The subscription's waiter, created (due now) on first use."""
        waiter = self._waiters.get(subscription_id)
        if waiter is None:
            waiter = self._waiters[subscription_id] = Waiter(topic)
            self._by_topic.setdefault(topic, {})[subscription_id] = waiter
        return waiter

    def topic_changed(self, topic: str) -> None:
        """A publish of this process to ``topic``: its receivers look at once."""
        for waiter in self._by_topic.get(topic, {}).values():
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
            same_topic = self._by_topic.get(waiter.topic, {})
            same_topic.pop(subscription_id, None)
            if not same_topic:
                self._by_topic.pop(waiter.topic, None)

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


SEEK_EACH_UP_TO = 64
"""Up to this many waiters, each one's next due copy is one index seek; beyond, one walk
over the subscriptions that have copies at all (idle ones cost nothing)."""


def _changes(
    conn: sqlite3.Connection, *, seen: int | None, ids: list[str]
) -> tuple[int, dict[str, int | None]]:
    """The data version and, when it moved, each subscription's earliest due time."""
    version = int(conn.execute("PRAGMA data_version").fetchone()[0])
    if version == seen:
        return version, {}
    conn.execute("BEGIN")
    try:
        if len(ids) <= SEEK_EACH_UP_TO:
            due = {
                sub_id: conn.execute(
                    "SELECT min(due_at) FROM copies WHERE sub_id = ?", (sub_id,)
                ).fetchone()[0]
                for sub_id in ids
            }
        else:
            due = dict.fromkeys(ids)
            due.update((k, v) for k, v in _earliest_per_subscription(conn) if k in due)
    finally:
        conn.execute("COMMIT")
    return version, due


def _earliest_per_subscription(conn: sqlite3.Connection) -> list[tuple[str, int]]:
    """(subscription, earliest due) of every subscription with copies: a skip-scan of the
    ``(sub_id, due_at)`` index, one seek per such subscription.
    """
    found: list[tuple[str, int]] = []
    after = ""
    while True:
        row = conn.execute(
            "SELECT sub_id, due_at FROM copies WHERE sub_id > ? ORDER BY sub_id, due_at LIMIT 1",
            (after,),
        ).fetchone()
        if row is None:
            return found
        after = str(row[0])
        found.append((after, int(row[1])))


def wait_s(waiter: Waiter, deadline_ms: float) -> float:
    """Seconds to sleep: until the deadline, or earlier when a copy falls due before it."""
    return max(0.0, (min(deadline_ms, waiter.next_due) - now_ms()) / 1000)
