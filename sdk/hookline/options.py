"""The fields of a subscription, as keyword arguments shared by the client and triggers."""

from __future__ import annotations

from typing import Any, Literal, TypedDict

RETRY_FIELDS = ("max_retries", "retry_delay_ms", "backoff", "max_delay_ms", "jitter")


class SubscriptionOptions(TypedDict, total=False):
    """Every optional subscription field; one left out takes hookline's default.

    The retry fields may be given flat (``max_retries=3``, as the engine's
    ``metadata.infrastructure.queue`` has them) or as ``retry={...}``. ``secret=None``
    means deliveries are not signed. ``ordering``, ``rate_limit``, ``auto_pause`` are
    passed on for servers that have them; ``extra`` holds any other field as is.
    """

    condition: str | None
    max_retries: int
    retry_delay_ms: int
    backoff: Literal["exponential", "fixed"]
    max_delay_ms: int
    jitter: float
    retry: dict[str, Any]
    dead_letter_topic: str | None
    timeout_ms: int
    max_in_flight: int | str
    headers: dict[str, str]
    secret: str | None
    payload: Literal["envelope", "data"]
    paused: bool
    metadata: dict[str, Any]
    ordering: str
    rate_limit: dict[str, Any]
    auto_pause: dict[str, Any] | None
    extra: dict[str, Any]


def subscription_body(options: SubscriptionOptions, **required: str | None) -> dict[str, Any]:
    """The JSON body for ``options`` (plus ``topic``/``url``/``id`` when given)."""
    fields: dict[str, Any] = dict(options)
    extra = fields.pop("extra", None) or {}
    retry = dict(fields.pop("retry", None) or {})
    for name in RETRY_FIELDS:
        if name in fields:
            retry[name] = fields.pop(name)
    body: dict[str, Any] = {k: v for k, v in required.items() if v is not None}
    body.update(fields)
    if retry:
        body["retry"] = retry
    body.update(extra)
    return body
