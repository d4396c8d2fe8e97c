"""The subscription registry: one Redis hash shared by every hookline instance.

The dispatcher polls :meth:`SubscriptionRegistry.version` about once a second in every
process; the version is a counter bumped by each write, and each write is logged by
version, so a poll that finds it changed reads only the changed subscriptions
(:meth:`SubscriptionRegistry.changes`) instead of every subscription again.
"""

from __future__ import annotations

import json

from app.adapters.kit.change_log import KEEP_CHANGES
from app.adapters.redis.connection import RedisConnection
from app.adapters.redis.lua_admin import LIST_REGISTRY, REGISTER, REGISTRY_CHANGES, UNREGISTER
from app.adapters.redis.names import NameSpace
from app.core.models import Subscription
from app.core.ports import RegistryChanges


class SubscriptionRegistry:
    """Create, read, replace and remove subscription definitions."""

    def __init__(self, connection: RedisConnection, keys: NameSpace) -> None:
        """Reads and writes go to ``keys.registry``."""
        self._conn = connection
        self._keys = keys
        self._cached_version = ""
        self._cached: list[Subscription] = []

    def _registry_keys(self) -> list[str]:
        return [self._keys.registry, self._keys.registry_version, self._keys.topics]

    async def _register(self, subscription: Subscription, mode: str) -> int:
        raw = json.dumps(subscription.to_dict(), separators=(",", ":"))
        keys = [*self._registry_keys(), self._keys.registry_changes]
        args = [subscription.id, raw, subscription.topic, mode, str(KEEP_CHANGES)]
        return int(await self._conn.run(REGISTER, keys, args))

    async def create(self, subscription: Subscription) -> bool:
        """Store a new subscription; False when the id is taken."""
        return await self._register(subscription, "create") != -1

    async def put(self, subscription: Subscription) -> bool:
        """Store or replace; True when it existed before."""
        return await self._register(subscription, "put") == 1

    async def remove(self, subscription_id: str) -> bool:
        """Forget a subscription; False when there was none."""
        keys = [*self._registry_keys()[:2], self._keys.registry_changes]
        return bool(await self._conn.run(UNREGISTER, keys, [subscription_id, str(KEEP_CHANGES)]))

    async def get(self, subscription_id: str) -> Subscription | None:
        """Read one, always fresh."""
        with self._conn.translate():
            raw = await self._conn.client.hget(self._keys.registry, subscription_id)
        return None if raw is None else Subscription.from_dict(json.loads(raw))

    async def list(self, topic: str | None = None) -> list[Subscription]:
        """All subscriptions (of ``topic``), oldest first; cached while the version holds."""
        keys = self._registry_keys()[:2]
        reply = await self._conn.run(LIST_REGISTRY, keys, [self._cached_version])
        version = str(reply[0])
        if version != self._cached_version or not version:
            subs = [Subscription.from_dict(json.loads(raw)) for raw in reply[2::2]]
            subs.sort(key=lambda s: (s.created_at, s.id))
            self._cached, self._cached_version = subs, version
        if topic is None:
            return list(self._cached)
        return [s for s in self._cached if s.topic == topic]

    async def version(self) -> str:
        """The version token alone: what the dispatcher polls each second."""
        with self._conn.translate():
            token = await self._conn.client.get(self._keys.registry_version)
        return "0" if token is None else str(token)

    async def changes(self, since: str) -> RegistryChanges | None:
        """Ids changed after version ``since`` (one script call), or None when not known."""
        keys = [self._keys.registry_version, self._keys.registry_changes]
        reply = await self._conn.run(REGISTRY_CHANGES, keys, [since or "-"])
        if not int(reply[1]):
            return None
        ids = [str(member).partition(":")[2] for member in reply[2:]]
        return RegistryChanges(str(reply[0]), list(dict.fromkeys(ids)))

    async def topics(self) -> set[str]:
        """Topics that ever had a subscription."""
        with self._conn.translate():
            members = await self._conn.client.smembers(self._keys.topics)
        return {str(m) for m in members}
