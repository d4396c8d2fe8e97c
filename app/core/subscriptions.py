"""Managing subscriptions: validation that needs the core (CEL), secrets, state changes.

Storage is the adapter's registry, so every instance sharing a backend sees the same
subscriptions; ``on_change`` lets this instance's dispatcher react at once instead of at
its next registry poll.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from app.core.conditions import compile_condition
from app.core.dead_letters import DeadLetterCycleError, find_cycle
from app.core.errors import HooklineError
from app.core.ids import new_secret
from app.core.models import LastError, Subscription, now_ms
from app.core.ports import RegistryPort
from app.core.redact import mask_url_credentials
from app.core.signing import DEFAULT_ROTATION_GRACE_MS

logger = logging.getLogger("hookline.subscriptions")

PausedHook = Callable[[Subscription, LastError | None], Awaitable[None]]
ChangeHook = Callable[[str, Subscription | None], None]
"""Told of each change made through this process: the id and the new definition (None:
deleted)."""


class SubscriptionNotFoundError(HooklineError):
    """No subscription has this id (raised with the id; 404)."""

    status = 404
    code = "not_found"

    @property
    def message(self) -> str:
        """Names the missing id."""
        return f"no subscription {self}"


class TopicChangeError(HooklineError):
    """A subscription's topic cannot change; create a new subscription instead (409)."""

    status = 409
    code = "conflict"


class SubscriptionRuleError(HooklineError):
    """A subscription breaks a rule of its own (a dead-letter topic that is its topic, a
    destination the guard refuses); 422, with the rule's code.
    """

    status = 422
    code = "validation_error"

    def __init__(self, message: str, code: str | None = None) -> None:
        """``code`` replaces ``validation_error`` when the rule has its own."""
        super().__init__(message)
        if code is not None:
            self.code = code


class DestinationPolicy(Protocol):
    """Which webhook URLs may be saved (the dispatcher's destination guard)."""

    def check_url(self, url: str) -> str | None:
        """Why ``url`` is refused, or None when it may be saved."""


class SubscriptionService:
    """Create, change and remove subscriptions through the adapter's registry."""

    def __init__(self, adapter: RegistryPort, on_change: ChangeHook | None = None) -> None:
        """``on_change`` is called after every successful change, with the subscription's
        id and its new definition (``None`` once deleted).
        """
        self._adapter = adapter
        self._on_change: ChangeHook = on_change or (lambda _id, _subscription: None)
        self.on_paused_changed: PausedHook | None = None
        """Awaited after a pause or resume (parking, events: :mod:`app.core.insight_service`)."""

    async def create(self, subscription: Subscription) -> Subscription:
        """Validate the condition and the dead-letter route, then store; raises on a
        taken id.
        """
        compile_condition(subscription.condition)
        await self._refuse_cycle(subscription)
        await self._adapter.create_subscription(subscription)
        self._changed("created", subscription)
        return subscription

    async def get(self, subscription_id: str) -> Subscription:
        """One subscription, or :class:`SubscriptionNotFoundError`."""
        found = await self._adapter.get_subscription(subscription_id)
        if found is None:
            raise SubscriptionNotFoundError(subscription_id)
        return found

    async def find(self, topic: str | None = None) -> list[Subscription]:
        """All subscriptions, or those of one topic."""
        return await self._adapter.list_subscriptions(topic)

    async def replace(self, subscription: Subscription) -> Subscription:
        """Store a new definition for an existing id (same topic); keeps ``created_at``."""
        current = await self.get(subscription.id)
        if current.topic != subscription.topic:
            raise TopicChangeError(
                f"subscription {subscription.id!r} is on topic {current.topic!r}; "
                "a topic cannot change, create a new subscription instead"
            )
        compile_condition(subscription.condition)
        if subscription.dead_letter_topic != current.dead_letter_topic:
            await self._refuse_cycle(subscription)
        updated = subscription.with_changes(created_at=current.created_at)
        pause_changed = updated.paused != current.paused
        if pause_changed:
            updated = updated.with_changes(paused_reason="manual" if updated.paused else None)
        else:
            updated = updated.with_changes(paused_reason=current.paused_reason)
        await self._adapter.update_subscription(updated)
        self._changed("updated", updated)
        if pause_changed and self.on_paused_changed is not None:
            # A pause or resume through an update is one like any other: retries are
            # parked, parked messages flow again, the event is published.
            await self.on_paused_changed(updated, None)
        return updated

    async def delete(self, subscription_id: str) -> None:
        """Remove it and its pending deliveries (its DLQ entries stay for inspection)."""
        if not await self._adapter.delete_subscription(subscription_id):
            raise SubscriptionNotFoundError(subscription_id)
        logger.info("subscription deleted", extra={"subscription_id": subscription_id})
        self._on_change(subscription_id, None)

    async def set_paused(
        self,
        subscription_id: str,
        paused: bool,
        *,
        reason: str = "manual",
        last_error: LastError | None = None,
    ) -> Subscription:
        """Pause (messages wait: they are parked) or resume delivery."""
        current = await self.get(subscription_id)
        if current.paused == paused:
            return current
        updated = current.with_changes(paused=paused, paused_reason=reason if paused else None)
        await self._adapter.update_subscription(updated)
        self._changed("paused" if paused else "resumed", updated)
        if self.on_paused_changed is not None:
            await self.on_paused_changed(updated, last_error)
        return updated

    async def rotate_secret(
        self, subscription_id: str, grace_ms: int = DEFAULT_ROTATION_GRACE_MS
    ) -> Subscription:
        """Give the subscription a new signing secret (returned once, in clear).

        For ``grace_ms`` the replaced secret signs too, so receivers still holding it keep
        verifying while they switch; 0 ends it at once. A rotation during a grace period
        ends the older one: only the secret just replaced keeps signing.
        """
        current = await self.get(subscription_id)
        updated = current.with_changes(
            secret=new_secret(),
            previous_secret=current.secret,
            previous_secret_expires_at=now_ms() + grace_ms if current.secret else None,
        )
        await self._adapter.update_subscription(updated)
        self._changed("secret rotated", updated)
        return updated

    async def apply_static(self, subscriptions: list[Subscription]) -> None:
        """Create or update the subscriptions declared in ``config.yaml``.

        One that would close a dead-letter cycle with subscriptions registered through
        the API is left out, loudly: the others still start.
        """
        for subscription in subscriptions:
            current = await self._adapter.get_subscription(subscription.id)
            try:
                if current is None:
                    await self.create(subscription)
                elif _definition(current) != _definition(subscription):
                    await self.replace(subscription)
            except DeadLetterCycleError as exc:
                logger.error(  # noqa: TRY400 - a refusal, not a crash: no traceback
                    "static subscription %s not registered: %s",
                    subscription.id,
                    exc,
                    extra={"subscription_id": subscription.id},
                )

    async def _refuse_cycle(self, subscription: Subscription) -> None:
        """Raise :class:`DeadLetterCycleError` when ``subscription`` would close a cycle.

        Only what the registry holds now is seen; the hop limit of the dispatcher bounds
        a cycle that two instances build at the same moment.
        """
        if not subscription.dead_letter_topic:
            return
        cycle = find_cycle(subscription, await self._adapter.list_subscriptions())
        if cycle is not None:
            raise DeadLetterCycleError(cycle)

    def _changed(self, what: str, subscription: Subscription) -> None:
        logger.info(
            "subscription %s",
            what,
            extra={
                "subscription_id": subscription.id,
                "topic": subscription.topic,
                "url": mask_url_credentials(subscription.url),
                "paused": subscription.paused,
            },
        )
        self._on_change(subscription.id, subscription)


def _definition(subscription: Subscription) -> dict[str, object]:
    raw = subscription.to_dict()
    for key in ("created_at", "updated_at", "previous_secret", "previous_secret_expires_at"):
        raw.pop(key)
    return raw
