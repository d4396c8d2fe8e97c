"""Answers "where did my message go?": lookup, attempt log, endpoint health, resend, and
the pause/resume transitions (parking, events) that insight drives.

The routes of :mod:`app.api.insight` call this object only; it reads the adapter's
:class:`InsightStore` and the subscription registry, and writes through the adapter's
:class:`InsightAdapter` role (``requeue``, ``park_scheduled``) and the publisher.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol

from app.core.insight import (
    HEALTH_SAMPLE,
    AttemptOutcome,
    AttemptPage,
    EndpointHealth,
    MessageInsight,
    SubscriptionState,
    compute_health,
    derive_states,
)
from app.core.models import LastError, Subscription, now_ms
from app.core.publisher import PublishRequest

if TYPE_CHECKING:
    from app.core.ports import InsightAdapter, InsightStore
    from app.core.publisher import Publisher
    from app.core.subscriptions import SubscriptionService

logger = logging.getLogger("hookline.insight")

PAUSED_TOPIC = "hookline.subscription.paused"
RESUMED_TOPIC = "hookline.subscription.resumed"


class InsightDisabledError(LookupError):
    """``insight.enabled`` is false: nothing was recorded (404 with a clear message)."""


class MessageNotFoundError(LookupError):
    """Nothing is known of this message (never published, or past retention)."""


class NotMatchedError(ValueError):
    """The message's topic is not the subscription's (resend refused, 409)."""


class TransitionCounter(Protocol):
    """Where pause and resume transitions are counted (the metrics)."""

    def transition(self, subscription: Subscription, transition: str) -> None:
        """Count one transition of ``subscription`` (``paused``, ``auto_paused``...)."""


class InsightService:
    """Message lookup, attempt log, health, resend and pause transitions."""

    def __init__(
        self,
        adapter: InsightAdapter | None,
        store: InsightStore | None,
        subscriptions: SubscriptionService,
        publisher: Publisher,
        metrics: TransitionCounter,
    ) -> None:
        """``store`` None when insight is disabled; ``adapter`` None when the backend has no
        :class:`InsightAdapter` role (no resend, no parking of scheduled retries).
        """
        self._adapter = adapter
        self._store = store
        self._subscriptions = subscriptions
        self._publisher = publisher
        self._metrics = metrics

    def _need_store(self) -> InsightStore:
        if self._store is None:
            raise InsightDisabledError("delivery insight is disabled (insight.enabled: false)")
        return self._store

    async def message(self, message_id: str) -> tuple[MessageInsight, list[SubscriptionState]]:
        """The message and its state per subscription that matched it."""
        insight = await self._need_store().get_message(message_id)
        if insight is None:
            raise MessageNotFoundError(message_id)
        topic = insight.message.topic if insight.message is not None else None
        subs = await self._subscriptions.find(topic)
        return insight, derive_states(insight, subs)

    async def attempts(
        self,
        subscription_id: str,
        outcome: AttemptOutcome | None,
        limit: int,
        cursor: str | None,
    ) -> AttemptPage:
        """A subscription's attempts, newest first (404 for an unknown subscription)."""
        store = self._need_store()
        subscription = await self._subscriptions.get(subscription_id)
        return await store.list_attempts(
            subscription.topic, subscription.id, outcome=outcome, limit=limit, cursor=cursor
        )

    async def health(self, subscription: Subscription) -> EndpointHealth | None:
        """Health figures, or None when insight is disabled or its store cannot answer."""
        if self._store is None:
            return None
        try:
            recent = await self._store.recent_attempts(
                subscription.topic, subscription.id, HEALTH_SAMPLE
            )
        except Exception as exc:  # noqa: BLE001 - a subscription shows without its health
            logger.warning("health of %s unavailable: %s", subscription.id, exc)
            return None
        return compute_health(recent, now_ms())

    async def resend(self, message_id: str, subscription_id: str) -> None:
        """Deliver the message to the subscription once more: a new attempt series."""
        insight = await self._need_store().get_message(message_id)
        if insight is None or insight.message is None:
            raise MessageNotFoundError(message_id)
        subscription = await self._subscriptions.get(subscription_id)
        if subscription.topic != insight.message.topic:
            raise NotMatchedError(
                f"message {message_id!r} is on topic {insight.message.topic!r}, subscription "
                f"{subscription_id!r} on {subscription.topic!r}"
            )
        if self._adapter is None:
            raise InsightDisabledError("this adapter cannot resend")
        await self._adapter.requeue(subscription, insight.message)
        logger.info(
            "message resent",
            extra={"subscription_id": subscription_id, "message_id": message_id},
        )

    async def pause_automatically(
        self, subscription: Subscription, reason: str, last_error: LastError | None
    ) -> None:
        """The worker's trip: pause (shared through the registry), park, announce."""
        current = await self._subscriptions.get(subscription.id)
        if current.paused:
            return
        await self._subscriptions.set_paused(
            subscription.id, True, reason=f"auto_pause: {reason}", last_error=last_error
        )

    async def paused_changed(
        self, subscription: Subscription, last_error: LastError | None
    ) -> None:
        """After any pause or resume: park scheduled retries, count, log, publish the event."""
        paused = subscription.paused
        data: dict[str, Any] = {
            "subscription_id": subscription.id,
            "topic": subscription.topic,
            "at": now_ms(),
        }
        if paused:
            parked = await self._park_scheduled(subscription)
            automatic = (subscription.paused_reason or "").startswith("auto_pause")
            self._metrics.transition(subscription, "auto_paused" if automatic else "paused")
            data |= {
                "reason": subscription.paused_reason or "manual",
                "last_error": last_error.to_dict() if last_error else None,
                "parked_retries": parked,
            }
            logger.warning(
                "subscription paused: %s",
                data["reason"],
                extra={"subscription_id": subscription.id, "topic": subscription.topic},
            )
        else:
            self._metrics.transition(subscription, "resumed")
            logger.info(
                "subscription resumed: parked messages are delivered",
                extra={"subscription_id": subscription.id, "topic": subscription.topic},
            )
        topic = PAUSED_TOPIC if paused else RESUMED_TOPIC
        if topic == subscription.topic:
            return  # the event subscription itself: its own events would park behind it
        try:
            await self._publisher.publish(topic, [PublishRequest(data=data)])
        except Exception as exc:  # noqa: BLE001 - the transition stands without its event
            logger.warning("could not publish %s: %s", topic, exc)

    async def _park_scheduled(self, subscription: Subscription) -> int:
        if self._adapter is None:
            return 0
        try:
            return await self._adapter.park_scheduled(subscription)
        except Exception as exc:  # noqa: BLE001 - retries then park when they come due
            logger.warning("could not park scheduled retries of %s: %s", subscription.id, exc)
            return 0
