"""Turning API bodies into core subscriptions and back.

The engine's ``metadata.infrastructure.queue.{max_retries, retry_delay_ms,
dead_letter_topic}`` means the same as ``retry.*`` / ``dead_letter_topic``; explicit
fields win over metadata, metadata wins over defaults.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from app.api.errors import ApiError
from app.api.schemas import RetryOut, SubscriptionFields, SubscriptionOut
from app.core.ids import new_secret
from app.core.models import RetryPolicy, Subscription
from app.core.signing import mask_secret
from app.dispatch.guard import DestinationGuard
from app.observability.redact import mask_url_credentials


def _queue_metadata(metadata: dict[str, Any] | None) -> dict[str, Any]:
    queue = ((metadata or {}).get("infrastructure") or {}).get("queue") or {}
    return queue if isinstance(queue, dict) else {}


def _retry_and_dead_letter(
    base: Subscription, fields: SubscriptionFields
) -> tuple[RetryPolicy, str | None]:
    """Explicit ``retry``/``dead_letter_topic`` win over the engine's metadata, which wins
    over what ``base`` had.
    """
    sent = fields.model_fields_set
    retry = base.retry
    dead_letter_topic = base.dead_letter_topic
    if "metadata" in sent:
        queue = _queue_metadata(fields.metadata)
        if queue.get("max_retries") is not None:
            retry = replace(retry, max_retries=int(queue["max_retries"]))
        if queue.get("retry_delay_ms") is not None:
            retry = replace(retry, retry_delay_ms=int(queue["retry_delay_ms"]))
        if queue.get("dead_letter_topic"):
            dead_letter_topic = str(queue["dead_letter_topic"])
    if "retry" in sent and fields.retry is not None:
        explicit = {k: v for k, v in fields.retry.model_dump().items() if v is not None}
        retry = replace(retry, **explicit)
    if "dead_letter_topic" in sent:
        dead_letter_topic = fields.dead_letter_topic
    return retry, dead_letter_topic


def apply_fields(
    base: Subscription, fields: SubscriptionFields, *, guard: DestinationGuard
) -> Subscription:
    """``base`` with every field that was sent in ``fields`` applied."""
    sent = fields.model_fields_set
    changes: dict[str, Any] = {}
    for name in ("url", "condition", "timeout_ms", "max_in_flight", "payload", "paused"):
        if name in sent and (getattr(fields, name) is not None or name == "condition"):
            changes[name] = getattr(fields, name)
    if "headers" in sent:
        changes["headers"] = dict(fields.headers or {})
    if "secret" in sent and fields.secret != base.secret:
        # Setting a secret outright is not a rotation: no grace for the one it replaces.
        changes.update(secret=fields.secret, previous_secret=None, previous_secret_expires_at=None)
    if "metadata" in sent:
        changes["metadata"] = dict(fields.metadata or {})
    retry, dead_letter_topic = _retry_and_dead_letter(base, fields)
    if dead_letter_topic is not None and dead_letter_topic == base.topic:
        raise ApiError(
            422, "validation_error", "dead_letter_topic: must differ from the subscription's topic"
        )
    if retry.max_delay_ms < retry.retry_delay_ms:
        retry = replace(retry, max_delay_ms=retry.retry_delay_ms)
    changes["retry"] = retry
    changes["dead_letter_topic"] = dead_letter_topic
    updated = base.with_changes(**changes)
    refusal = guard.check_url(updated.url)
    if refusal is not None:
        raise ApiError(422, "blocked_destination", f"url: {refusal}")
    return updated


def new_subscription(
    subscription_id: str,
    topic: str,
    fields: SubscriptionFields,
    *,
    guard: DestinationGuard,
) -> Subscription:
    """A subscription built from defaults plus ``fields``.

    Without a ``secret`` field a new one is generated; an explicit ``null`` means
    deliveries are not signed.
    """
    base = Subscription(
        id=subscription_id, topic=topic, url="", retry=RetryPolicy(), secret=new_secret()
    )
    return apply_fields(base, fields, guard=guard)


def to_out(subscription: Subscription, *, reveal_secret: bool = False) -> SubscriptionOut:
    """The API view; the secret is masked unless just created or rotated; a previous
    secret is never shown, only until when it still signs.
    """
    raw = subscription.to_dict()
    raw["retry"] = RetryOut(**raw["retry"])
    raw["secret"] = subscription.secret if reveal_secret else mask_secret(subscription.secret)
    del raw["previous_secret"]
    raw["previous_secret_expires_at"] = subscription.previous_secret_expiry()
    raw["url"] = mask_url_credentials(subscription.url)
    return SubscriptionOut(**raw)
