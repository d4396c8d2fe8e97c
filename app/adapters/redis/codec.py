"""How envelopes are stored and how leased entries come back as deliveries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from app.adapters.kit import codec
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
    """The shared storage form (:mod:`app.adapters.kit.codec`), as the text Redis keeps."""
    return codec.encode_envelope(envelope).decode()


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
                message=codec.decode_envelope(raw),
                attempt=int(attempt),
                receipt=Receipt(topic, source, entry_id, raw),
            )
        )
    return deliveries
