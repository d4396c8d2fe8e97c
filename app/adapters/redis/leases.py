"""Leasing copies to a subscription and ending those leases.

A lease is a pending entry of the subscription's consumer group, on the topic stream
(first attempts) or on the subscription's own stream (retries, delayed publishes,
releases, redrives). Both are read by one script per call: due scheduled copies are
promoted, leases of silent consumers are claimed (XAUTOCLAIM, only once idle past the
visibility timeout), then new entries are read, up to ``max_count`` in all. When there
is nothing, the caller waits on the subscription's local event (:mod:`.wakeups`), set by
a notification when its topic or own stream gets work: no connection is held meanwhile.
While other consumers hold leases of the subscription, waits are capped at the claim
interval, so the leases of a consumer that dies are taken over on time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from app.adapters.kit import codec
from app.adapters.kit.timing import sleep_until
from app.adapters.redis.coalesce import ScriptCoalescer
from app.adapters.redis.codec import Receipt, decode_leases, receipt_of
from app.adapters.redis.connection import RedisConnection
from app.adapters.redis.groups import ConsumerGroups
from app.adapters.redis.lua_messages import ACK, DEAD_LETTER, RECEIVE, RELEASE, RETRY
from app.adapters.redis.names import NameSpace
from app.adapters.redis.ownership import Ownership
from app.adapters.redis.settings import RedisSettings
from app.adapters.redis.timer import DueTimer
from app.adapters.redis.wakeups import Wakeups
from app.core.errors import BackendUnavailableError
from app.core.models import Delivery, DlqEntry, Subscription, now_ms

logger = logging.getLogger("hookline.redis")

PROMOTE_LIMIT = 500
"""Scheduled copies moved per call; more are moved by the next call."""

LEASE_CONCURRENCY = 32
"""Lease scripts in flight at once per process: ten thousand loops starting together
queue here instead of opening a pool connection each (Redis runs scripts one at a time
anyway)."""

ACK_CHUNK = 1000
"""Ids per XACK script call (keeps Lua's argument unpacking well inside its limits)."""

_HEADER = 5  # status, next due, stream cursor, queue cursor, claimed

TAKEOVER_BATCH = 1000
"""Pending entries claimed per call when an ordered subscription changes owner."""


@dataclass(slots=True)
class _ClaimState:
    """Where this process's XAUTOCLAIM scan of one subscription stands."""

    next_at: float = 0.0
    stream_cursor: str = "0-0"
    queue_cursor: str = "0-0"


class Leases:
    """receive / ack / retry_at / dead_letter / release for the Redis adapter."""

    def __init__(
        self,
        connection: RedisConnection,
        keys: NameSpace,
        settings: RedisSettings,
        groups: ConsumerGroups,
        timer: DueTimer,
        consumer: str,
        wakeups: Wakeups,
        scripts: ScriptCoalescer,
    ) -> None:
        """``consumer`` is this process's name in every group (unique per process);
        ``scripts`` batches the hot script calls of a loop turn.
        """
        self._conn = connection
        self._scripts = scripts
        self._keys = keys
        self._settings = settings
        self._groups = groups
        self._timer = timer
        self.consumer = consumer
        self._wakeups = wakeups
        self._lease_slots = asyncio.Semaphore(LEASE_CONCURRENCY)
        self._watch_others: set[str] = set()
        """Subscriptions whose leases other consumers held at our last empty lease."""
        self._claims: dict[str, _ClaimState] = {}
        self.settled_topics: set[str] = set()
        """Topics with leases ended since maintenance last trimmed them."""
        self.touched: dict[str, str] = {}
        """Subscriptions this process leased from (id -> topic), to tidy up at close."""
        self.ownership = Ownership(connection, keys, consumer, scripts)

    # -- receive -------------------------------------------------------------------------

    async def receive(
        self, subscription: Subscription, max_count: int, wait_ms: int
    ) -> list[Delivery]:
        """Lease up to ``max_count`` copies, blocking up to ``wait_ms`` for the first.

        An outage is waited out here (and logged once by the connection) rather than
        raised, so each receive loop resumes within one wait of Redis coming back.
        """
        deadline = time.monotonic() + wait_ms / 1000
        ordered = subscription.ordered
        if max_count <= 0 or (ordered and subscription.id not in self.ownership.owned):
            await sleep_until(deadline)
            return []
        self.touched[subscription.id] = subscription.topic
        if ordered and subscription.id in self.ownership.takeover:
            try:
                taken = await self._take_over(subscription)
            except BackendUnavailableError:
                await sleep_until(deadline)
                return []
            if taken:
                return taken
        recovered = False
        try:
            while True:
                # Cleared before leasing: work notified from now on sets it again.
                self._wakeups.event(subscription.topic, subscription.id).clear()
                reply = await self._lease(subscription, max_count)
                status = reply[0]
                if status == "wait":
                    if int(reply[_HEADER]) > 0:
                        self._watch_others.add(subscription.id)
                    else:
                        self._watch_others.discard(subscription.id)
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return []
                    await self.wait_for_work(subscription, remaining)
                    continue
                deliveries = decode_leases(subscription.id, subscription.topic, reply, _HEADER)
                if deliveries or status != "nogroup":
                    return deliveries
                if recovered or not await self._groups.recover(subscription):
                    await sleep_until(deadline)
                    return []
                recovered = True
        except BackendUnavailableError:
            await sleep_until(deadline)
            return []

    async def wait_for_work(self, subscription: Subscription, timeout_s: float) -> None:
        """Until notified, or at most the claim interval while others hold leases."""
        if subscription.id in self._watch_others:
            timeout_s = min(timeout_s, self._settings.claim_interval_ms / 1000)
        await self._wakeups.wait(subscription.topic, subscription.id, timeout_s)

    async def _take_over(self, subscription: Subscription) -> list[Delivery]:
        """A new owner's first lease: every pending entry of the group, whoever holds it
        and however recently, own stream first then topic stream, each in id order.

        Released entries sit on the subscription's own stream and are older than anything
        pending on the topic stream of their key, so this is publish order per key. It may
        return more than the worker asked for (at most what the previous owner held).
        """
        tk = self._keys.topic(subscription.topic)
        keys = [tk.stream, tk.queue(subscription.id), tk.schedule(subscription.id), tk.waiting]
        cursors = ("0-0", "0-0")
        taken: list[Delivery] = []
        while True:
            args = [
                subscription.id,
                self.consumer,
                TAKEOVER_BATCH,
                now_ms(),
                "1",
                0,
                cursors[0],
                cursors[1],
                0,
                "0",
            ]
            async with self._lease_slots:
                reply: list[str] = await self._conn.run(RECEIVE, keys, args)
            if reply[0] == "nogroup":
                break
            if reply[0] == "ok":  # 'wait' carries a count where leases would be
                taken += decode_leases(subscription.id, subscription.topic, reply, _HEADER)
            cursors = (reply[2], reply[3])
            if cursors == ("0-0", "0-0"):
                break
        self.ownership.takeover.discard(subscription.id)
        return taken

    async def _lease(self, subscription: Subscription, max_count: int) -> list[str]:
        tk = self._keys.topic(subscription.topic)
        state = self._claims.setdefault(subscription.id, _ClaimState())
        started = time.monotonic()
        # An ordered subscription's owner never claims: it holds every pending entry itself
        # (a keyed retry waits with its lease), and took over the others' when it became owner.
        claim = started >= state.next_at and not subscription.ordered
        args = [
            subscription.id,
            self.consumer,
            max_count,
            now_ms(),
            "1" if claim else "0",
            self._settings.visibility_ms(subscription.timeout_ms),
            state.stream_cursor,
            state.queue_cursor,
            PROMOTE_LIMIT,
            "1",
        ]
        keys = [tk.stream, tk.queue(subscription.id), tk.schedule(subscription.id), tk.waiting]
        async with self._lease_slots:
            reply: list[str] = await self._scripts.run(RECEIVE, keys, args)
        if reply[1]:
            self._timer.notify(subscription.topic, subscription.id, int(float(reply[1])))
        if claim and reply[0] != "nogroup":
            state.stream_cursor, state.queue_cursor = reply[2], reply[3]
            claimed = int(reply[4])
            scan_done = state.stream_cursor == "0-0" and state.queue_cursor == "0-0"
            # Keep claiming on the next call while a dead consumer's backlog remains.
            if claimed < max_count and scan_done:
                state.next_at = started + self._settings.claim_interval_ms / 1000
        return reply

    # -- ending leases -------------------------------------------------------------------

    async def ack(self, deliveries: Sequence[Delivery]) -> bool:
        """XACK (and XDEL from the subscription's own stream) in as few calls as possible.

        False when some entry was no longer pending (its lease ended elsewhere already).
        """
        batches: dict[tuple[str, str], tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
        for delivery in deliveries:
            receipt = receipt_of(delivery)
            stream_ids, queue_ids = batches[(receipt.topic, delivery.subscription_id)]
            (stream_ids if receipt.source == "t" else queue_ids).append(receipt.entry_id)
        calls = []
        for (topic, sub_id), (stream_ids, queue_ids) in batches.items():
            self.settled_topics.add(topic)
            tk = self._keys.topic(topic)
            keys = [tk.stream, tk.queue(sub_id)]
            for i in range(0, max(len(stream_ids), len(queue_ids)), ACK_CHUNK):
                t_ids, q_ids = stream_ids[i : i + ACK_CHUNK], queue_ids[i : i + ACK_CHUNK]
                calls.append(self._scripts.run(ACK, keys, [sub_id, len(t_ids), *t_ids, *q_ids]))
        acked = await asyncio.gather(*calls)
        return sum(int(n) for n in acked) == len(deliveries)

    async def retry_at(self, delivery: Delivery, due_at_ms: int) -> bool:
        """End the lease and schedule the next attempt, in one script.

        False when the lease is no longer ours (another consumer claimed it after we were
        silent past the visibility timeout): its holder's outcome decides instead.
        """
        receipt = receipt_of(delivery)
        self.settled_topics.add(receipt.topic)
        tk = self._keys.topic(receipt.topic)
        sub_id = delivery.subscription_id
        keys = [tk.stream, tk.queue(sub_id), tk.schedule(sub_id), tk.waiting]
        now = now_ms()
        args = [
            sub_id,
            self.consumer,
            receipt.source,
            receipt.entry_id,
            due_at_ms,
            now,
            delivery.attempt + 1,
            receipt.envelope_json,
        ]
        done = bool(await self._scripts.run(RETRY, keys, args))
        if done and due_at_ms > now:
            self._timer.notify(receipt.topic, sub_id, due_at_ms)
        return done

    async def dead_letter(self, delivery: Delivery, entry: DlqEntry) -> bool:
        """End the lease and file the DLQ entry, in one script; False if not ours."""
        receipt = receipt_of(delivery)
        self.settled_topics.add(receipt.topic)
        tk = self._keys.topic(receipt.topic)
        sub_id = delivery.subscription_id
        keys = [tk.stream, tk.queue(sub_id), tk.dlq, tk.dlq_all, tk.dlq_sub(entry.subscription_id)]
        args = [
            sub_id,
            self.consumer,
            receipt.source,
            receipt.entry_id,
            entry.id,
            codec.encode_entry(entry).decode(),
        ]
        return bool(await self._scripts.run(DEAD_LETTER, keys, args))

    async def release(self, deliveries: Sequence[Delivery]) -> None:
        """Hand copies back untried: same attempt, first in line on the next receive."""
        batches: dict[tuple[str, str], list[tuple[Delivery, Receipt]]] = defaultdict(list)
        for delivery in deliveries:
            receipt = receipt_of(delivery)
            batches[(receipt.topic, delivery.subscription_id)].append((delivery, receipt))
        calls = []
        for (topic, sub_id), items in batches.items():
            self.settled_topics.add(topic)
            tk = self._keys.topic(topic)
            args: list[str | int] = [sub_id, self.consumer]
            for delivery, receipt in items:
                args += [receipt.source, receipt.entry_id, delivery.attempt, receipt.envelope_json]
            calls.append(
                self._scripts.run(RELEASE, [tk.stream, tk.queue(sub_id), tk.waiting], args)
            )
        await asyncio.gather(*calls)
