"""Redis adapter (``modules::queue::RedisAdapter``): Redis Streams, standalone or cluster."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.adapters.redis.settings import RedisSettings

if TYPE_CHECKING:
    from app.adapters.redis.adapter import RedisAdapter

__all__ = ["RedisAdapter", "RedisSettings"]


def __getattr__(name: str) -> object:
    """``RedisAdapter`` on first use: its settings alone (read by :mod:`app.config`) need no
    broker client.
    """
    if name == "RedisAdapter":
        from app.adapters.redis.adapter import RedisAdapter

        return RedisAdapter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
