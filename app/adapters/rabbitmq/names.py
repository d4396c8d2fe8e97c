"""Names of every exchange, queue and stream, all under one prefix.

Keeping them in one place is what lets a test (or an operator decommissioning hookline)
find and delete everything a deployment created.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

LADDER_BITS = 32
"""Delay stages 2^0 .. 2^31 ms: one pass through the ladder covers up to ~49.7 days."""

_MAX_NAME_BYTES = 255  # AMQP short strings


def fit(name: str) -> str:
    """``name`` itself, or a truncated form with a hash when AMQP's 255-byte limit bites."""
    raw = name.encode()
    if len(raw) <= _MAX_NAME_BYTES:
        return name
    digest = hashlib.sha256(raw).hexdigest()[:16]
    return raw[:200].decode(errors="ignore") + "~" + digest


@dataclass(frozen=True, slots=True)
class NameSpace:
    """The naming scheme of one ``prefix``."""

    prefix: str

    @property
    def topics(self) -> str:
        """Topic exchange: publish fans out by routing key = topic to subscription queues."""
        return f"{self.prefix}.topics"

    @property
    def direct(self) -> str:
        """Direct exchange: reaches one subscription queue (retries, redrive, ladder exit)."""
        return f"{self.prefix}.direct"

    def ladder_exchange(self, bit: int) -> str:
        """Headers exchange deciding whether a message waits in stage ``bit`` or skips it."""
        return f"{self.prefix}.delay.x{bit:02d}"

    def ladder_queue(self, bit: int) -> str:
        """TTL queue holding messages for 2^bit ms."""
        return f"{self.prefix}.delay.q{bit:02d}.{2**bit}ms"

    @property
    def registry(self) -> str:
        """Stream of subscription registry changes."""
        return f"{self.prefix}.registry"

    @property
    def idempotency(self) -> str:
        """Stream of idempotency key claims."""
        return f"{self.prefix}.idempotency"

    @property
    def insight(self) -> str:
        """Stream of delivery insight batches (attempts, states, messages)."""
        return f"{self.prefix}.insight"

    def subscription_queue(self, subscription_id: str, incarnation: str) -> str:
        """Queue of one incarnation of a subscription (a re-created id gets a new queue)."""
        return fit(f"{self.prefix}.sub.{subscription_id}.{incarnation}")

    def dlq(self, topic: str) -> str:
        """The topic's dead-letter queue."""
        return fit(f"{self.prefix}.dlq.{topic}")

    def dlq_lock(self, topic: str) -> str:
        """Exclusive queue used as a broker-wide lock around scans of the topic's DLQ."""
        return fit(f"{self.prefix}.lock.dlq.{topic}")
