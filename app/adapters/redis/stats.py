"""Per-topic figures for ``GET /v1/topics/{topic}``, read in one script call."""

from __future__ import annotations

from app.adapters.redis.connection import RedisConnection
from app.adapters.redis.lua_admin import STATS
from app.adapters.redis.names import NameSpace
from app.adapters.redis.registry import SubscriptionRegistry
from app.core.models import SubscriptionStats, TopicStats


async def topic_stats(
    connection: RedisConnection, keys: NameSpace, registry: SubscriptionRegistry, topic: str
) -> TopicStats:
    """Backlog (unread), in flight (leased), scheduled and DLQ per subscription.

    The topic's DLQ total includes entries of subscriptions deleted since.
    """
    subs = await registry.list(topic)
    tk = keys.topic(topic)
    script_keys = [tk.stream, tk.dlq]
    for sub in subs:
        script_keys += [tk.queue(sub.id), tk.schedule(sub.id), tk.dlq_sub(sub.id)]
    reply = await connection.run(STATS, script_keys, [s.id for s in subs])
    stats = []
    for i, sub in enumerate(subs):
        backlog, in_flight, scheduled, dlq = (int(v) for v in reply[1 + 4 * i : 5 + 4 * i])
        stats.append(SubscriptionStats(sub.id, backlog, in_flight, scheduled, dlq))
    return TopicStats(topic=topic, subscriptions=stats, dlq=int(reply[0]))
