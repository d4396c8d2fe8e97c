"""How envelopes are stored and how leased entries come back as deliveries."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from app.core.models import Delivery, Envelope

Source = Literal["t", "q"]
"""``t``: the topic stream (first attempts); ``q``: the subscription's own stream."""


@dataclass(frozen=True, slots=True)
class Receipt:
    """Where a leased copy lives: all that is needed to end its lease without a lookup.

    ``envelope_json`` is the stored text, reused verbatim when the copy is rescheduled,
    released or dead-lettered (no re-encoding on the hot path).
    """

    topic: str
    source: Source
    entry_id: str
    envelope_json: str


def encode_envelope(envelope: Envelope) -> str:
    """Compact JSON, ASCII-only so any payload survives the trip through Redis unchanged."""
    return json.dumps(envelope.to_dict(), separators=(",", ":"))


def receipt_of(delivery: Delivery) -> Receipt:
    """The Redis receipt of a delivery this adapter leased (anything else is a bug)."""
    receipt = delivery.receipt
    if not isinstance(receipt, Receipt):
        raise TypeError(f"delivery {delivery.message.id} was not leased by the Redis adapter")
    return receipt


def decode_leases(
    subscription_id: str, topic: str, flat: Sequence[str], start: int
) -> list[Delivery]:
    """Deliveries from the receive script's one string per lease (fields joined by newlines).

    Compact JSON never holds a raw newline, so splitting on the first three is exact.
    """
    deliveries = []
    for packed in flat[start:]:
        kind, entry_id, attempt, raw = packed.split("\n", 3)
        source: Source = "q" if kind == "q" else "t"
        deliveries.append(
            Delivery(
                subscription_id=subscription_id,
                message=Envelope.from_dict(json.loads(raw)),
                attempt=int(attempt),
                receipt=Receipt(topic, source, entry_id, raw),
            )
        )
    return deliveries
