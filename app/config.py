# Over 350 lines on purpose: the settings schema, adapter union and YAML loader.
"""Settings: ``config.yaml`` in the engine's module shape, overridden by ``HOOKLINE_*`` env vars.

Validated once here, at the edge; a bad value fails at start with one line naming the key
(:class:`ConfigError`). Everything past this module receives plain validated values.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from app.adapters.builtin_settings import BuiltinSettings
from app.adapters.rabbitmq.settings import RabbitMQSettings
from app.adapters.redis.settings import RedisSettings
from app.adapters.sqlite.settings import SqliteSettings
from app.core.dead_letters import DEFAULT_MAX_DEAD_LETTER_HOPS
from app.core.errors import ConfigError, describe_validation
from app.core.insight import InsightSettings

QUEUE_MODULE = "modules::queue::QueueModule"
DEFAULT_CONFIG_PATH = "config.yaml"
SCOPES = ("publish", "subscriptions", "dlq", "admin")
Scope = Literal["publish", "subscriptions", "dlq", "admin"]

ADAPTER_CLASSES = {
    "modules::queue::BuiltinQueueAdapter": "builtin",
    "modules::queue::RedisAdapter": "redis",
    "modules::queue::RabbitMQAdapter": "rabbitmq",
    "modules::queue::SqliteAdapter": "sqlite",
}
"""Engine class names and the short names they map to (the short names work too)."""
DEFAULT_ADAPTER_CLASS = "modules::queue::BuiltinQueueAdapter"
UNKNOWN_ADAPTER = "unknown_adapter_class"


class _AdapterChoice(BaseModel):
    """``adapter:`` - which backend (``class``), and its own ``config:`` block."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    kind: ClassVar[str]
    """``builtin``, ``redis`` or ``rabbitmq``: the tag of the union below."""
    class_: str = Field(DEFAULT_ADAPTER_CLASS, alias="class")


class BuiltinAdapterSettings(_AdapterChoice):
    """``class: modules::queue::BuiltinQueueAdapter`` (or ``builtin``): in memory."""

    kind = "builtin"
    config: BuiltinSettings = Field(default_factory=BuiltinSettings)


class RedisAdapterSettings(_AdapterChoice):
    """``class: modules::queue::RedisAdapter`` (or ``redis``)."""

    kind = "redis"
    config: RedisSettings = Field(default_factory=RedisSettings)


class RabbitMQAdapterSettings(_AdapterChoice):
    """``class: modules::queue::RabbitMQAdapter`` (or ``rabbitmq``)."""

    kind = "rabbitmq"
    config: RabbitMQSettings = Field(default_factory=RabbitMQSettings)


class SqliteAdapterSettings(_AdapterChoice):
    """``class: modules::queue::SqliteAdapter`` (or ``sqlite``): durable, embedded."""

    kind = "sqlite"
    config: SqliteSettings = Field(default_factory=SqliteSettings)


def adapter_kind(value: Any) -> str | None:
    """The union's tag of an ``adapter:`` value: its class's short name (None if unknown).

    No ``class`` means the builtin adapter, as the engine's default.
    """
    if isinstance(value, dict):
        name = value.get("class", value.get("class_", DEFAULT_ADAPTER_CLASS))
    else:
        name = getattr(value, "class_", None)
    if name in ADAPTER_CLASSES.values():
        return str(name)
    return ADAPTER_CLASSES.get(name) if isinstance(name, str) else None


AdapterSettings = Annotated[
    Annotated[BuiltinAdapterSettings, Tag("builtin")]
    | Annotated[RedisAdapterSettings, Tag("redis")]
    | Annotated[RabbitMQAdapterSettings, Tag("rabbitmq")]
    | Annotated[SqliteAdapterSettings, Tag("sqlite")],
    Discriminator(
        adapter_kind,
        custom_error_type=UNKNOWN_ADAPTER,
        custom_error_message="unknown adapter class",
    ),
]
"""The adapter, typed by its class: each member carries its adapter's frozen settings.

To add an adapter: its settings dataclass (``app/adapters/<name>/settings.py``), a member
here (a ``_AdapterChoice`` subclass with ``kind`` and ``config``, tagged with ``kind``),
its class name in :data:`ADAPTER_CLASSES`, and its constructor in
:func:`app.adapters.factory.build`.
"""
_ADAPTER_SETTINGS: TypeAdapter[AdapterSettings] = TypeAdapter(AdapterSettings)


def adapter_settings(class_name: str, config: dict[str, Any]) -> AdapterSettings:
    """Validate one ``adapter:`` block as config.yaml would; :class:`ConfigError` if bad."""
    try:
        return _ADAPTER_SETTINGS.validate_python({"class": class_name, "config": config})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, None, ("adapter",))) from exc


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


class InsightConfig(BaseModel):
    """``insight:`` - the attempt log behind ``GET /v1/messages/{id}`` and endpoint health."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    retention_ms: int = Field(24 * 3600 * 1000, ge=1000, le=90 * 24 * 3600 * 1000)
    max_attempts_per_message: int = Field(20, ge=1, le=1000)
    max_attempts_per_subscription: int = Field(10_000, ge=10, le=1_000_000)
    max_messages: int = Field(100_000, ge=10, le=100_000_000)
    flush_interval_ms: int = Field(5, ge=1, le=10_000)

    def to_settings(self) -> InsightSettings:
        """The plain settings the core and the stores take."""
        return InsightSettings(**self.model_dump())


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

    adapter: AdapterSettings = Field(default_factory=BuiltinAdapterSettings)
    subscriptions: list[dict[str, Any]] = Field(default_factory=list)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)
    insight: InsightConfig = Field(default_factory=InsightConfig)
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

    @model_validator(mode="before")
    @classmethod
    def _url_shortcuts(cls, data: Any) -> Any:
        """``HOOKLINE_REDIS_URL``/``HOOKLINE_AMQP_URL`` become the adapter's URL when it is
        that kind (and mean nothing otherwise).
        """
        if not isinstance(data, dict) or not isinstance(data.get("adapter", {}), dict):
            return data
        adapter = dict(data.get("adapter", {}))
        for key, kind in (("redis_url", "redis"), ("amqp_url", "rabbitmq")):
            if data.get(key) and adapter_kind(adapter) == kind:
                adapter["config"] = {**(adapter.get("config") or {}), key: data[key]}
        return {**data, "adapter": adapter}

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


MODULE_KEYS = ("class", "config")


def _find_queue_module(modules: list[Any], path: str) -> tuple[int, dict[str, Any]] | None:
    """The one QueueModule entry of ``modules:`` and its index (None when the list is empty)."""
    found: list[tuple[int, dict[str, Any]]] = []
    for index, module in enumerate(modules):
        if not isinstance(module, dict) or "class" not in module:
            raise ConfigError(f"{path}: modules[{index}]: expected a mapping with class:")
        if module["class"] == QUEUE_MODULE:
            found.append((index, module))
    if not found and modules:
        classes = ", ".join(str(m["class"]) for m in modules)
        raise ConfigError(f"{path}: modules: no {QUEUE_MODULE} entry (found: {classes})")
    if len(found) > 1:
        raise ConfigError(f"{path}: modules[{found[1][0]}]: a second {QUEUE_MODULE}")
    return found[0] if found else None


def _queue_module_config(raw: Any, path: str) -> dict[str, Any]:
    """Find the QueueModule's ``config:`` in the engine-shaped document.

    Strict on purpose: a key hookline does not read is an error, not a default. YAML that
    lost its indentation (``adapter:`` at the top level, a QueueModule with no ``config:``)
    would otherwise run the in-memory adapter while its author believes Redis is configured.
    """
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    unknown = sorted(str(key) for key in raw if key != "modules")
    if unknown:
        raise ConfigError(
            f"{path}: {unknown[0]}: unknown top-level key (only modules: is read; the queue's "
            f"settings go under the {QUEUE_MODULE} entry's config:)"
        )
    modules = raw.get("modules")
    if modules is None:
        return {}
    if not isinstance(modules, list):
        raise ConfigError(f"{path}: modules: expected a list")
    found = _find_queue_module(modules, path)
    if found is None:
        return {}
    index, module = found
    extra = sorted(str(key) for key in module if key not in MODULE_KEYS)
    if extra:
        raise ConfigError(
            f"{path}: modules[{index}].{extra[0]}: unknown key (known: class, config; the "
            "queue's settings go under config:)"
        )
    config = module.get("config")
    if config is None:
        raise ConfigError(
            f"{path}: modules[{index}].config: missing; the {QUEUE_MODULE} needs its config: "
            "(write config: {} for every default)"
        )
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: modules[{index}].config: expected a mapping")
    return config


ENV_SHORTCUTS = {
    "redis_url": "adapter.config.redis_url",
    "amqp_url": "adapter.config.amqp_url",
    "api_keys": "auth.api_keys",
}
"""Settings fields that exist for their ``HOOKLINE_*`` environment shortcut only."""


def _check_module_keys(config: dict[str, Any], path: str) -> None:
    """Refuse a key of the QueueModule's ``config:`` that hookline does not read.

    ``redis_url`` there would select nothing while the adapter stays builtin, so the
    environment-only shortcuts are refused in the file with the place they belong.
    """
    for key in sorted(config, key=str):
        if key in ENV_SHORTCUTS:
            raise ConfigError(
                f"{path}: {key}: not read here; write it as {ENV_SHORTCUTS[key]} "
                f"(or set HOOKLINE_{str(key).upper()})"
            )
        if key not in Settings.model_fields:
            known = ", ".join(sorted(set(Settings.model_fields) - set(ENV_SHORTCUTS)))
            raise ConfigError(f"{path}: {key}: unknown key (known: {known})")


def _describe(error: ValidationError, path: str | None, under: tuple[str, ...] = ()) -> str:
    """One line naming the key; the adapter union's tag is not part of the key's path."""
    first = error.errors()[0]
    loc = (*under, *first["loc"])
    if first["type"] == UNKNOWN_ADAPTER:
        known = ", ".join(ADAPTER_CLASSES)
        found = first["input"].get("class") if isinstance(first["input"], dict) else None
        line = f"adapter.class: unknown adapter class {found!r} (known: {known})"
        return f"{path}: {line}" if path else line
    if loc[:1] == ("adapter",) and loc[1:2] and loc[1] in ADAPTER_CLASSES.values():
        loc = (loc[0], *loc[2:])
    return describe_validation(error, path, loc)


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
    _check_module_keys(file_config, str(path))
    try:
        settings = Settings(**file_config)
        settings.all_api_keys()
    except ValidationError as exc:
        raise ConfigError(_describe(exc, str(path))) from exc
    return settings
