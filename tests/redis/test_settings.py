"""The Redis adapter's config block and key layout (no Redis needed)."""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from app.adapters.kit.settings import parse_settings
from app.adapters.redis.names import NameSpace
from app.adapters.redis.settings import RedisSettings
from app.config import adapter_settings
from app.core.errors import ConfigError
from app.core.redact import mask_url_credentials


def test_defaults_and_values_from_yaml_or_env_strings() -> None:
    assert parse_settings(RedisSettings, {}) == RedisSettings()
    settings = parse_settings(
        RedisSettings,
        {"redis_url": "redis://h:1/2", "cluster": "true", "visibility_timeout_ms": "60000"},
    )
    assert settings.cluster is True
    assert settings.visibility_timeout_ms == 60_000


@pytest.mark.parametrize(
    ("config", "names"),
    [
        ({"redis_ur": "redis://x"}, "redis_ur"),
        ({"cluster": "maybe"}, "cluster"),
        ({"visibility_timeout_ms": "soon"}, "visibility_timeout_ms"),
        ({"visibility_timeout_ms": 0}, "visibility_timeout_ms"),
        ({"visibility_timeout_ms": True}, "visibility_timeout_ms"),
        ({"redis_url": "http://x"}, "redis_url"),
        ({"key_prefix": "has space"}, "key_prefix"),
    ],
)
def test_a_bad_key_fails_with_one_line_naming_it(config: dict[str, object], names: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_settings(RedisSettings, config)
    message = str(raised.value)
    assert message.startswith(f"adapter.config.{names}:")
    assert "\n" not in message
    with pytest.raises(ConfigError, match=f"^adapter.config.{names}:"):
        adapter_settings("modules::queue::RedisAdapter", config)


def test_visibility_never_undercuts_the_delivery_timeout() -> None:
    settings = RedisSettings(visibility_timeout_ms=30_000, lease_margin_ms=5_000)
    assert settings.visibility_ms(10_000) == 30_000
    assert settings.visibility_ms(60_000) == 65_000


def test_every_key_of_a_topic_shares_one_slot() -> None:
    tk = NameSpace("hookline").topic("orders.created")
    keys = [tk.stream, tk.subs, tk.origins, tk.queue("s1"), tk.schedule("s1"), tk.dlq]
    keys += [tk.dlq_all, tk.dlq_sub("s1"), tk.idempotency("k{x}")]
    assert len({key_slot(k.encode()) for k in keys}) == 1
    assert tk.stream == "hookline:{orders.created}:stream"
    with pytest.raises(ValueError):
        NameSpace("hookline").topic("bad{topic}")


def test_passwords_never_reach_the_logs() -> None:
    assert mask_url_credentials("redis://:s3cret@host:6379/0") == "redis://:***@host:6379/0"
    assert mask_url_credentials("redis://host:6379") == "redis://host:6379"
