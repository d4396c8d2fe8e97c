"""Per-topic figures for ``GET /v1/topics/{topic}``, read in one snapshot.

A copy is *backlog* when due (an expired lease included: it is up for grabs again),
*in flight* while leased, *scheduled* while waiting for its due time.
"""

from __future__ import annotations

import sqlite3

from app.adapters.sqlite.database import Database
from app.core.models import SubscriptionStats, TopicStats, now_ms


async def topic_stats(database: Database, topic: str) -> TopicStats:
    """Backlog, in flight, scheduled and DLQ per subscription of ``topic``."""
    now = now_ms()

    def job(conn: sqlite3.Connection) -> TopicStats:
        conn.execute("BEGIN")
        try:
            subs = [
                str(row[0])
                for row in conn.execute(
                    "SELECT id FROM subscriptions WHERE topic = ? ORDER BY created_at, id",
                    (topic,),
                )
            ]
            stats = []
            for sub_id in subs:
                backlog = conn.execute(
                    "SELECT count(*) FROM copies WHERE sub_id = ? AND due_at <= ?", (sub_id, now)
                ).fetchone()[0]
                in_flight, scheduled = conn.execute(
                    "SELECT count(lease_token), count(*) - count(lease_token) FROM copies "
                    "WHERE sub_id = ? AND due_at > ?",
                    (sub_id, now),
                ).fetchone()
                dlq = conn.execute(
                    "SELECT count(*) FROM dlq WHERE topic = ? AND sub_id = ?", (topic, sub_id)
                ).fetchone()[0]
                stats.append(
                    SubscriptionStats(
                        sub_id, int(backlog), int(in_flight), int(scheduled), int(dlq)
                    )
                )
            total = conn.execute("SELECT count(*) FROM dlq WHERE topic = ?", (topic,)).fetchone()
        finally:
            conn.execute("COMMIT")
        return TopicStats(topic=topic, subscriptions=stats, dlq=int(total[0]))

    return await database.read(job)


async def list_topics(database: Database) -> list[str]:
    """Topics with subscriptions, or with DLQ entries left by deleted ones."""

    def job(conn: sqlite3.Connection) -> list[str]:
        rows = conn.execute(
            "SELECT topic FROM subscriptions UNION SELECT DISTINCT topic FROM dlq ORDER BY 1"
        ).fetchall()
        return [str(row[0]) for row in rows]

    return await database.read(job)
