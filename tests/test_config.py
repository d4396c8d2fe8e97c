"""Configuration: YAML in the engine's shape, env overrides, one clear line on errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.adapters.rabbitmq.settings import RabbitMQSettings
from app.adapters.redis.settings import RedisSettings
from app.config import load_settings
from app.core.errors import ConfigError

QUEUE_MODULE = "modules:\n  - class: modules::queue::QueueModule\n    config:\n"
ENGINE_CONFIG = """
modules:
  - class: modules::queue::QueueModule
    config:
      adapter:
        class: modules::queue::RedisAdapter
        config:
          redis_url: redis://localhost:6379
      auth:
        api_keys:
          - {key: change-me-123, scopes: [admin]}
      delivery: {allow_private_networks: false, allowed_hosts: [hooks.internal, 10.0.0.0/8]}
      limits: {max_body_bytes: 2048, max_batch: 10}
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return str(path)


def test_engine_shaped_yaml(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ENGINE_CONFIG))
    assert settings.adapter.kind == "redis"
    assert settings.adapter.config == RedisSettings(redis_url="redis://localhost:6379")
    assert settings.limits.max_batch == 10
    assert settings.delivery.allow_private_networks is False
    assert [k.key for k in settings.all_api_keys()] == ["change-me-123"]


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOKLINE_ADAPTER__CLASS", "modules::queue::RabbitMQAdapter")
    monkeypatch.setenv("HOOKLINE_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    monkeypatch.setenv("HOOKLINE_LIMITS__MAX_BATCH", "7")
    monkeypatch.setenv("HOOKLINE_API_KEYS", "key-one-123:publish,key-two-456:dlq+subscriptions")
    settings = load_settings(write(tmp_path, ENGINE_CONFIG))
    assert settings.adapter.kind == "rabbitmq"
    assert isinstance(settings.adapter.config, RabbitMQSettings)
    assert settings.adapter.config.amqp_url == "amqp://guest:guest@127.0.0.1:5672/"
    assert settings.limits.max_batch == 7
    keys = {k.key: k.scopes for k in settings.all_api_keys()}
    assert keys["key-one-123"] == ["publish"]
    assert keys["key-two-456"] == ["dlq", "subscriptions"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("modules: [", "not valid YAML"),
        (
            QUEUE_MODULE + "      adapter: {class: Nope}",
            "adapter.class",
        ),
        (
            QUEUE_MODULE + "      adapter: {class: redis, config: {cluster: maybe}}",
            "adapter.config.cluster",
        ),
        (
            QUEUE_MODULE + "      adapter: {class: builtin, config: {max_messages: 0}}",
            "adapter.config.max_messages",
        ),
        (
            QUEUE_MODULE + "      limits: {max_batch: -1}",
            "limits.max_batch",
        ),
        (
            "modules:\n  - class: modules::queue::QueueModule\n    config:\n      limitz: {}",
            "limitz",
        ),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_settings(write(tmp_path, text))


def test_missing_explicit_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_settings(str(tmp_path / "absent.yaml"))


def test_cli_prints_one_line_without_a_traceback(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "modules:\n  - class: modules::queue::QueueModule\n    config:\n"
        "      subscriptions:\n        - {id: x, topic: 'bad topic', url: 'http://a/b'}\n",
    )
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve", "--config", path, "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("hookline: config error:")
    assert "subscriptions[0].topic" in lines[0]
    assert "Traceback" not in result.stderr


def test_builtin_refuses_several_workers(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "app.cli",
            "serve",
            "--workers",
            "2",
            "--config",
            write(tmp_path, "modules: []\n"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "--workers > 1 needs a shared backend" in result.stderr
