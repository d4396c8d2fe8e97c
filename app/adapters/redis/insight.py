"""Delivery insight on Redis: shared by every instance, expired by Redis itself.

Keys (prefix ``hookline``)::

    hookline:ins:{<message id>}           hash: m -> envelope JSON,
                                          a:<sub> -> that subscription's attempts, JSON
                                          lines oldest first (capped),
                                          s:<sub> -> a state mark JSON, only when no
                                          attempt implies it (filtered, parked...)
    hookline:{<topic>}:ins:log:<sub>      stream: the subscription's attempt log (r -> JSON)

A message's keys carry the message id as hash tag: ``GET /v1/messages/{id}`` knows only
the id, so the id must name the slot (it also spreads messages over a cluster). A
subscription's log lives under its topic's tag, with the topic's other keys. (Before
issue 13's cost work, ``a:<sub>`` was ``1`` and the attempts were a list
``hookline:ins:{<message id>}:a:<sub>``: still read, until retention forgets them.)

Bounds: every write renews ``PEXPIRE retention_ms`` on the message's hash (a message
forgotten ``retention_ms`` after its last event); ``a:<sub>`` keeps the newest
``max_attempts_per_message``; a log is capped with ``XADD MAXLEN ~`` and trimmed by
``XTRIM MINID ~`` to the retention window, and expires as a whole when idle.
Cost per delivered message (one attempt): the envelope once, one attempt in the hash and
one in the log (~200 bytes each), no mark (the attempt implies it); a whole flush of the
recorder is one script call (:mod:`.lua_insight`, chunked), one round trip.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from app.adapters.redis import lua_insight
from app.adapters.redis.coalesce import ScriptCoalescer
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
    merge_marks,
)
from app.core.models import Envelope, now_ms

_SCAN_PAGE = 200
_MAX_SCANNED = 20_000
"""A filtered page (``outcome=``) reads at most this many log entries."""


@dataclass(slots=True)
class _MessageFacts:
    """What one flush writes about one message: attempts per subscription, hash fields."""

    attempts: dict[str, list[bytes]] = field(default_factory=dict)
    fields: list[bytes] = field(default_factory=list)

    def tokens(self, out: list[bytes]) -> None:
        """Append the message's part of :data:`lua_insight.WRITE`'s facts to ``out``."""
        out.append(_count(len(self.attempts)))
        for sub_id, raws in self.attempts.items():
            out += [sub_id.encode(), raws[0] if len(raws) == 1 else b"\n".join(raws)]
        out.append(_count(len(self.fields) // 2))
        out += self.fields


_COUNTS = [str(n).encode() for n in range(64)]


def _count(n: int) -> bytes:
    return _COUNTS[n] if n < len(_COUNTS) else str(n).encode()


class RedisInsightStore:
    """Implementation of :class:`app.core.ports.InsightStore` on Redis."""

    def __init__(
        self,
        connection: RedisConnection,
        names: NameSpace,
        settings: InsightSettings,
        scripts: ScriptCoalescer,
    ) -> None:
        """Writes go through ``scripts``, the adapter's coalescer (its own RESP packing on
        the multiplexed connection, where redis-py packed and parsed each call in Python:
        ~8 us per delivery); reads through ``connection``; keys come from ``names``.
        """
        self._conn = connection
        self._scripts = scripts
        self._names = names
        self._settings = settings
        self._log_keys: dict[tuple[str, str], str] = {}

    def _message_key(self, message_id: str) -> str:
        return f"{self._names.prefix}:ins:{{{message_id}}}"

    def _log_key(self, topic: str, subscription_id: str) -> str:
        key = self._log_keys.get((topic, subscription_id))
        if key is None:
            if len(self._log_keys) > 10_000:
                self._log_keys.clear()
            key = f"{self._names.topic(topic).base}:ins:log:{subscription_id}"
            self._log_keys[(topic, subscription_id)] = key
        return key

    async def open(self) -> None:
        """Nothing to follow: every read goes to Redis."""

    async def close(self) -> None:
        """The adapter owns the connection."""

    async def write(self, batch: InsightBatch) -> None:
        """One script call per ``CHUNK`` messages or logs, pipelined in one round trip."""
        messages: dict[str, _MessageFacts] = {}
        logs: dict[str, list[bytes]] = {}
        attempted: set[tuple[str, str]] = set()
        for envelope in batch.messages:
            _facts(messages, envelope.id).fields += [b"m", encode_json(envelope.to_dict())]
        for record in batch.attempts:
            raw = encode_json(record.to_dict())
            message_id = record.message_id
            sub_id = record.subscription_id
            _facts(messages, message_id).attempts.setdefault(sub_id, []).append(raw)
            attempted.add((message_id, sub_id))
            logs.setdefault(self._log_key(record.topic, sub_id), []).append(raw)
        for mark in batch.marks:
            if mark.implied and (mark.message_id, mark.subscription_id) in attempted:
                continue  # read back from the attempt that implies it
            _facts(messages, mark.message_id).fields += [
                f"s:{mark.subscription_id}".encode(),
                encode_json(mark.to_dict()),
            ]
        await self._run_all(self._calls(messages, logs))

    def _calls(
        self, messages: dict[str, _MessageFacts], logs: dict[str, list[bytes]]
    ) -> list[tuple[list[str], list[Any]]]:
        """Keys and arguments of each :data:`lua_insight.WRITE` call: messages then logs,
        ``CHUNK`` of them per call (a cluster client: one each, each on its own slot).
        """
        settings = self._settings
        ttl = settings.retention_ms
        head = [
            ttl,
            settings.max_attempts_per_message,
            settings.max_attempts_per_subscription,
            f"{max(0, now_ms() - ttl)}-0",
        ]
        chunk = lua_insight.CHUNK if isinstance(self._conn.client, Redis) else 1
        units: list[tuple[str, _MessageFacts | list[bytes]]] = [
            (self._message_key(message_id), facts) for message_id, facts in messages.items()
        ]
        units += logs.items()
        calls: list[tuple[list[str], list[Any]]] = []
        for start in range(0, len(units), chunk):
            part = units[start : start + chunk]
            tokens: list[bytes] = []
            n_messages = 0
            for _, unit in part:
                if isinstance(unit, _MessageFacts):
                    unit.tokens(tokens)
                    n_messages += 1
                else:
                    tokens.append(unit[0] if len(unit) == 1 else b"\n".join(unit))
            keys = [key for key, _ in part]
            calls.append((keys, [*head, n_messages, lua_insight.SEPARATOR.join(tokens)]))
        return calls

    async def _run_all(self, calls: list[tuple[list[str], list[Any]]]) -> None:
        """Through the coalescer, submitted in one loop turn: one buffer, one round trip
        (a call Redis did not know the script of is replayed alone by it). A cluster client
        runs them one by one (each call's keys pin it to one slot).
        """
        script = lua_insight.WRITE
        if not isinstance(self._conn.client, Redis):
            for keys, args in calls:
                await self._conn.run(script, keys, args)
            return
        replies = await asyncio.gather(
            *(self._scripts.submit(script, k, a) for k, a in calls), return_exceptions=True
        )
        for reply in replies:
            if isinstance(reply, BaseException):
                raise reply

    async def get_message(self, message_id: str) -> MessageInsight | None:
        """The message hash (and the lists of attempts kept in the old layout, if any)."""
        key = self._message_key(message_id)
        with self._conn.translate():
            raw: dict[Any, Any] = await self._conn.client.hgetall(key)
            if not raw:
                return None
            fields = {_text(k): _text(v) for k, v in raw.items()}
            explicit = {
                name[2:]: StateMark.from_dict(json.loads(value))
                for name, value in fields.items()
                if name.startswith("s:")
            }
            attempts = {
                name[2:]: [AttemptRecord.from_dict(json.loads(line)) for line in value.split("\n")]
                for name, value in fields.items()
                if name.startswith("a:") and value != "1"
            }
            legacy = [
                name[2:] for name, value in fields.items() if name[:2] == "a:" and value == "1"
            ]
            if legacy:
                pipe = self._conn.client.pipeline(transaction=False)
                for sub_id in legacy:
                    pipe.lrange(f"{key}:a:{sub_id}", 0, -1)
                for sub_id, items in zip(legacy, await pipe.execute(), strict=True):
                    if items:
                        attempts[sub_id] = [
                            AttemptRecord.from_dict(json.loads(_text(item))) for item in items
                        ]
        envelope = Envelope.from_dict(json.loads(fields["m"])) if "m" in fields else None
        return MessageInsight(envelope, merge_marks(explicit, attempts), attempts)

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


def _facts(messages: dict[str, _MessageFacts], message_id: str) -> _MessageFacts:
    found = messages.get(message_id)
    if found is None:
        found = messages[message_id] = _MessageFacts()
    return found


def _records(entries: Iterable[Any]) -> list[tuple[str, AttemptRecord]]:
    out = []
    for entry_id, fields in entries:
        raw = fields.get(b"r", fields.get("r"))
        if raw is not None:
            out.append((_text(entry_id), AttemptRecord.from_dict(json.loads(_text(raw)))))
    return out


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
