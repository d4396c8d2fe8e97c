"""RabbitMQ adapter (``modules::queue::RabbitMQAdapter``); see ``docs/rabbitmq.md``."""

from app.adapters.rabbitmq.adapter import RabbitMQAdapter
from app.adapters.rabbitmq.config import RabbitMQConfig, RabbitMQConfigError

__all__ = ["RabbitMQAdapter", "RabbitMQConfig", "RabbitMQConfigError"]
