"""A rotated-out secret and its expiry are stored with the subscription: an instance that
starts afterwards (or another one sharing Redis) keeps signing with both until it expires.
"""

from __future__ import annotations

from app.core.models import now_ms
from app.core.subscriptions import SubscriptionService
from tests.redis.conftest import OpenAdapter
from tests.redis.helpers import make_sub


async def test_the_previous_secret_round_trips_through_the_registry(
    open_redis: OpenAdapter,
) -> None:
    old = "whsec_" + "A" * 32
    async with open_redis() as first:
        sub = make_sub("rotated.persisted", secret=old)
        await first.create_subscription(sub)
        before = now_ms()
        rotated = await SubscriptionService(first).rotate_secret(sub.id, grace_ms=600_000)
        assert rotated.previous_secret == old
        assert rotated.previous_secret_expires_at is not None
        assert before + 600_000 <= rotated.previous_secret_expires_at <= now_ms() + 600_000

    # A fresh adapter, as after a restart: nothing comes from the first one's memory.
    async with open_redis() as restarted:
        stored = await restarted.get_subscription(sub.id)
        assert stored is not None
        assert stored == rotated
        assert stored.signing_secrets() == [rotated.secret, old]
        [listed] = await restarted.list_subscriptions("rotated.persisted")
        assert listed.previous_secret == old
        # Past the expiry only the new secret signs, and the next change drops the old one.
        assert stored.signing_secrets(at_ms=rotated.previous_secret_expires_at) == [rotated.secret]
        expired = stored.with_changes(previous_secret_expires_at=now_ms() - 1)
        assert expired.previous_secret is None
        await restarted.update_subscription(expired)
        assert (await restarted.get_subscription(sub.id)) == expired
