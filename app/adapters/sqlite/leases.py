"""Leasing copies to a subscription and ending those leases.

A lease is an UPDATE of the copy's row: ``due_at`` becomes the lease's expiry and a fresh
``lease_token`` names it. A process that dies leaves its copies to fall due again when
their leases expire; ending a lease checks the token, so an outcome recorded by a process
whose lease was taken over is refused (the settling calls answer False). Every copy leased
by one call shares its token, so a batch of acknowledgements is one DELETE per lease call
it came from (:mod:`.bulk`), not one per copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import secrets
import socket
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from app.adapters.kit import codec
from app.adapters.kit.timing import sleep_until
from app.adapters.sqlite import bulk
from app.adapters.sqlite.database import Database
from app.adapters.sqlite.messages import drop_referring
from app.adapters.sqlite.ownership import Ownership
from app.adapters.sqlite.settings import SqliteSettings
from app.adapters.sqlite.wakeups import NEVER, Wakeups, wait_s
from app.core.errors import BackendUnavailableError
from app.core.models import Delivery, DlqEntry, Subscription, now_ms

_Row = tuple[int, int, bytes]  # message seq, attempt, envelope (b"": missing)


class Receipt(NamedTuple):
    """The adapter's handle on one lease: the copy's message and the lease's token."""

    msg: int
    token: int


_ROWS = (
    "SELECT c.msg AS msg, c.attempt AS attempt, c.due_at AS due_at, ifnull(m.body, x'') AS body "
    "FROM copies AS c LEFT JOIN messages AS m ON m.seq = c.msg WHERE c.sub_id = :sub AND {where} "
    "ORDER BY {order} LIMIT :limit"
)
_IN_ONE_ROW = (
    "SELECT group_concat(printf('%d %d %d %d', msg, attempt, due_at, length(body)), ' '), "
    "CAST(group_concat(body, '') AS BLOB), "
    "(SELECT min(due_at) FROM copies WHERE sub_id = :sub AND {later}) "
    "FROM ({rows})"
)
"""The copies to lease, their envelopes included, and when the first copy not taken falls
due, as one row: one step of one statement, so the writer thread gives up the GIL once, not
once per copy (see :mod:`.bulk`)."""


@dataclass(frozen=True, slots=True)
class _Pick:
    """Which copies a lease takes (``where``, in ``order``), and which it leaves (``later``)."""

    where: str
    order: str
    later: str


_DUE = _Pick("c.due_at <= :now", "c.due_at", "due_at > :now")
_IN_ORDER = _Pick(
    "CASE WHEN c.lease_token IS NULL THEN c.due_at <= :now ELSE c.lease_owner IS NOT :marker END",
    "c.msg",
    "lease_token IS NULL AND due_at > :now",
)
"""An ordered subscription's lease, by its owner: copies in publish order (``msg``), due ones
and those leased by anyone but this ownership (a previous owner's, expired or not: they come
first again, in order); this ownership's own leases are skipped."""
_OF_LEASE = "sub_id = ? AND lease_token = ? AND msg IN (?*)"
_LEASE = (
    "UPDATE copies SET due_at = ?, lease_token = ?, lease_owner = ? "
    "WHERE sub_id = ? AND msg IN (?*)"
)


def default_owner() -> str:
    """``host:pid``: whose lease a row is, readable in the database."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Leases:
    """receive / ack / retry_at / dead_letter / release for the SQLite adapter."""

    def __init__(self, database: Database, settings: SqliteSettings, wakeups: Wakeups) -> None:
        """Leases are written through ``database``; ``wakeups`` tells receivers of news."""
        self._db = database
        self._settings = settings
        self._wakeups = wakeups
        self.owner = default_owner()
        self.ownership = Ownership(database, self.owner)

    # -- receive -------------------------------------------------------------------------

    async def receive(
        self, subscription: Subscription, max_count: int, wait_ms: int
    ) -> list[Delivery]:
        """Lease up to ``max_count`` due copies, waiting up to ``wait_ms`` for the first.

        A lease is attempted only when something may be due (this process wrote to the
        subscription, another process committed, a known due time came): an idle
        subscription costs no write.
        """
        deadline = time.monotonic() + wait_ms / 1000
        deadline_ms = now_ms() + wait_ms
        if max_count <= 0 or (subscription.ordered and not self.ownership.owns(subscription.id)):
            await sleep_until(deadline)
            return []
        waiter = self._wakeups.waiter(subscription.id, subscription.topic)
        while True:
            if now_ms() >= waiter.next_due:
                waiter.event.clear()
                waiter.next_due = NEVER
                try:
                    deliveries, next_due = await self._lease(subscription, max_count)
                except BackendUnavailableError:
                    waiter.next_due = 0
                    await sleep_until(deadline)
                    return []
                waiter.next_due = min(waiter.next_due, NEVER if next_due is None else next_due)
                if deliveries:
                    return deliveries
            timeout = wait_s(waiter, deadline_ms)
            if timeout <= 0 and now_ms() >= deadline_ms:
                return []
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter.event.wait(), timeout)
            if self._wakeups.waiter(subscription.id, subscription.topic) is not waiter:
                return []  # deleted meanwhile

    async def wait_for_work(self, subscription: Subscription, timeout_s: float) -> None:
        """Until something of the subscription may be due (a write of this process, a commit
        of another, a known due time) or ``timeout_s``; holds no lease.
        """
        waiter = self._wakeups.waiter(subscription.id, subscription.topic)
        if now_ms() >= waiter.next_due:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(waiter.event.wait(), wait_s(waiter, now_ms() + timeout_s * 1000))

    async def _lease(
        self, subscription: Subscription, max_count: int
    ) -> tuple[list[Delivery], int | None]:
        now = now_ms()
        until = now + self._settings.visibility_ms(subscription.timeout_ms)
        token = secrets.randbits(62)
        owner = self.owner
        sub_id = subscription.id
        marker = self.ownership.markers.get(sub_id) if subscription.ordered else None
        if marker is not None:
            owner = marker

        pick = _DUE if marker is None else _IN_ORDER
        args = {"sub": sub_id, "now": now, "limit": max_count, "marker": marker}

        def job(conn: sqlite3.Connection) -> tuple[list[_Row], int | None]:
            rows, later = select_copies(conn, pick, args)
            if rows:
                bulk.where_in(conn, _LEASE, (until, token, owner, sub_id), [r[0] for r in rows])
            if len(rows) == max_count:
                return rows, now  # there may be more: look again at once
            if rows and marker is None:  # leased now, due again when the lease expires
                later = until if later is None else min(later, until)
            return rows, later

        rows, next_due = await self._db.write(job, durable=False)
        deliveries = []
        broken: list[tuple[Delivery, DlqEntry]] = []
        for msg, attempt, body in rows:
            receipt = Receipt(msg, token)
            try:
                if not body:
                    raise KeyError("the stored message is missing")
                envelope = codec.decode_envelope(body)
            except codec.DECODE_ERRORS as exc:
                entry = codec.undecodable_entry(subscription.topic, sub_id, body, exc, attempt)
                broken.append((Delivery(sub_id, entry.message, attempt, receipt), entry))
                continue
            deliveries.append(Delivery(sub_id, envelope, attempt, receipt))
        for delivery, entry in broken:  # never dropped: kept in the DLQ as text
            await self.dead_letter(delivery, entry)
        return deliveries, next_due

    # -- ending leases -------------------------------------------------------------------

    async def ack(self, deliveries: Sequence[Delivery]) -> bool:
        """Delete the copies; False when some lease had ended already."""
        groups = _by_lease(deliveries)

        def job(conn: sqlite3.Connection) -> int:
            return sum(
                drop_referring(conn, "copies", _OF_LEASE, key, msgs) for key, msgs in groups.items()
            )

        return await self._db.write(job, durable=False, lazy=True) == len(deliveries)

    async def retry_at(self, delivery: Delivery, due_at_ms: int) -> bool:
        """Turn the leased copy into attempt + 1, due at ``due_at_ms``, in one UPDATE."""
        receipt = _receipt(delivery)
        args = (delivery.attempt + 1, due_at_ms, delivery.subscription_id, *receipt)

        def job(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE copies SET attempt = ?, due_at = ?, lease_token = NULL, "
                "lease_owner = NULL WHERE sub_id = ? AND msg = ? AND lease_token = ?",
                args,
            )
            return cursor.rowcount == 1

        done = await self._db.write(job, durable=False)
        if done:
            self._wakeups.subscription_changed(delivery.subscription_id, due_at_ms)
        return done

    async def dead_letter(self, delivery: Delivery, entry: DlqEntry) -> bool:
        """Delete the copy and file the DLQ entry in one transaction; False if not ours."""
        key = (delivery.subscription_id, *_receipt(delivery))
        row = (entry.id, entry.topic, entry.subscription_id, codec.encode_entry(entry))

        def job(conn: sqlite3.Connection) -> bool:
            if (
                drop_referring(conn, "copies", "sub_id = ? AND msg = ? AND lease_token = ?", key)
                != 1
            ):
                return False
            conn.execute(
                "INSERT OR REPLACE INTO dlq (id, topic, sub_id, body) VALUES (?,?,?,?)", row
            )
            return True

        return await self._db.write(job, durable=False)

    async def release(self, deliveries: Sequence[Delivery]) -> None:
        """Hand copies back untried: same attempt, first in line on the next receive."""
        groups = _by_lease(deliveries)

        def job(conn: sqlite3.Connection) -> None:
            for key, msgs in groups.items():
                bulk.where_in(
                    conn,
                    "UPDATE copies SET due_at = 0, lease_token = NULL, lease_owner = NULL "
                    "WHERE sub_id = ? AND lease_token = ? AND msg IN (?*)",
                    key,
                    msgs,
                )

        await self._db.write(job, durable=False)
        for sub_id in {d.subscription_id for d in deliveries}:
            self._wakeups.subscription_changed(sub_id)


def select_copies(
    conn: sqlite3.Connection, pick: _Pick, args: dict[str, Any]
) -> tuple[list[_Row], int | None]:
    """``(msg, attempt, envelope)`` of the copies ``pick`` takes (an envelope is ``b""`` when
    its message is missing), and the earliest due time of those it leaves (None: none).
    ``args``: ``sub``, ``now``, ``limit`` and ``marker`` (ordered subscriptions).
    """
    rows_sql, one_row_sql = _statements(pick)
    meta, joined, later = conn.execute(one_row_sql, args).fetchone()
    if meta is None:
        return [], later
    numbers = [int(n) for n in meta.split(" ")]
    lengths = numbers[3::4]
    if sum(lengths) != len(joined):  # a body stored as text (``length`` counts characters)
        rows = conn.execute(rows_sql, args).fetchall()
        return [(int(r[0]), int(r[1]), _as_bytes(r[3])) for r in rows], later
    found: list[tuple[int, int, int, bytes]] = []
    start = 0
    by_due = pick.order == "c.due_at"
    for index, length in enumerate(lengths):
        msg, attempt, due_at = numbers[4 * index : 4 * index + 3]
        found.append((due_at if by_due else 0, msg, attempt, joined[start : start + length]))
        start += length
    found.sort()  # the aggregate's input order is not promised: ``order`` again (msg: unique)
    return [(msg, attempt, body) for _, msg, attempt, body in found], later


@functools.cache
def _statements(pick: _Pick) -> tuple[str, str]:
    """The row-by-row and the one-row statement of ``pick``."""
    rows = _ROWS.format(where=pick.where, order=pick.order)
    return rows, _IN_ONE_ROW.format(rows=rows, later=pick.later)


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


def _by_lease(deliveries: Sequence[Delivery]) -> dict[tuple[str, int], list[int]]:
    """Message seqs of ``deliveries`` per (subscription, lease token)."""
    groups: dict[tuple[str, int], list[int]] = {}
    for delivery in deliveries:
        msg, token = _receipt(delivery)
        groups.setdefault((delivery.subscription_id, token), []).append(msg)
    return groups


def _receipt(delivery: Delivery) -> Receipt:
    receipt = delivery.receipt
    if not isinstance(receipt, Receipt):
        raise TypeError(f"not a SQLite lease: {receipt!r}")
    return receipt
