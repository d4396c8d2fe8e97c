"""Publishing: one script per topic, so a batch is stored all or nothing.

Immediate messages are appended to the topic stream; each subscription's consumer group
gives it its own copy (fan-out for free). Delayed messages go to the schedule of every
subscription existing at publish time, checked inside the script so a subscription
created or deleted concurrently is never half-served.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence

from app.adapters.redis.coalesce import ScriptCoalescer
from app.adapters.redis.codec import encode_envelope
from app.adapters.redis.connection import RedisConnection
from app.adapters.redis.lua_messages import PUBLISH
from app.adapters.redis.names import NameSpace
from app.adapters.redis.timer import DueTimer
from app.core.errors import BackendUnavailableError
from app.core.models import now_ms
from app.core.ports import OutgoingMessage

_STALE_RETRIES = 5


class MessageWriter:
    """Stores published messages for every current subscription of their topic."""

    def __init__(
        self,
        connection: RedisConnection,
        keys: NameSpace,
        timer: DueTimer,
        scripts: ScriptCoalescer,
    ) -> None:
        """``timer`` learns when delayed copies fall due; ``scripts`` batches the calls."""
        self._conn = connection
        self._keys = keys
        self._timer = timer
        self.scripts = scripts

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        """Store every message; atomic per topic (a cluster cannot span slots atomically)."""
        topic = messages[0].envelope.topic
        if all(m.envelope.topic == topic for m in messages):
            await self._publish_topic(topic, list(messages))  # the usual case: no task
            return
        by_topic: dict[str, list[OutgoingMessage]] = defaultdict(list)
        for message in messages:
            by_topic[message.envelope.topic].append(message)
        await asyncio.gather(*(self._publish_topic(t, batch) for t, batch in by_topic.items()))

    async def _publish_topic(self, topic: str, messages: list[OutgoingMessage]) -> None:
        tk = self._keys.topic(topic)
        now = now_ms()
        immediate: list[str] = []
        later: list[str | int] = []
        first_due: int | None = None
        for message in messages:
            raw = encode_envelope(message.envelope)
            due = message.deliver_at_ms
            if due is None or due <= now:
                immediate.append(raw)
            else:
                later += [due, f"p{message.envelope.id}|1|{raw}"]
                first_due = due if first_due is None else min(first_due, due)
        subs: list[str] = await self._subscriptions(topic) if later else []
        for _ in range(_STALE_RETRIES):
            keys = [tk.stream, tk.subs, tk.waiting, *(tk.schedule(s) for s in subs)]
            args = [len(subs), *subs, len(immediate), *immediate, len(later) // 2, *later]
            reply = await self.scripts.run(PUBLISH, keys, args)
            if reply[0] == "ok":
                break
            subs = await self._subscriptions(topic)
        else:
            raise BackendUnavailableError(
                f"subscriptions of topic {topic!r} kept changing during publish; retry"
            )
        if first_due is not None:
            for sub_id in subs:
                self._timer.notify(topic, sub_id, first_due)

    async def _subscriptions(self, topic: str) -> list[str]:
        with self._conn.translate():
            members = await self._conn.client.smembers(self._keys.topic(topic).subs)
        return sorted(str(m) for m in members)
