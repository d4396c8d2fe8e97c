"""What goes on the wire for one delivery attempt: the body and the headers."""

from __future__ import annotations

import time
from collections.abc import Mapping

from app import __version__
from app.core.codec import encode_json
from app.core.headers import RESERVED_HEADERS
from app.core.models import Delivery, Subscription
from app.core.signing import sign

USER_AGENT = f"hookline/{__version__}"


def build_body(subscription: Subscription, delivery: Delivery) -> bytes:
    """``envelope`` (default): id, topic, data, attempt, published_at and trace context;
    ``data``: the bare ``data``, as the engine hands it to a handler.
    """
    message = delivery.message
    if subscription.payload == "data":
        document: object = message.data
    else:
        document = {**message.to_dict(), "attempt": delivery.attempt}
    return encode_json(document)


def build_headers(
    subscription: Subscription,
    delivery: Delivery,
    body: bytes,
    trace_headers: Mapping[str, str],
    timestamp: int | None = None,
) -> dict[str, str]:
    """Standard Webhooks headers, trace context, then the subscription's own headers.

    During a secret rotation's grace period ``webhook-signature`` holds two
    space-separated signatures (new secret first), as Standard Webhooks allows: a
    receiver verifying with either secret accepts the delivery.
    """
    stamp = int(time.time()) if timestamp is None else timestamp
    headers = {k: v for k, v in subscription.headers.items() if k.lower() not in RESERVED_HEADERS}
    headers["Content-Type"] = "application/json"
    headers["webhook-id"] = delivery.message.id
    headers["webhook-timestamp"] = str(stamp)
    secrets = subscription.signing_secrets()
    if secrets:
        headers["webhook-signature"] = " ".join(
            sign(secret, delivery.message.id, stamp, body) for secret in secrets
        )
    headers.update(trace_headers)
    return headers
