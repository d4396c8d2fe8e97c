"""The RabbitMQ adapter's settings: validated once (:mod:`app.config`), from the ``config:``
block of config.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, AliasChoices, Field, model_validator

from app.adapters.kit.settings import FORBID_UNKNOWN_KEYS, PositiveInt, Prefix
from app.core.redact import mask_url_credentials

QueueType = Literal["classic", "quorum"]

DEFAULT_URL = "amqp://guest:guest@localhost:5672/"


def _amqp_scheme(url: str) -> str:
    if urlsplit(url).scheme not in {"amqp", "amqps"}:
        raise ValueError(f"expected amqp:// or amqps://, got {mask_url_credentials(url)!r}")
    return url


AmqpUrl = Annotated[
    str,
    AfterValidator(_amqp_scheme),
    Field(validation_alias=AliasChoices("amqp_url", "url")),
]
MaxAge = Annotated[
    str,
    Field(
        pattern=r"^[0-9]+[YMDhms]$",
        description="A RabbitMQ max-age such as 7D, 12h or 90m.",
    ),
]


@dataclass(frozen=True, slots=True)
class RabbitMQSettings:
    """Everything the adapter needs to know, as plain values.

    ``prefix`` namespaces every exchange, queue and stream, so several hookline
    deployments (or test runs) can share one vhost without seeing each other.
    """

    __pydantic_config__ = FORBID_UNKNOWN_KEYS

    amqp_url: AmqpUrl = DEFAULT_URL
    prefix: Prefix = "hookline"
    queue_type: QueueType = "classic"
    publish_timeout_ms: PositiveInt = 5_000
    connect_timeout_ms: PositiveInt = 5_000
    reconnect_max_ms: PositiveInt = 5_000
    idempotency_retention: MaxAge = "7D"

    @model_validator(mode="before")
    @classmethod
    def _global_redis_url_is_not_a_typo(cls, data: Any) -> Any:
        """``redis_url`` may be set for the whole environment (``HOOKLINE_REDIS_URL``, a
        file switched to RabbitMQ by ``HOOKLINE_ADAPTER__CLASS``): not this adapter's key.
        """
        if isinstance(data, dict) and "redis_url" in data:
            return {key: value for key, value in data.items() if key != "redis_url"}
        return data

    @property
    def publish_timeout_s(self) -> float:
        """``publish_timeout_ms`` in seconds, as asyncio wants it."""
        return self.publish_timeout_ms / 1000

    @property
    def safe_url(self) -> str:
        """The URL with its password masked, for logs."""
        return mask_url_credentials(self.amqp_url)
