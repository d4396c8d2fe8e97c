"""What goes on the wire for one delivery attempt: the body and the headers."""

from __future__ import annotations

import time
from collections.abc import Mapping

from app import __version__
from app.core.codec import encode_json
from app.core.headers import RESERVED_HEADERS
from app.core.models import Delivery, Subscription, now_ms
from app.core.signing import Signer

USER_AGENT = f"hookline/{__version__}"


def build_body(subscription: Subscription, delivery: Delivery) -> bytes:
    """``envelope`` (default): id, topic, data, attempt, published_at and trace context;
    ``data``: the bare ``data``, as the engine hands it to a handler.
    """
    message = delivery.message
    if subscription.payload == "data":
        return encode_json(message.data)
    document = message.to_dict()
    document["attempt"] = delivery.attempt
    return encode_json(document)


class HeaderPlan:
    """The parts of a subscription's request headers that every delivery shares, made once
    per definition: its own headers (reserved names left out), the content type and the
    signing keys. :meth:`headers` adds what changes per attempt.
    """

    __slots__ = ("_base", "_previous", "_previous_until", "_signer")

    def __init__(self, subscription: Subscription) -> None:
        """Read ``subscription`` once (a changed definition gets a new plan)."""
        base = {k: v for k, v in subscription.headers.items() if k.lower() not in RESERVED_HEADERS}
        base["Content-Type"] = "application/json"
        self._base = base
        self._signer = Signer(subscription.secret) if subscription.secret else None
        previous = subscription.previous_secret
        until = subscription.previous_secret_expires_at
        keep = self._signer is not None and previous and until is not None
        self._previous = Signer(previous) if keep and previous else None
        self._previous_until = until or 0

    def headers(
        self,
        message_id: str,
        body: bytes,
        trace_headers: Mapping[str, str] | None,
        timestamp: int | None = None,
    ) -> dict[str, str]:
        """Standard Webhooks headers, trace context, then the subscription's own headers.

        During a secret rotation's grace period ``webhook-signature`` holds two
        space-separated signatures (new secret first), as Standard Webhooks allows: a
        receiver verifying with either secret accepts the delivery.
        """
        stamp = int(time.time()) if timestamp is None else timestamp
        headers = self._base.copy()
        headers["webhook-id"] = message_id
        headers["webhook-timestamp"] = str(stamp)
        signer = self._signer
        if signer is not None:
            signature = signer.sign(message_id, stamp, body)
            previous = self._previous
            if previous is not None and self._previous_until > now_ms():
                signature += " " + previous.sign(message_id, stamp, body)
            headers["webhook-signature"] = signature
        if trace_headers:
            headers.update(trace_headers)
        return headers


def build_headers(
    subscription: Subscription,
    delivery: Delivery,
    body: bytes,
    trace_headers: Mapping[str, str],
    timestamp: int | None = None,
) -> dict[str, str]:
    """The headers of one attempt (:meth:`HeaderPlan.headers`, with a plan made for it)."""
    return HeaderPlan(subscription).headers(delivery.message.id, body, trace_headers, timestamp)
