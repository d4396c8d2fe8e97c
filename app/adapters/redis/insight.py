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
attempt in the list and one in the log (~200 bytes each), written by one Lua call per
message and one per subscription log (:mod:`.lua_insight`), all pipelined in one round trip
per flush of the recorder.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from app.adapters.redis import lua_insight
from app.adapters.redis.connection import LuaScript, RedisConnection
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


@dataclass(slots=True)
class _MessageFacts:
    """What one flush writes about one message: hash fields and attempts per subscription."""

    fields: list[Any] = field(default_factory=list)
    attempts: dict[str, list[bytes]] = field(default_factory=dict)


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
        """Two script calls per message (its facts, its subscriptions' logs), pipelined in
        one round trip for the whole batch.
        """
        settings = self._settings
        ttl = settings.retention_ms
        messages: dict[str, _MessageFacts] = {}

        def facts(message_id: str) -> _MessageFacts:
            found = messages.get(message_id)
            if found is None:
                found = messages[message_id] = _MessageFacts()
            return found

        logs: dict[str, list[bytes]] = {}
        for envelope in batch.messages:
            facts(envelope.id).fields += ["m", encode_json(envelope.to_dict())]
        for record in batch.attempts:
            raw = encode_json(record.to_dict())
            entry = facts(record.message_id)
            attempts = entry.attempts.get(record.subscription_id)
            if attempts is None:
                entry.attempts[record.subscription_id] = [raw]
                entry.fields += [f"a:{record.subscription_id}", "1"]
            else:
                attempts.append(raw)
            logs.setdefault(self._log_key(record.topic, record.subscription_id), []).append(raw)
        for mark in batch.marks:
            mark_raw = encode_json(mark.to_dict())
            facts(mark.message_id).fields += [f"s:{mark.subscription_id}", mark_raw]
        calls: list[tuple[LuaScript, list[str], list[Any]]] = []
        cap = settings.max_attempts_per_message
        for message_id, entry in messages.items():
            key = self._message_key(message_id)
            keys = [key]
            args: list[Any] = [ttl, cap, len(entry.fields) // 2, *entry.fields]
            for sub_id, raws in entry.attempts.items():
                keys.append(f"{key}:a:{sub_id}")
                args += [len(raws), *raws]
            calls.append((lua_insight.MESSAGE, keys, args))
        minid = f"{max(0, now_ms() - ttl)}-0"
        maxlen = settings.max_attempts_per_subscription
        for log, raws in logs.items():
            calls.append((lua_insight.LOG, [log], [maxlen, minid, ttl, *raws]))
        await self._run_all(calls)

    async def _run_all(self, calls: list[tuple[LuaScript, list[str], list[Any]]]) -> None:
        """One pipeline; a call Redis did not know the script of (``NOSCRIPT``) runs again
        alone through :meth:`RedisConnection.run` (which loads it). A cluster client runs
        them one by one (each call's keys pin it to one slot).
        """
        if not calls:
            return
        if not isinstance(self._conn.client, Redis):
            for script, keys, args in calls:
                await self._conn.run(script, keys, args)
            return
        with self._conn.translate():
            pipe = self._conn.client.pipeline(transaction=False)
            for script, keys, args in calls:
                pipe.evalsha(script.sha, len(keys), *keys, *args)
            replies = await pipe.execute(raise_on_error=False)
        for (script, keys, args), reply in zip(calls, replies, strict=True):
            if isinstance(reply, Exception):
                await self._conn.run(script, keys, args)

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
