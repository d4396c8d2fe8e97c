"""Consumer groups: one per subscription on the topic stream and on its own stream.

A group is created at the end of the stream when the subscription is created, which is
why a subscription sees only messages published after it. A lost group (NOGROUP: the
stream or group was deleted, or Redis restarted without its data) is recreated from the
position remembered at creation, so messages published since are not skipped.
"""

from __future__ import annotations

import logging

from app.adapters.redis.connection import RedisConnection
from app.adapters.redis.lua_admin import DROP_GROUPS, ENSURE_GROUPS
from app.adapters.redis.names import NameSpace
from app.adapters.redis.registry import SubscriptionRegistry
from app.core.models import Subscription

logger = logging.getLogger("hookline.redis")


class ConsumerGroups:
    """Creates, recovers and drops the groups of a subscription."""

    def __init__(
        self, connection: RedisConnection, keys: NameSpace, registry: SubscriptionRegistry
    ) -> None:
        """``registry`` decides whether a lost group belongs to a live subscription."""
        self._conn = connection
        self._keys = keys
        self._registry = registry

    def _keys_of(self, topic: str, subscription_id: str) -> list[str]:
        tk = self._keys.topic(topic)
        return [tk.stream, tk.queue(subscription_id), tk.subs, tk.origins]

    async def create(self, subscription: Subscription) -> None:
        """Start the subscription's groups at the current end of the topic stream."""
        keys = self._keys_of(subscription.topic, subscription.id)
        await self._conn.run(ENSURE_GROUPS, keys, [subscription.id, "create"])

    async def recover(self, subscription: Subscription) -> bool:
        """Recreate lost groups if the subscription still exists; False if it was deleted."""
        if await self._registry.get(subscription.id) is None:
            return False
        keys = self._keys_of(subscription.topic, subscription.id)
        origin = await self._conn.run(ENSURE_GROUPS, keys, [subscription.id, "recover"])
        logger.warning(
            "consumer group of subscription %s was missing (NOGROUP); recreated from %s",
            subscription.id,
            origin or "the end of the stream",
        )
        return True

    async def drop(self, topic: str, subscription_id: str) -> None:
        """Remove the groups and every pending or scheduled copy (DLQ entries stay)."""
        tk = self._keys.topic(topic)
        keys = [
            tk.stream,
            tk.queue(subscription_id),
            tk.schedule(subscription_id),
            tk.subs,
            tk.origins,
        ]
        await self._conn.run(DROP_GROUPS, keys, [subscription_id])
