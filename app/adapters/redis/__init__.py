"""Redis adapter (``modules::queue::RedisAdapter``): Redis Streams, standalone or cluster."""

from app.adapters.redis.adapter import RedisAdapter
from app.adapters.redis.settings import RedisSettings

__all__ = ["RedisAdapter", "RedisSettings"]
