"""The DLQ of each topic: entries by id, with lex-sorted indexes for paging.

Entry ids sort by failure time, so a lex sorted set gives oldest-first pages with the
last id as cursor, and ZCARD/HLEN give counts in O(1). A per-subscription index makes
counting, listing, redriving and purging one subscription's entries independent of how
many entries other subscriptions have.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from app.adapters.kit import codec
from app.adapters.kit.dlq import DlqFilter
from app.adapters.redis.connection import RedisConnection
from app.adapters.redis.lua_dlq import PURGE, REDRIVE
from app.adapters.redis.names import NameSpace, TopicKeys
from app.core.models import DlqEntry
from app.core.ports import DlqPage

BATCH = 500
"""Entries moved per script call during redrive and purge."""


class DeadLetterStore:
    """Count, list, redrive and purge DLQ entries."""

    def __init__(self, connection: RedisConnection, keys: NameSpace) -> None:
        """Entries live under each topic's keys."""
        self._conn = connection
        self._keys = keys

    async def count(self, topic: str, subscription_id: str | None) -> int:
        """O(1): the size of the hash or of the subscription's index."""
        tk = self._keys.topic(topic)
        client = self._conn.client
        with self._conn.translate():
            if subscription_id is None:
                return int(await client.hlen(tk.dlq))
            return int(await client.zcard(tk.dlq_sub(subscription_id)))

    async def page(
        self, topic: str, subscription_id: str | None, limit: int, cursor: str | None
    ) -> DlqPage:
        """``limit`` entries after ``cursor``, oldest first."""
        tk = self._keys.topic(topic)
        index = tk.dlq_all if subscription_id is None else tk.dlq_sub(subscription_id)
        ids = await self._ids_after(index, cursor, limit + 1)
        more = len(ids) > limit
        ids = ids[:limit]
        entries = await self._load(tk, ids)
        return DlqPage(entries, ids[-1] if more and ids else None)

    async def redrive(
        self, topic: str, subscription_id: str | None, ids: Sequence[str] | None
    ) -> int:
        """Back to the failing subscription's own stream, attempt 1; orphans stay."""
        tk = self._keys.topic(topic)
        moved = 0
        async for batch in self._select(tk, subscription_id, ids):
            subs = sorted({e.subscription_id for e in batch})
            position = {s: k for k, s in enumerate(subs, start=1)}
            keys = [tk.dlq, tk.dlq_all, tk.subs]
            for sub_id in subs:
                keys += [tk.dlq_sub(sub_id), tk.queue(sub_id)]
            keys.append(tk.waiting)
            args: list[str | int] = [len(subs), *subs]
            for entry in batch:
                envelope = codec.encode_envelope(entry.message).decode()
                args += [entry.id, position[entry.subscription_id], envelope]
            moved += int(await self._conn.run(REDRIVE, keys, args))
        return moved

    async def purge(
        self, topic: str, subscription_id: str | None, ids: Sequence[str] | None
    ) -> int:
        """Delete entries; returns how many existed."""
        tk = self._keys.topic(topic)
        purged = 0
        async for batch in self._select(tk, subscription_id, ids):
            subs = sorted({e.subscription_id for e in batch})
            position = {s: k for k, s in enumerate(subs, start=1)}
            keys = [tk.dlq, tk.dlq_all, *(tk.dlq_sub(s) for s in subs)]
            args: list[str | int] = []
            for entry in batch:
                args += [entry.id, position[entry.subscription_id]]
            purged += int(await self._conn.run(PURGE, keys, args))
        return purged

    async def _select(
        self, tk: TopicKeys, subscription_id: str | None, ids: Sequence[str] | None
    ) -> AsyncIterator[list[DlqEntry]]:
        """Batches of the chosen entries, read through the narrowest index available."""
        if ids is not None:
            wanted = list(dict.fromkeys(ids))
            selection = DlqFilter.of(subscription_id)
            for i in range(0, len(wanted), BATCH):
                batch = selection.select(await self._load(tk, wanted[i : i + BATCH]))
                if batch:
                    yield batch
            return
        index = tk.dlq_all if subscription_id is None else tk.dlq_sub(subscription_id)
        cursor: str | None = None
        while True:
            page = await self._ids_after(index, cursor, BATCH)
            if not page:
                return
            batch = await self._load(tk, page)
            if batch:
                yield batch
            if len(page) < BATCH:
                return
            cursor = page[-1]

    async def _ids_after(self, index: str, cursor: str | None, count: int) -> list[str]:
        start = "-" if cursor is None else f"({cursor}"
        with self._conn.translate():
            ids = await self._conn.client.zrangebylex(index, start, "+", start=0, num=count)
        return [str(i) for i in ids]

    async def _load(self, tk: TopicKeys, ids: Sequence[str]) -> list[DlqEntry]:
        if not ids:
            return []
        with self._conn.translate():
            raws = await self._conn.client.hmget(tk.dlq, list(ids))
        return [codec.decode_entry(raw) for raw in raws if raw is not None]
