"""Delivery insight on Redis: shared by every instance, expired by Redis itself.

Keys (prefix ``hookline``)::

    hookline:ins:{<message id>}           hash: m -> envelope JSON, s:<sub> -> state mark JSON,
                                          a:<sub> -> 1 (that subscription has attempts)
    hookline:ins:{<message id>}:a:<sub>   list: that subscription's attempts, oldest first
    hookline:{<topic>}:ins:log:<sub>      stream: the subscription's attempt log (r -> JSON)

A message's keys carry the message id as hash tag: ``GET /v1/messages/{id}`` knows only
the id, so the id must name the slot (it also spreads messages over a cluster). A
subscription's log lives under its topic's tag, with the topic's other keys.

Bounds: every write renews ``PEXPIRE retention_ms`` on the message's keys (a message
forgotten ``retention_ms`` after its last event); lists are trimmed to
``max_attempts_per_message``; a log is capped with ``XADD MAXLEN ~`` and trimmed by
``XTRIM MINID ~`` to the retention window, and expires as a whole when idle.
Cost per delivered message (one attempt): the envelope once, one mark (~120 bytes), one
attempt in the list and one in the log (~200 bytes each), written by one pipelined
round trip per flush of the recorder, whatever the number of facts in it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from app.adapters.redis.connection import RedisConnection
from app.adapters.redis.names import NameSpace
from app.core.codec import encode_json
from app.core.insight import (
    AttemptOutcome,
    AttemptPage,
    AttemptRecord,
    InsightBatch,
    InsightSettings,
    MessageInsight,
    StateMark,
)
from app.core.models import Envelope, now_ms

_SCAN_PAGE = 200
_MAX_SCANNED = 20_000
"""A filtered page (``outcome=``) reads at most this many log entries."""


class RedisInsightStore:
    """Implementation of :class:`app.core.ports.InsightStore` on Redis."""

    def __init__(
        self, connection: RedisConnection, names: NameSpace, settings: InsightSettings
    ) -> None:
        """Writes go through ``connection``; keys come from ``names``."""
        self._conn = connection
        self._names = names
        self._settings = settings

    def _message_key(self, message_id: str) -> str:
        return f"{self._names.prefix}:ins:{{{message_id}}}"

    def _log_key(self, topic: str, subscription_id: str) -> str:
        return f"{self._names.topic(topic).base}:ins:log:{subscription_id}"

    async def open(self) -> None:
        """Nothing to follow: every read goes to Redis."""

    async def close(self) -> None:
        """The adapter owns the connection."""

    async def write(self, batch: InsightBatch) -> None:
        """One pipelined round trip for the whole batch."""
        ttl = self._settings.retention_ms
        cap = self._settings.max_attempts_per_message
        horizon = now_ms() - ttl
        expire: set[str] = set()
        logs: set[str] = set()
        with self._conn.translate():
            pipe = self._conn.client.pipeline(transaction=False)
            for envelope in batch.messages:
                key = self._message_key(envelope.id)
                pipe.hset(key, "m", encode_json(envelope.to_dict()))
                expire.add(key)
            for record in batch.attempts:
                key = self._message_key(record.message_id)
                raw = encode_json(record.to_dict())
                attempts = f"{key}:a:{record.subscription_id}"
                pipe.rpush(attempts, raw)
                pipe.ltrim(attempts, -cap, -1)
                pipe.hset(key, f"a:{record.subscription_id}", "1")
                expire.update((key, attempts))
                log = self._log_key(record.topic, record.subscription_id)
                pipe.xadd(
                    log,
                    {"r": raw},
                    maxlen=self._settings.max_attempts_per_subscription,
                    approximate=True,
                )
                logs.add(log)
            for mark in batch.marks:
                key = self._message_key(mark.message_id)
                pipe.hset(key, f"s:{mark.subscription_id}", encode_json(mark.to_dict()))
                expire.add(key)
            for key in expire:
                pipe.pexpire(key, ttl)
            for log in logs:
                pipe.xtrim(log, minid=f"{max(0, horizon)}-0", approximate=True)
                pipe.pexpire(log, ttl)
            await pipe.execute()

    async def get_message(self, message_id: str) -> MessageInsight | None:
        """The message hash, then the attempt list of each subscription it names."""
        key = self._message_key(message_id)
        with self._conn.translate():
            raw: dict[Any, Any] = await self._conn.client.hgetall(key)
            if not raw:
                return None
            fields = {_text(k): _text(v) for k, v in raw.items()}
            marks = {
                name[2:]: StateMark.from_dict(json.loads(value))
                for name, value in fields.items()
                if name.startswith("s:")
            }
            subs = [name[2:] for name in fields if name.startswith("a:")]
            pipe = self._conn.client.pipeline(transaction=False)
            for sub_id in subs:
                pipe.lrange(f"{key}:a:{sub_id}", 0, -1)
            lists = await pipe.execute() if subs else []
        attempts = {
            sub_id: [AttemptRecord.from_dict(json.loads(_text(item))) for item in items]
            for sub_id, items in zip(subs, lists, strict=True)
            if items
        }
        envelope = Envelope.from_dict(json.loads(fields["m"])) if "m" in fields else None
        return MessageInsight(envelope, marks, attempts)

    async def list_attempts(
        self,
        topic: str,
        subscription_id: str,
        *,
        outcome: AttemptOutcome | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> AttemptPage:
        """``XREVRANGE`` from the cursor (an exclusive stream id), filtered as it reads."""
        log = self._log_key(topic, subscription_id)
        upper = f"({cursor}" if cursor else "+"
        page: list[tuple[str, AttemptRecord]] = []
        scanned = 0
        with self._conn.translate():
            while len(page) <= limit and scanned < _MAX_SCANNED:
                entries = await self._conn.client.xrevrange(log, upper, "-", count=_SCAN_PAGE)
                if not entries:
                    break
                scanned += len(entries)
                for entry_id, record in _records(entries):
                    if outcome is None or record.outcome == outcome:
                        page.append((entry_id, record))
                upper = f"({_text(entries[-1][0])}"
                if len(entries) < _SCAN_PAGE:
                    break
        more = len(page) > limit
        page = page[:limit]
        return AttemptPage([r for _, r in page], page[-1][0] if more and page else None)

    async def recent_attempts(
        self, topic: str, subscription_id: str, limit: int
    ) -> list[AttemptRecord]:
        """Newest first, one ``XREVRANGE``."""
        with self._conn.translate():
            entries = await self._conn.client.xrevrange(
                self._log_key(topic, subscription_id), "+", "-", count=limit
            )
        return [record for _, record in _records(entries or [])]


def _records(entries: Iterable[Any]) -> list[tuple[str, AttemptRecord]]:
    out = []
    for entry_id, fields in entries:
        raw = fields.get(b"r", fields.get("r"))
        if raw is not None:
            out.append((_text(entry_id), AttemptRecord.from_dict(json.loads(_text(raw)))))
    return out


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
