"""Who delivers an ordered subscription: one key per subscription, ``SET NX PX``, renewed.

The owner renews its key (a script: only while the key still names it); when the key
expires (the owner died, or stalled past the TTL) another instance sets it. The new
owner's first lease takes over every pending entry of the subscription's group, whatever
its idle time, in stream order (see :mod:`.leases`), before reading anything new.
"""

from __future__ import annotations

from app.adapters.redis.coalesce import ScriptCoalescer
from app.adapters.redis.connection import LuaScript, RedisConnection
from app.adapters.redis.names import NameSpace
from app.core.models import Subscription
from app.core.ordering import OWNERSHIP_TTL_MS

CLAIM = LuaScript(
    "claim_order",
    """
-- KEYS: owner key; ARGV: me, ttl ms. 1 if the key names me (set or renewed), else 0.
local current = redis.call('GET', KEYS[1])
if not current then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if current == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
""",
)

RELEASE = LuaScript(
    "release_order",
    """
-- KEYS: owner key; ARGV: me. Deletes the key only if it names me.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
""",
)


class Ownership:
    """claim_order / release_order of the Redis adapter."""

    def __init__(
        self, connection: RedisConnection, keys: NameSpace, consumer: str, scripts: ScriptCoalescer
    ) -> None:
        """``consumer``: this process's unique name (also its name in consumer groups)."""
        self._conn = connection
        self._scripts = scripts
        self._keys = keys
        self._me = consumer
        self.owned: set[str] = set()
        """Subscriptions this instance owns (as of its last claim)."""
        self.takeover: set[str] = set()
        """Owned subscriptions whose previous owner's pending entries are not claimed yet."""

    async def claim(self, subscription: Subscription) -> bool:
        """Set or renew the owner key; True if this instance owns the subscription."""
        key = self._keys.topic(subscription.topic).owner(subscription.id)
        owned = bool(await self._scripts.run(CLAIM, [key], [self._me, OWNERSHIP_TTL_MS]))
        if not owned:
            self.owned.discard(subscription.id)
            self.takeover.discard(subscription.id)
        elif subscription.id not in self.owned:
            self.owned.add(subscription.id)
            self.takeover.add(subscription.id)
        return owned

    async def release(self, subscription: Subscription) -> None:
        """Delete the owner key if it is still ours."""
        self.owned.discard(subscription.id)
        self.takeover.discard(subscription.id)
        key = self._keys.topic(subscription.topic).owner(subscription.id)
        await self._conn.run(RELEASE, [key], [self._me])
