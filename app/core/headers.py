"""Headers of a webhook request that hookline owns: a subscription may not set them."""

from __future__ import annotations

RESERVED_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "host",
        "user-agent",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "traceparent",
        "tracestate",
        "baggage",
        "transfer-encoding",
        "connection",
    }
)
"""Headers a subscription may not set: hookline owns them."""
