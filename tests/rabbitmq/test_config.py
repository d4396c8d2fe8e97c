"""The adapter's config block: defaults, validation naming the key, masked passwords."""

from __future__ import annotations

import pytest

from app.adapters.factory import build_adapter
from app.adapters.kit.settings import parse_settings
from app.adapters.rabbitmq import RabbitMQAdapter, RabbitMQSettings
from app.core.errors import ConfigError
from app.core.redact import mask_url_credentials


def test_defaults_and_overrides() -> None:
    config = parse_settings(
        RabbitMQSettings, {"amqp_url": "amqp://u:p@h:5672/v", "queue_type": "quorum"}
    )
    assert config.queue_type == "quorum"
    assert config.prefix == "hookline"
    assert config.publish_timeout_ms == 5000
    assert config.safe_url == "amqp://u:***@h:5672/v"
    adapter = build_adapter("modules::queue::RabbitMQAdapter", {"amqp_url": "amqp://h/"})
    assert isinstance(adapter, RabbitMQAdapter)
    assert adapter.shared_across_processes


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"queue_type": "stream"}, "queue_type"),
        ({"amqp_url": "http://h/"}, "amqp_url"),
        ({"prefix": "has space"}, "prefix"),
        ({"publish_timeout_ms": 0}, "publish_timeout_ms"),
        ({"publish_timeout_ms": "soon"}, "publish_timeout_ms"),
        ({"idempotency_retention": "forever"}, "idempotency_retention"),
        ({"queue_typo": "quorum"}, "queue_typo"),
    ],
)
def test_bad_values_name_the_key_in_one_line(raw: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_adapter("modules::queue::RabbitMQAdapter", raw)
    message = str(caught.value)
    assert message.startswith(f"adapter.config.{key}:")
    assert "\n" not in message
    assert isinstance(caught.value, ConfigError)  # `hookline serve` prints it as one line


def test_a_global_redis_url_is_not_a_typo() -> None:
    settings = parse_settings(RabbitMQSettings, {"redis_url": "redis://x", "url": "amqp://h/"})
    assert settings.amqp_url == "amqp://h/"


def test_passwords_never_reach_logs() -> None:
    assert (
        mask_url_credentials("amqps://bob:s3cret@rabbit:5671/prod")
        == "amqps://bob:***@rabbit:5671/prod"
    )
    assert mask_url_credentials("amqp://rabbit/") == "amqp://rabbit/"
