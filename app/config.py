"""Settings: ``config.yaml`` in the engine's module shape, overridden by ``HOOKLINE_*`` env vars.

Validated once here, at the edge; a bad value fails at start with one line naming the key
(:class:`ConfigError`). Everything past this module receives plain validated values.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from app.adapters.factory import adapter_kind
from app.core.dead_letters import DEFAULT_MAX_DEAD_LETTER_HOPS

QUEUE_MODULE = "modules::queue::QueueModule"
DEFAULT_CONFIG_PATH = "config.yaml"
SCOPES = ("publish", "subscriptions", "dlq", "admin")
Scope = Literal["publish", "subscriptions", "dlq", "admin"]


class ConfigError(Exception):
    """The configuration is invalid; the message is one line that names the key."""


class AdapterSettings(BaseModel):
    """``adapter:`` - which backend, and its own ``config:`` block."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    class_: str = Field("modules::queue::BuiltinQueueAdapter", alias="class")
    config: dict[str, Any] = Field(default_factory=dict)

    @field_validator("class_")
    @classmethod
    def _known_class(cls, value: str) -> str:
        adapter_kind(value)
        return value

    @property
    def kind(self) -> str:
        """``builtin``, ``redis`` or ``rabbitmq``."""
        return adapter_kind(self.class_)


class ApiKey(BaseModel):
    """One API key and what it may do."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=8)
    scopes: list[Scope] = Field(default_factory=lambda: list[Scope](["admin"]))


class AuthSettings(BaseModel):
    """``auth:`` - with no keys the API is open (and says so loudly at start)."""

    model_config = ConfigDict(extra="forbid")

    api_keys: list[ApiKey] = Field(default_factory=list)
    protect_metrics: bool = False
    protect_docs: bool = False


class DeliverySettings(BaseModel):
    """``delivery:`` - where webhooks may go and how the sender behaves."""

    model_config = ConfigDict(extra="forbid")

    allow_private_networks: bool = True
    allowed_hosts: list[str] = Field(default_factory=list)
    max_connections: int = Field(1000, ge=1, le=100_000)
    max_connections_per_destination: int = Field(100, ge=1, le=100_000)
    max_response_bytes: int = Field(64 * 1024, ge=0, le=16 * 1024 * 1024)
    shutdown_grace_ms: int = Field(10_000, ge=0, le=600_000)
    max_dead_letter_hops: int = Field(DEFAULT_MAX_DEAD_LETTER_HOPS, ge=1, le=100)
    """How many dead-letter topics one message may pass through; past that a dead letter
    stays in its DLQ (reason ``dead_letter_hop_limit``), so no cycle can loop forever."""


class LimitSettings(BaseModel):
    """``limits:`` - what one request may carry."""

    model_config = ConfigDict(extra="forbid")

    max_body_bytes: int = Field(1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    max_batch: int = Field(1000, ge=1, le=10_000)
    max_delay_ms: int = Field(7 * 24 * 3600 * 1000, ge=0)
    idempotency_ttl_ms: int = Field(24 * 3600 * 1000, ge=1000)
    max_headers: int = Field(100, ge=16, le=1000)
    max_header_bytes: int = Field(32 * 1024, ge=4096, le=1024 * 1024)


class ObservabilitySettings(BaseModel):
    """``observability:`` - bounds on what metrics and probes may cost."""

    model_config = ConfigDict(extra="forbid")

    max_label_values: int = Field(1000, ge=1, le=1_000_000)
    readiness_timeout_ms: int = Field(1000, ge=10, le=60_000)


class LoggingSettings(BaseModel):
    """``logging:`` - level and format."""

    model_config = ConfigDict(extra="forbid")

    level: Literal["debug", "info", "warning", "error"] = "info"
    json_format: bool = Field(False, alias="json")


class Settings(BaseSettings):
    """Everything hookline is configured with.

    Sources, strongest first: constructor arguments, ``HOOKLINE_*`` environment variables
    (nested with ``__``, e.g. ``HOOKLINE_ADAPTER__CLASS``), the QueueModule block of
    ``config.yaml``. Shortcuts: ``HOOKLINE_REDIS_URL``, ``HOOKLINE_AMQP_URL``,
    ``HOOKLINE_API_KEYS="key1:admin,key2:publish"``.
    """

    model_config = SettingsConfigDict(
        env_prefix="HOOKLINE_", env_nested_delimiter="__", extra="ignore"
    )

    adapter: AdapterSettings = Field(default_factory=AdapterSettings)
    subscriptions: list[dict[str, Any]] = Field(default_factory=list)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)
    redis_url: str | None = None
    amqp_url: str | None = None
    api_keys: str | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],  # noqa: ARG003
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003
        file_secret_settings: PydanticBaseSettingsSource,  # noqa: ARG003
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment beats the YAML file (passed in as init arguments by :func:`load`)."""
        return env_settings, init_settings

    def effective_adapter_config(self) -> dict[str, Any]:
        """The adapter's ``config:`` with the ``HOOKLINE_REDIS_URL``/``AMQP_URL`` shortcuts."""
        config = dict(self.adapter.config)
        if self.redis_url and self.adapter.kind == "redis":
            config["redis_url"] = self.redis_url
        if self.amqp_url and self.adapter.kind == "rabbitmq":
            config["amqp_url"] = self.amqp_url
        return config

    def all_api_keys(self) -> list[ApiKey]:
        """Keys from config.yaml plus ``HOOKLINE_API_KEYS``."""
        keys = list(self.auth.api_keys)
        for item in (self.api_keys or "").split(","):
            if not item.strip():
                continue
            key, _, scopes = item.strip().partition(":")
            keys.append(
                ApiKey.model_validate(
                    {"key": key, "scopes": scopes.split("+") if scopes else ["admin"]}
                )
            )
        return keys


def _queue_module_config(raw: Any, path: str) -> dict[str, Any]:
    """Find the QueueModule's ``config:`` in the engine-shaped document."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    modules = raw.get("modules")
    if modules is None:
        return {}
    if not isinstance(modules, list):
        raise ConfigError(f"{path}: modules: expected a list")
    for index, module in enumerate(modules):
        if isinstance(module, dict) and module.get("class") == QUEUE_MODULE:
            config = module.get("config") or {}
            if not isinstance(config, dict):
                raise ConfigError(f"{path}: modules[{index}].config: expected a mapping")
            return config
    return {}


def _describe(error: ValidationError, path: str) -> str:
    first = error.errors()[0]
    loc = ".".join(str(part) for part in first["loc"]) or "(root)"
    more = len(error.errors()) - 1
    suffix = f" (and {more} more)" if more else ""
    return f"{path}: {loc}: {first['msg']}{suffix}"


def load_settings(config_path: str | None = None) -> Settings:
    """Read ``config_path`` (or ``HOOKLINE_CONFIG``, or ``./config.yaml`` if present) + env.

    Raises :class:`ConfigError` with one line naming the offending key.
    """
    explicit = config_path or os.environ.get("HOOKLINE_CONFIG")
    path = Path(explicit or DEFAULT_CONFIG_PATH)
    file_config: dict[str, Any] = {}
    if path.exists():
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}".splitlines()[0]) from exc
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
        file_config = _queue_module_config(raw, str(path))
    elif explicit:
        raise ConfigError(f"{path}: no such file")
    unknown = sorted(set(file_config) - set(Settings.model_fields))
    if unknown:
        known = ", ".join(sorted(Settings.model_fields))
        raise ConfigError(f"{path}: {unknown[0]}: unknown key (known: {known})")
    try:
        settings = Settings(**file_config)
        settings.all_api_keys()
    except ValidationError as exc:
        raise ConfigError(_describe(exc, str(path))) from exc
    return settings
