"""The registry is shared: what one instance writes, every other sees at its next poll."""

from __future__ import annotations

from tests.redis.conftest import OpenAdapter
from tests.redis.helpers import make_sub


async def test_changes_made_by_one_instance_are_seen_by_another(open_redis: OpenAdapter) -> None:
    async with open_redis() as first, open_redis() as second:
        assert await second.list_subscriptions() == []  # primes its cache
        sub = make_sub("reg.shared", secret="whsec_" + "B" * 32, headers={"x-a": "1"})
        await first.create_subscription(sub)
        assert await second.list_subscriptions() == [sub]
        assert await second.list_subscriptions("reg.shared") == [sub]

        paused = sub.with_changes(paused=True)
        await first.update_subscription(paused)
        assert await second.list_subscriptions() == [paused]
        assert await second.get_subscription(sub.id) == paused

        other = make_sub("reg.other")
        await second.create_subscription(other)
        assert [s.id for s in await first.list_subscriptions()] == [sub.id, other.id]
        assert await first.list_topics() == ["reg.other", "reg.shared"]

        assert await second.delete_subscription(sub.id)
        assert await first.list_subscriptions() == [other]
        assert await first.list_topics() == ["reg.other"]


async def test_an_unchanged_registry_is_not_read_again(open_redis: OpenAdapter) -> None:
    async with open_redis() as adapter:
        await adapter.create_subscription(make_sub("reg.cache"))
        first = await adapter.list_subscriptions()
        version = adapter.registry._cached_version
        assert version
        assert await adapter.list_subscriptions() == first
        assert adapter.registry._cached_version == version
