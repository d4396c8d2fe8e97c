"""RabbitMQ adapter (``modules::queue::RabbitMQAdapter``); see ``docs/rabbitmq.md``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.adapters.rabbitmq.settings import RabbitMQSettings

if TYPE_CHECKING:
    from app.adapters.rabbitmq.adapter import RabbitMQAdapter

__all__ = ["RabbitMQAdapter", "RabbitMQSettings"]


def __getattr__(name: str) -> object:
    """``RabbitMQAdapter`` on first use: its settings alone (read by :mod:`app.config`) need no
    broker client.
    """
    if name == "RabbitMQAdapter":
        from app.adapters.rabbitmq.adapter import RabbitMQAdapter

        return RabbitMQAdapter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
