"""A rotated-out secret and its expiry travel through the registry stream: an instance
that starts afterwards rebuilds the subscription with both.
"""

from __future__ import annotations

from app.core.subscriptions import SubscriptionService
from tests.backends import unique
from tests.rabbitmq.conftest import OpenAdapter
from tests.rabbitmq.helpers import make_sub


async def test_the_previous_secret_round_trips_through_the_registry(
    open_rabbit: OpenAdapter,
) -> None:
    old = "whsec_" + "A" * 32
    async with open_rabbit() as first:
        sub = make_sub(unique("rotated"), secret=old)
        await first.create_subscription(sub)
        rotated = await SubscriptionService(first).rotate_secret(sub.id, grace_ms=600_000)
        assert rotated.previous_secret == old

    async with open_rabbit() as restarted:
        stored = await restarted.get_subscription(sub.id)
        assert stored is not None
        assert stored == rotated
        assert stored.signing_secrets() == [rotated.secret, old]
