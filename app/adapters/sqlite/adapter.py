"""The SQLite adapter: durable and embedded, shared by the processes of one host.

One file in WAL mode holds subscriptions, each message once with every subscription's copy
of it, the DLQ and idempotency keys. Writes are group-committed by one writer thread per process;
several ``hookline serve`` processes (``--workers N``) share the file through SQLite's
write lock, leases with an owner and an expiry, and one watcher task per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from app.adapters.kit import codec
from app.adapters.kit.facade import BrokerFacade
from app.adapters.kit.settings import parse_settings
from app.adapters.sqlite.database import Database
from app.adapters.sqlite.dlq import DeadLetterStore
from app.adapters.sqlite.insight import SqliteInsightStore
from app.adapters.sqlite.leases import Leases
from app.adapters.sqlite.messages import NewMessage, store_copy, store_messages
from app.adapters.sqlite.registry import SubscriptionRegistry
from app.adapters.sqlite.room import Room
from app.adapters.sqlite.schema import probe
from app.adapters.sqlite.settings import SqliteSettings
from app.adapters.sqlite.stats import list_topics, topic_stats
from app.adapters.sqlite.wakeups import Wakeups
from app.core.errors import BackendUnavailableError, ConfigError, SubscriptionExistsError
from app.core.insight import InsightSettings
from app.core.models import Envelope, Subscription, TopicStats, now_ms
from app.core.ports import OutgoingMessage, RegistryChanges

logger = logging.getLogger("hookline.sqlite")

SWEEP_INTERVAL_S = 60.0
"""How often expired idempotency keys are deleted."""

_SWEEP_BATCH = 1000


class SqliteAdapter(BrokerFacade):
    """Implementation of :class:`app.core.ports.QueueAdapter` on one SQLite file."""

    name = "sqlite"
    shared_across_processes = True
    leases: Leases
    dlq: DeadLetterStore

    def __init__(self, settings: SqliteSettings) -> None:
        """No I/O: :meth:`start` opens the file (:meth:`from_config` probes it first)."""
        self.settings = settings
        self.database = Database(settings)
        self.wakeups = Wakeups(self.database, settings.poll_interval_ms)
        self.registry = SubscriptionRegistry(self.database)
        self.leases = Leases(self.database, settings, self.wakeups)
        self.dlq = DeadLetterStore(self.database, self.wakeups)
        self.room = Room(settings)
        self._tasks: list[asyncio.Task[None]] = []
        self._insight_stores: list[SqliteInsightStore] = []
        self._insight: SqliteInsightStore | None = None
        """The store whose message rows each publish writes itself (same bytes, same commit)."""

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SqliteAdapter:
        """Validate one ``config:`` block (tests, benchmarks) and open it as :meth:`probed`."""
        return cls.probed(parse_settings(SqliteSettings, config))

    @classmethod
    def probed(cls, settings: SqliteSettings) -> SqliteAdapter:
        """The adapter, once its file proved usable: a corrupt, unwritable or misplaced path
        is a :class:`ConfigError` in one line at start, not a 503 on every request.
        """
        try:
            probe(settings)
        except ValueError as exc:
            raise ConfigError(f"adapter.config: {exc}") from exc
        return cls(settings)

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Open the connections and start the watcher and the sweeper; never raises."""
        if self._tasks:
            return
        try:
            await self.database.open()
        except sqlite3.Error:
            logger.exception("cannot open the sqlite database %s", self.settings.path)
            return
        self._tasks = [
            asyncio.create_task(self.wakeups.run(), name="sqlite-wakeups"),
            asyncio.create_task(self._sweep(), name="sqlite-sweeper"),
        ]

    async def close(self) -> None:
        """Stop background work and close the file; unended leases expire and are redone."""
        for store in self._insight_stores:
            await store.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self.database.close()

    async def ping(self) -> bool:
        """True when the file answers a query now."""
        try:
            return bool(await self.database.read(lambda conn: conn.execute("SELECT 1").fetchone()))
        except BackendUnavailableError:
            return False

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            with contextlib.suppress(BackendUnavailableError):
                while (
                    await self.database.write(_sweep_job(now_ms()), durable=False) == _SWEEP_BATCH
                ):
                    pass

    # -- messages -----------------------------------------------------------------------

    async def claim_order(self, subscription: Subscription) -> bool:
        """See :class:`app.core.ports.OrderingPort` (a lease row in ``owners``)."""
        ownership = self.leases.ownership
        before = ownership.owns(subscription.id)
        owned = await ownership.claim(subscription)
        if owned and not before:
            # Taken over: the previous owner's leased copies are due for us now.
            self.wakeups.subscription_changed(subscription.id)
        return owned

    async def release_order(self, subscription: Subscription) -> None:
        """See :class:`app.core.ports.OrderingPort`."""
        await self.leases.ownership.release(subscription)

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        """A copy per current subscription of each topic, committed before this returns."""
        if not messages:
            return
        now = now_ms()
        rows = [
            NewMessage(
                m.envelope.topic,
                m.deliver_at_ms if m.deliver_at_ms is not None and m.deliver_at_ms > now else now,
                codec.encode_envelope(m.envelope),
                m.envelope.id,
            )
            for m in messages
        ]
        insight = self._insight

        def job(conn: sqlite3.Connection) -> None:
            self.room.check(conn)
            kept = store_messages(conn, rows, logged=insight is not None)
            if insight is not None:
                insight.record_messages(conn, kept, now)

        await self.database.write(job)
        if insight is not None:
            insight.recorded([m.envelope.id for m in messages])
        for topic in {m.envelope.topic for m in messages}:
            self.wakeups.topic_changed(topic)

    # -- delivery insight (InsightAdapter) -------------------------------------------------

    def insight_store(self, settings: InsightSettings) -> SqliteInsightStore:
        """Insight in the same file: every process sharing it sees every other's."""
        store = SqliteInsightStore(self.database, settings, self.room)
        self._insight_stores.append(store)
        if self._insight is None:
            # Publishes write the message rows of this store in their own job: the envelope
            # is encoded once and lookup sees a message as soon as its 202 is sent.
            self._insight = store
        return store

    async def requeue(self, subscription: Subscription, envelope: Envelope) -> None:
        """A fresh copy (attempt 1) of ``envelope`` for the subscription, due now."""
        body, due_at, sub_id = codec.encode_envelope(envelope), now_ms(), subscription.id

        def job(conn: sqlite3.Connection) -> None:
            self.room.check(conn)
            store_copy(conn, sub_id, body, due_at)

        await self.database.write(job)
        self.wakeups.subscription_changed(subscription.id)

    async def park_scheduled(self, subscription: Subscription) -> int:
        """Make every scheduled (unleased, not yet due) copy due now, in one UPDATE: a
        paused subscription's due copies are not leased, so they wait there until resume.
        """
        now = now_ms()
        args = (now, subscription.id, now)

        def job(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "UPDATE copies SET due_at = ? WHERE sub_id = ? AND lease_token IS NULL "
                "AND due_at > ?",
                args,
            ).rowcount

        moved = await self.database.write(job, durable=False)
        if moved:
            self.wakeups.subscription_changed(subscription.id, now)
        return moved

    # -- subscription registry -----------------------------------------------------------

    async def create_subscription(self, subscription: Subscription) -> None:
        """Register; it receives copies of messages published from now on."""
        if not await self.registry.create(subscription):
            raise SubscriptionExistsError(subscription.id)

    async def update_subscription(self, subscription: Subscription) -> None:
        """Replace the stored definition (its pending copies are kept)."""
        await self.registry.put(subscription)

    async def get_subscription(self, subscription_id: str) -> Subscription | None:
        """One subscription, as every process sees it."""
        return await self.registry.get(subscription_id)

    async def registry_version(self) -> str:
        """A counter every registry change bumps, shared through the file."""
        return await self.registry.version()

    async def registry_changes(self, since: str) -> RegistryChanges | None:
        """From the change table, written in the same transaction as each change."""
        return await self.registry.changes(since)

    async def list_subscriptions(self, topic: str | None = None) -> list[Subscription]:
        """All subscriptions (of one topic), oldest first."""
        return await self.registry.list(topic)

    async def delete_subscription(self, subscription_id: str) -> bool:
        """Unregister and drop its copies in one transaction (its DLQ entries stay)."""
        removed = await self.registry.remove(subscription_id)
        self.wakeups.forget(subscription_id)
        return removed

    # -- idempotency ----------------------------------------------------------------------

    async def claim_idempotency_key(
        self, topic: str, key: str, message_id: str, ttl_ms: int
    ) -> str | None:
        """Remember ``key`` until its TTL passes; the earlier message id if it is taken."""
        now = now_ms()
        expires = now + max(1, ttl_ms)

        def job(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                "SELECT message_id, expires_at FROM idempotency WHERE topic = ? AND key = ?",
                (topic, key),
            ).fetchone()
            if row is not None and int(row[1]) > now:
                return str(row[0])
            conn.execute(
                "INSERT OR REPLACE INTO idempotency (topic, key, message_id, expires_at) "
                "VALUES (?,?,?,?)",
                (topic, key, message_id, expires),
            )
            return None

        return await self.database.write(job)

    async def release_idempotency_key(self, topic: str, key: str) -> None:
        """Forget a key whose publish failed."""

        def job(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM idempotency WHERE topic = ? AND key = ?", (topic, key))

        await self.database.write(job)

    # -- introspection -------------------------------------------------------------------

    async def topic_stats(self, topic: str) -> TopicStats:
        """Backlog, in flight, scheduled and DLQ per subscription."""
        return await topic_stats(self.database, topic)

    async def list_topics(self) -> list[str]:
        """Topics with subscriptions, or with DLQ entries left by deleted ones."""
        return await list_topics(self.database)


def _sweep_job(now: int) -> Any:
    def job(conn: sqlite3.Connection) -> int:
        return conn.execute(
            "DELETE FROM idempotency WHERE (topic, key) IN (SELECT topic, key FROM "
            "idempotency WHERE expires_at < ? LIMIT ?)",
            (now, _SWEEP_BATCH),
        ).rowcount

    return job
