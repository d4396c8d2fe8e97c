"""RabbitMQ adapter (``modules::queue::RabbitMQAdapter``); see ``docs/rabbitmq.md``."""

from app.adapters.rabbitmq.adapter import RabbitMQAdapter
from app.adapters.rabbitmq.settings import RabbitMQConfigError, RabbitMQSettings

__all__ = ["RabbitMQAdapter", "RabbitMQConfigError", "RabbitMQSettings"]
