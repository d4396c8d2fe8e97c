"""The builtin adapter's ``config:`` block, validated once at start (:mod:`app.config`)."""

from __future__ import annotations

from dataclasses import dataclass

from app.adapters.kit.settings import FORBID_UNKNOWN_KEYS, PositiveInt


@dataclass(frozen=True, slots=True)
class BuiltinSettings:
    """Bounds on the distinct messages held (queued, leased, scheduled or dead-lettered);
    fan-out copies share one message.
    """

    __pydantic_config__ = FORBID_UNKNOWN_KEYS

    max_messages: PositiveInt = 1_000_000
    max_bytes: PositiveInt = 256 * 1024 * 1024
