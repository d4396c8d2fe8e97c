"""The RabbitMQ adapter's settings: validated once, from the ``config:`` block of config.yaml."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from app.core.errors import ConfigError
from app.core.redact import mask_url_credentials

QueueType = Literal["classic", "quorum"]

DEFAULT_URL = "amqp://guest:guest@localhost:5672/"
_PREFIX_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
_AGE_RE = re.compile(r"^[0-9]+[YMDhms]$")


class RabbitMQConfigError(ConfigError, ValueError):
    """A bad ``adapter.config`` value; the message names the key.

    A :class:`app.core.errors.ConfigError`, so ``hookline serve`` stops with that one line.
    """


@dataclass(frozen=True, slots=True)
class RabbitMQSettings:
    """Everything the adapter needs to know, as plain values.

    ``prefix`` namespaces every exchange, queue and stream, so several hookline
    deployments (or test runs) can share one vhost without seeing each other.
    """

    amqp_url: str = DEFAULT_URL
    prefix: str = "hookline"
    queue_type: QueueType = "classic"
    publish_timeout_ms: int = 5_000
    connect_timeout_ms: int = 5_000
    reconnect_max_ms: int = 5_000
    idempotency_retention: str = "7D"

    @property
    def publish_timeout_s(self) -> float:
        """``publish_timeout_ms`` in seconds, as asyncio wants it."""
        return self.publish_timeout_ms / 1000

    @property
    def safe_url(self) -> str:
        """The URL with its password masked, for logs."""
        return mask_url_credentials(self.amqp_url)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> RabbitMQSettings:
        """Validate the ``config:`` mapping; unknown keys are refused so typos do not pass."""
        known = {
            "amqp_url",
            "url",
            "prefix",
            "queue_type",
            "publish_timeout_ms",
            "connect_timeout_ms",
            "reconnect_max_ms",
            "idempotency_retention",
        }
        # HOOKLINE_REDIS_URL may be set for the whole environment: not a RabbitMQ typo.
        unknown = sorted(set(raw) - known - {"redis_url"})
        if unknown:
            raise RabbitMQConfigError(
                f"adapter.config.{unknown[0]}: unknown key for RabbitMQAdapter "
                f"(known: {', '.join(sorted(known - {'url'}))})"
            )
        url = str(raw.get("amqp_url") or raw.get("url") or DEFAULT_URL)
        if urlsplit(url).scheme not in {"amqp", "amqps"}:
            raise RabbitMQConfigError(
                "adapter.config.amqp_url: expected amqp:// or amqps://, "
                f"got {mask_url_credentials(url)!r}"
            )
        prefix = str(raw.get("prefix", "hookline"))
        if not _PREFIX_RE.fullmatch(prefix):
            raise RabbitMQConfigError(
                "adapter.config.prefix: 1-64 characters of letters, digits, '.', '_', ':' or '-'"
            )
        queue_type = str(raw.get("queue_type", "classic"))
        if queue_type not in {"classic", "quorum"}:
            raise RabbitMQConfigError(
                f"adapter.config.queue_type: must be 'classic' or 'quorum', got {queue_type!r}"
            )
        retention = str(raw.get("idempotency_retention", "7D"))
        if not _AGE_RE.fullmatch(retention):
            raise RabbitMQConfigError(
                "adapter.config.idempotency_retention: a RabbitMQ max-age such as 7D, 12h or 90m"
            )
        return cls(
            amqp_url=url,
            prefix=prefix,
            queue_type="quorum" if queue_type == "quorum" else "classic",
            publish_timeout_ms=_positive_int(raw, "publish_timeout_ms", 5_000),
            connect_timeout_ms=_positive_int(raw, "connect_timeout_ms", 5_000),
            reconnect_max_ms=_positive_int(raw, "reconnect_max_ms", 5_000),
            idempotency_retention=retention,
        )


def _positive_int(raw: Mapping[str, Any], key: str, default: int) -> int:
    value = raw.get(key, default)
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number <= 0 or isinstance(value, bool):
        raise RabbitMQConfigError(
            f"adapter.config.{key}: must be a positive integer, got {value!r}"
        )
    return number
