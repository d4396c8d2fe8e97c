"""The Redis adapter's ``config:`` block, validated once at start (:mod:`app.config`).

Everything has a default: ``redis_url`` defaults to a local Redis so
``class: modules::queue::RedisAdapter`` alone works on a laptop. A wrong key or type fails
at start with one line naming it, instead of a confusing error on the first message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator

from app.adapters.kit.settings import FORBID_UNKNOWN_KEYS, NonNegativeInt, PositiveInt, Prefix


def _redis_scheme(url: str) -> str:
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("must start with redis://, rediss:// or unix://")
    return url


@dataclass(frozen=True, slots=True)
class RedisSettings:
    """How to reach Redis and how the adapter paces itself.

    ``visibility_timeout_ms`` is the floor of a lease: a delivery leased by a process that
    went silent is taken over once idle that long, and never before the subscription's own
    ``timeout_ms + lease_margin_ms``, so a slow but live delivery is never stolen.
    """

    __pydantic_config__ = FORBID_UNKNOWN_KEYS

    redis_url: Annotated[str, AfterValidator(_redis_scheme)] = "redis://localhost:6379"
    key_prefix: Prefix = "hookline"
    cluster: bool = False
    visibility_timeout_ms: PositiveInt = 30_000
    lease_margin_ms: NonNegativeInt = 5_000
    claim_interval_ms: PositiveInt = 1_000
    trim_interval_ms: PositiveInt = 5_000
    consumer_idle_ms: NonNegativeInt = 3_600_000
    socket_timeout_ms: PositiveInt = 5_000
    connect_timeout_ms: PositiveInt = 2_000
    max_connections: PositiveInt = 512
    consumer_name: str | None = None

    def visibility_ms(self, delivery_timeout_ms: int) -> int:
        """How long a lease may stay silent before another consumer takes it over."""
        return max(self.visibility_timeout_ms, delivery_timeout_ms + self.lease_margin_ms)
