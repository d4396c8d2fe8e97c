"""Turning API bodies into core subscriptions and back.

The engine's ``metadata.infrastructure.queue`` (every ``retry`` field and
``dead_letter_topic``) means the same as ``retry.*`` / ``dead_letter_topic``; explicit
fields win over metadata, metadata wins over defaults.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from app.api.errors import ApiError
from app.api.schemas import (
    ConcurrencyOut,
    QueueInfrastructure,
    RetryOut,
    SubscriptionFields,
    SubscriptionMetadata,
    SubscriptionOut,
    find_lone_surrogate,
)
from app.core.concurrency import DEFAULT_CEILING
from app.core.ids import new_secret
from app.core.models import AutoPausePolicy, RateLimit, RetryPolicy, Subscription
from app.core.redact import mask_url_credentials
from app.core.signing import mask_secret
from app.core.subscriptions import DestinationPolicy, SubscriptionRuleError

logger = logging.getLogger("hookline.api")


def _queue_metadata(metadata: SubscriptionMetadata | None) -> QueueInfrastructure | None:
    infrastructure = metadata.infrastructure if metadata is not None else None
    return infrastructure.queue if infrastructure is not None else None


def _retry_and_dead_letter(
    base: Subscription, fields: SubscriptionFields
) -> tuple[RetryPolicy, str | None]:
    """Explicit ``retry``/``dead_letter_topic`` win over the engine's metadata, which wins
    over what ``base`` had.
    """
    sent = fields.model_fields_set
    retry = base.retry
    dead_letter_topic = base.dead_letter_topic
    queue = _queue_metadata(fields.metadata) if "metadata" in sent else None
    if queue is not None:
        retry = replace(retry, **_given(queue.model_dump(exclude={"dead_letter_topic"})))
        if queue.dead_letter_topic:
            dead_letter_topic = queue.dead_letter_topic
    if "retry" in sent and fields.retry is not None:
        retry = replace(retry, **_given(fields.retry.model_dump()))
    if "dead_letter_topic" in sent:
        dead_letter_topic = fields.dead_letter_topic
    return retry, dead_letter_topic


def _concurrency(base: Subscription, fields: SubscriptionFields) -> dict[str, Any]:
    """``max_in_flight`` (a number, or ``"auto"`` with ``max_in_flight_ceiling``) as stored:
    ``adaptive_concurrency`` and ``max_in_flight`` (the ceiling when adaptive).
    """
    sent = fields.model_fields_set
    wanted = fields.max_in_flight if "max_in_flight" in sent else None
    ceiling = fields.max_in_flight_ceiling if "max_in_flight_ceiling" in sent else None
    adaptive = wanted == "auto" or (wanted is None and base.adaptive_concurrency)
    if ceiling is not None and not adaptive:
        raise ApiError(
            422,
            "validation_error",
            'max_in_flight_ceiling: only with max_in_flight: "auto"',
            [
                {
                    "loc": ["body", "max_in_flight_ceiling"],
                    "msg": "only with auto",
                    "type": "value_error",
                }
            ],
        )
    if isinstance(wanted, int):
        return {"max_in_flight": wanted, "adaptive_concurrency": False}
    if not adaptive:
        return {}
    if ceiling is None:
        ceiling = base.max_in_flight if base.adaptive_concurrency else DEFAULT_CEILING
    return {"max_in_flight": ceiling, "adaptive_concurrency": True}


def _given(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def apply_fields(
    base: Subscription, fields: SubscriptionFields, *, guard: DestinationPolicy
) -> Subscription:
    """``base`` with every field that was sent in ``fields`` applied."""
    sent = fields.model_fields_set
    changes: dict[str, Any] = {}
    for name in ("url", "condition", "timeout_ms", "payload", "paused", "ordering"):
        if name in sent and (getattr(fields, name) is not None or name == "condition"):
            changes[name] = getattr(fields, name)
    changes.update(_concurrency(base, fields))
    if "rate_limit" in sent:
        limit = fields.rate_limit
        changes["rate_limit"] = None if limit is None else RateLimit(limit.per_second, limit.burst)
    if "headers" in sent:
        changes["headers"] = dict(fields.headers or {})
    if "auto_pause" in sent:
        policy = fields.auto_pause
        changes["auto_pause"] = (
            None
            if policy is None
            else AutoPausePolicy(policy.after_consecutive_failures, policy.after_failing_for_ms)
        )
    if "secret" in sent and fields.secret != base.secret:
        # Setting a secret outright is not a rotation: no grace for the one it replaces.
        changes.update(secret=fields.secret, previous_secret=None, previous_secret_expires_at=None)
    if "metadata" in sent:
        metadata = fields.metadata
        changes["metadata"] = metadata.model_dump(exclude_unset=True) if metadata else {}
    retry, dead_letter_topic = _retry_and_dead_letter(base, fields)
    if dead_letter_topic is not None and dead_letter_topic == base.topic:
        raise SubscriptionRuleError("dead_letter_topic: must differ from the subscription's topic")
    if retry.max_delay_ms < retry.retry_delay_ms:
        retry = replace(retry, max_delay_ms=retry.retry_delay_ms)
    changes["retry"] = retry
    changes["dead_letter_topic"] = dead_letter_topic
    updated = base.with_changes(**changes)
    refusal = guard.check_url(updated.url)
    if refusal is not None:
        raise SubscriptionRuleError(f"url: {refusal}", "blocked_destination")
    return updated


def new_subscription(
    subscription_id: str,
    topic: str,
    fields: SubscriptionFields,
    *,
    guard: DestinationPolicy,
) -> Subscription:
    """A subscription built from defaults plus ``fields``.

    Without a ``secret`` field a new one is generated; an explicit ``null`` means
    deliveries are not signed.
    """
    base = Subscription(
        id=subscription_id, topic=topic, url="", retry=RetryPolicy(), secret=new_secret()
    )
    return apply_fields(base, fields, guard=guard)


def to_out(
    subscription: Subscription,
    *,
    reveal_secret: bool = False,
    concurrency_window: int | None = None,
) -> SubscriptionOut:
    """The API view; the secret is masked unless just created or rotated; a previous
    secret is never shown, only until when it still signs. ``concurrency_window`` is this
    instance's adaptive window, when it runs one.

    A stored subscription holding text that JSON cannot carry (a lone surrogate, saved
    before the API refused it) is shown with U+FFFD in its place, so it can still be seen
    and deleted instead of breaking every listing.
    """
    raw = subscription.to_dict()
    raw["secret"] = subscription.secret if reveal_secret else mask_secret(subscription.secret)
    del raw["previous_secret"]
    raw["previous_secret_expires_at"] = subscription.previous_secret_expiry()
    raw["url"] = mask_url_credentials(subscription.url)
    where = find_lone_surrogate(raw)
    if where is not None:
        logger.warning(
            "subscription %s holds text that cannot be encoded (%s); shown with U+FFFD",
            subscription.id.encode("utf-8", "replace").decode(),
            where.encode("utf-8", "replace").decode(),
        )
        raw = _replace_surrogates(raw)
    raw["retry"] = RetryOut(**raw["retry"])
    adaptive = raw.pop("adaptive_concurrency")
    ceiling = subscription.max_in_flight
    raw["max_in_flight"] = "auto" if adaptive else ceiling
    raw["max_in_flight_ceiling"] = ceiling if adaptive else None
    raw["concurrency"] = ConcurrencyOut(
        mode="auto" if adaptive else "fixed",
        window=concurrency_window if adaptive else ceiling,
        ceiling=ceiling,
    )
    return SubscriptionOut(**raw)


def _replace_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in value)
    if isinstance(value, dict):
        return {_replace_surrogates(k): _replace_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_surrogates(item) for item in value]
    return value
