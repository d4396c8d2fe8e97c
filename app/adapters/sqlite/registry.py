"""The subscription registry: one table every process sharing the file reads.

Writes go through the writer thread (so a publish in the same commit sees the change);
reads go to the reader thread and always see the latest commit of any process.
"""

from __future__ import annotations

import sqlite3

from app.adapters.kit import codec
from app.adapters.kit.change_log import KEEP_CHANGES
from app.adapters.sqlite.database import Database
from app.adapters.sqlite.messages import drop_referring
from app.core.models import Subscription
from app.core.ports import RegistryChanges


class SubscriptionRegistry:
    """Create, read, replace and remove subscription definitions."""

    def __init__(self, database: Database) -> None:
        """Rows live in the ``subscriptions`` table."""
        self._db = database

    async def create(self, subscription: Subscription) -> bool:
        """Store a new subscription; False when the id is taken."""
        row = _row(subscription)

        def job(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO subscriptions (id, topic, created_at, body) "
                "VALUES (?,?,?,?)",
                row,
            )
            if cursor.rowcount != 1:
                return False
            _bump(conn, subscription.id)
            return True

        return await self._db.write(job)

    async def put(self, subscription: Subscription) -> None:
        """Store or replace (its pending copies are kept)."""
        row = _row(subscription)

        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO subscriptions (id, topic, created_at, body) VALUES (?,?,?,?) "
                "ON CONFLICT (id) DO UPDATE SET topic = excluded.topic, body = excluded.body",
                row,
            )
            _bump(conn, subscription.id)

        await self._db.write(job)

    async def remove(self, subscription_id: str) -> bool:
        """Forget a subscription and its pending copies (its DLQ entries stay)."""

        def job(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute("DELETE FROM subscriptions WHERE id = ?", (subscription_id,))
            if cursor.rowcount != 1:
                return False
            drop_referring(conn, "copies", "sub_id = ?", (subscription_id,))
            _bump(conn, subscription_id)
            return True

        return await self._db.write(job)

    async def version(self) -> str:
        """Bumped in the same transaction as every change: one cheap read to follow them."""

        def job(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT version FROM registry_version WHERE id = 1").fetchone()
            return 0 if row is None else int(row[0])

        return str(await self._db.read(job))

    async def changes(self, since: str) -> RegistryChanges | None:
        """Ids changed after version ``since``, from the change table (one read)."""
        if not since.isdigit():
            return None
        seen = int(since)

        def job(conn: sqlite3.Connection) -> RegistryChanges | None:
            (version,) = conn.execute(
                "SELECT version FROM registry_version WHERE id = 1"
            ).fetchone()
            if seen > version:
                return None
            if seen == version:
                return RegistryChanges(str(version))
            (oldest,) = conn.execute("SELECT MIN(version) FROM registry_changes").fetchone()
            if oldest is None or oldest > seen + 1:
                return None
            rows = conn.execute(
                "SELECT sub_id FROM registry_changes WHERE version > ? AND version <= ? "
                "ORDER BY version",
                (seen, version),
            ).fetchall()
            return RegistryChanges(str(version), list(dict.fromkeys(r[0] for r in rows)))

        return await self._db.read(job)

    async def get(self, subscription_id: str) -> Subscription | None:
        """One subscription, read fresh."""

        def job(conn: sqlite3.Connection) -> bytes | None:
            row = conn.execute(
                "SELECT body FROM subscriptions WHERE id = ?", (subscription_id,)
            ).fetchone()
            return None if row is None else bytes(row[0])

        raw = await self._db.read(job)
        return None if raw is None else Subscription.from_dict(codec.decode(raw))

    async def list(self, topic: str | None = None) -> list[Subscription]:
        """All subscriptions (of ``topic``), oldest first."""

        def job(conn: sqlite3.Connection) -> list[bytes]:
            if topic is None:
                rows = conn.execute(
                    "SELECT body FROM subscriptions ORDER BY created_at, id"
                ).fetchall()
            else:
                rows = conn.execute(
                    "SELECT body FROM subscriptions WHERE topic = ? ORDER BY created_at, id",
                    (topic,),
                ).fetchall()
            return [bytes(row[0]) for row in rows]

        return [Subscription.from_dict(codec.decode(raw)) for raw in await self._db.read(job)]


def _bump(conn: sqlite3.Connection, subscription_id: str) -> None:
    """Bump the version and log the change under it (the newest changes are kept)."""
    conn.execute("UPDATE registry_version SET version = version + 1 WHERE id = 1")
    (version,) = conn.execute("SELECT version FROM registry_version WHERE id = 1").fetchone()
    conn.execute(
        "INSERT OR REPLACE INTO registry_changes (version, sub_id) VALUES (?, ?)",
        (version, subscription_id),
    )
    conn.execute("DELETE FROM registry_changes WHERE version <= ?", (version - KEEP_CHANGES,))


def _row(subscription: Subscription) -> tuple[str, str, int, bytes]:
    return (
        subscription.id,
        subscription.topic,
        subscription.created_at,
        codec.encode(subscription.to_dict()),
    )
