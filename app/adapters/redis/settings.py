"""The Redis adapter's ``config:`` block, validated once at start.

Everything here has a default except nothing: ``redis_url`` defaults to a local Redis so
``class: modules::queue::RedisAdapter`` alone works on a laptop. A wrong key or type fails
at start with one line naming it, instead of a confusing error on the first message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

_PREFIX_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


@dataclass(frozen=True, slots=True)
class RedisSettings:
    """How to reach Redis and how the adapter paces itself.

    ``visibility_timeout_ms`` is the floor of a lease: a delivery leased by a process that
    went silent is taken over once idle that long, and never before the subscription's own
    ``timeout_ms + lease_margin_ms``, so a slow but live delivery is never stolen.
    """

    redis_url: str = "redis://localhost:6379"
    key_prefix: str = "hookline"
    cluster: bool = False
    visibility_timeout_ms: int = 30_000
    lease_margin_ms: int = 5_000
    claim_interval_ms: int = 1_000
    trim_interval_ms: int = 5_000
    consumer_idle_ms: int = 3_600_000
    socket_timeout_ms: int = 5_000
    connect_timeout_ms: int = 2_000
    max_connections: int = 512
    consumer_name: str | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RedisSettings:
        """Validate the ``config:`` mapping; raise ``ValueError`` naming the bad key."""
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, raw in config.items():
            if key not in known:
                raise ValueError(
                    f"adapter config: unknown key {key!r} for RedisAdapter "
                    f"(known: {', '.join(sorted(known))})"
                )
            values[key] = _coerce(key, raw, known[key].default)
        settings = cls(**values)
        settings._check()
        return settings

    def _check(self) -> None:
        if not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(
                "adapter config: redis_url must start with redis://, rediss:// or unix://"
            )
        if not _PREFIX_RE.fullmatch(self.key_prefix):
            raise ValueError(
                "adapter config: key_prefix must match [A-Za-z0-9][A-Za-z0-9._:-]{0,63}"
            )
        for name in (
            "visibility_timeout_ms",
            "claim_interval_ms",
            "trim_interval_ms",
            "socket_timeout_ms",
            "connect_timeout_ms",
            "max_connections",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"adapter config: {name} must be > 0")
        if self.lease_margin_ms < 0 or self.consumer_idle_ms < 0:
            raise ValueError("adapter config: lease_margin_ms and consumer_idle_ms must be >= 0")

    def visibility_ms(self, delivery_timeout_ms: int) -> int:
        """How long a lease may stay silent before another consumer takes it over."""
        return max(self.visibility_timeout_ms, delivery_timeout_ms + self.lease_margin_ms)


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_INVALID = object()


def _coerce(key: str, raw: Any, default: Any) -> Any:
    """Accept what YAML or env vars give (``"5000"``, ``"true"``) for a field's type."""
    value = _convert(raw, default)
    if value is _INVALID:
        kind = type(default).__name__ if default is not None else "str"
        raise ValueError(f"adapter config: {key} must be a {kind}, got {raw!r}")
    return value


def _convert(raw: Any, default: Any) -> Any:
    if isinstance(default, bool):
        if isinstance(raw, bool):
            return raw
        lowered = str(raw).strip().lower()
        return True if lowered in _TRUE else False if lowered in _FALSE else _INVALID
    if isinstance(default, int):
        if isinstance(raw, bool):
            return _INVALID
        try:
            return int(raw)
        except (TypeError, ValueError):
            return _INVALID
    if raw is None and default is None:
        return None
    return raw if isinstance(raw, str) else _INVALID
