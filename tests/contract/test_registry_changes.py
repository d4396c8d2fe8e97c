"""The registry's change log (issue 11): an instance reads only what changed since the
version it saw, so creating N subscriptions costs O(N) registry reads, not O(N^2).
"""

from __future__ import annotations

from app.core.models import Subscription
from app.core.ports import QueueAdapter
from tests.backends import unique


async def test_changes_since_a_version_name_each_changed_subscription(
    adapter: QueueAdapter,
) -> None:
    topic = unique("changes")
    before = await adapter.registry_version()
    first = Subscription(id=unique("a"), topic=topic, url="http://127.0.0.1:9/a")
    second = Subscription(id=unique("b"), topic=topic, url="http://127.0.0.1:9/b")
    await adapter.create_subscription(first)
    await adapter.create_subscription(second)
    middle = await adapter.registry_version()
    await adapter.update_subscription(first.with_changes(paused=True))
    assert await adapter.delete_subscription(second.id)
    now = await adapter.registry_version()
    assert now not in (before, middle)

    changes = await adapter.registry_changes(before)
    assert changes is not None
    assert changes.version == now
    assert changes.subscription_ids == [first.id, second.id]

    later = await adapter.registry_changes(middle)
    assert later is not None
    assert later.version == now
    assert sorted(later.subscription_ids) == sorted([first.id, second.id])

    unchanged = await adapter.registry_changes(now)
    assert unchanged is not None
    assert unchanged.version == now
    assert unchanged.subscription_ids == []


async def test_an_unknown_version_asks_for_a_full_read(adapter: QueueAdapter) -> None:
    assert await adapter.registry_changes("") is None
    assert await adapter.registry_changes("not-a-version") is None
    assert await adapter.registry_changes("999999999999") is None
