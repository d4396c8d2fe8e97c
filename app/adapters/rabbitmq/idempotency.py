"""Idempotency keys shared by every instance, on a stream with age-based retention.

A claim is an event in the stream; the first claim of a key (within its TTL) in stream
order wins, identically on every instance. Expiry is judged with the claim events' own
timestamps, never the local clock, so every instance reaches the same verdict.
A key already known locally is answered without a round trip.

The stream keeps ``idempotency_retention`` of history (``x-max-age``); keys whose TTL is
longer are still honoured while instances run, but forgotten by instances that start
after the retention has dropped them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.adapters.rabbitmq.connection import Session
from app.adapters.rabbitmq.names import NameSpace
from app.adapters.rabbitmq.streamlog import StreamLog
from app.core.models import now_ms

_SWEEP_EVERY = 1000
_SKEW_MS = 60_000  # clocks of instances may disagree this much without changing verdicts


@dataclass(slots=True)
class _Claim:
    message_id: str
    expires_at: int


class IdempotencyKeys:
    """Claim and release keys; the verdicts come from the shared stream."""

    def __init__(self, names: NameSpace, retention: str) -> None:
        """Follows ``<prefix>.idempotency``, keeping ``retention`` of history."""
        self._claims: dict[tuple[str, str], _Claim] = {}
        self._applied = 0
        self.log = StreamLog(
            names.idempotency,
            self._apply,
            arguments={
                "x-max-age": retention,
                "x-stream-max-segment-size-bytes": 8_000_000,
            },
        )

    def known(self, topic: str, key: str) -> str | None:
        """The message id holding ``key`` right now, by local knowledge only."""
        claim = self._claims.get((topic, key))
        if claim is not None and claim.expires_at > now_ms():
            return claim.message_id
        return None

    async def claim(
        self, session: Session, topic: str, key: str, message_id: str, ttl_ms: int
    ) -> str | None:
        """None if ``message_id`` now holds the key, else the id that held it first."""
        earlier = self.known(topic, key)
        if earlier is not None:
            return earlier
        result = await self.log.append(
            session,
            {"op": "claim", "t": topic, "k": key, "m": message_id, "at": now_ms(), "ttl": ttl_ms},
        )
        return result if isinstance(result, str) and result != message_id else None

    async def release(self, session: Session, topic: str, key: str) -> None:
        """Forget the key if this instance's knowledge says it is held."""
        claim = self._claims.get((topic, key))
        if claim is not None:
            await self.log.append(
                session, {"op": "release", "t": topic, "k": key, "m": claim.message_id}
            )

    def _apply(self, event: dict[str, Any], live: bool) -> Any:  # noqa: ARG002 - Apply signature
        op = event.get("op")
        slot = (str(event.get("t")), str(event.get("k")))
        if op == "claim":
            at = int(event["at"])
            current = self._claims.get(slot)
            self._sweep(at)
            if current is not None and current.expires_at > at:
                return current.message_id
            message_id = str(event["m"])
            self._claims[slot] = _Claim(message_id, at + int(event["ttl"]))
            return message_id
        if op == "release":
            current = self._claims.get(slot)
            if current is not None and current.message_id == event.get("m"):
                del self._claims[slot]
            return None
        return None

    def _sweep(self, at: int) -> None:
        """Drop long-expired claims, judged by event time so every instance agrees."""
        self._applied += 1
        if self._applied % _SWEEP_EVERY:
            return
        horizon = at - _SKEW_MS
        self._claims = {k: c for k, c in self._claims.items() if c.expires_at > horizon}
