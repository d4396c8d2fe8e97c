"""Bodies of subscriptions: what may be sent (with the engine's metadata) and what is shown."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from app.api.schemas.common import (
    DAY_MS,
    DEAD_LETTER_TOPIC_RULES,
    ID_PATTERN,
    MAX_SUBSCRIPTION_HEADERS,
    MAX_URL_LENGTH,
    SUBSCRIPTION_HEADERS_SCHEMA,
    URL_PATTERN,
    Int,
    Jitter,
    MaxDelayMs,
    MaxInFlight,
    MaxRetries,
    RetryDelayMs,
    Strict,
    TimeoutMs,
    check_headers,
    find_lone_surrogate,
    whole_number,
)
from app.core.signing import DEFAULT_ROTATION_GRACE_MS, MAX_ROTATION_GRACE_MS, is_valid_secret
from app.core.topics import TOPIC_PATTERN


class RetryIn(Strict):
    """Retry policy; every field optional (defaults, then the engine's metadata, fill in)."""

    max_retries: MaxRetries | None = Field(None, description="Retries after the first try.")
    retry_delay_ms: RetryDelayMs | None = None
    backoff: Literal["exponential", "fixed"] | None = None
    max_delay_ms: MaxDelayMs | None = None
    jitter: Jitter | None = None


class QueueInfrastructure(RetryIn):
    """The engine's ``metadata.infrastructure.queue`` block: every ``retry`` field, plus
    ``dead_letter_topic``; an unknown key is refused, so a typo never goes unnoticed.
    """

    dead_letter_topic: str | None = Field(
        None, pattern=TOPIC_PATTERN, description=DEAD_LETTER_TOPIC_RULES
    )


class Infrastructure(BaseModel):
    """``metadata.infrastructure``: ``queue`` is read by hookline, other keys kept as sent."""

    model_config = ConfigDict(extra="allow", strict=True)

    queue: QueueInfrastructure | None = None


class SubscriptionMetadata(BaseModel):
    """Free-form metadata; only ``infrastructure.queue`` has a meaning (the engine's)."""

    model_config = ConfigDict(extra="allow", strict=True)

    infrastructure: Infrastructure | None = None


class AutoPauseIn(Strict):
    """``auto_pause``: pause by itself when the endpoint keeps failing (both conditions)."""

    after_consecutive_failures: Annotated[
        int | None, Field(ge=1, le=1_000_000), BeforeValidator(whole_number)
    ] = Field(100, description="Failed attempts in a row; null: not required.")
    after_failing_for_ms: Annotated[
        int | None, Field(ge=0, le=30 * DAY_MS), BeforeValidator(whole_number)
    ] = Field(600_000, description="Failing for at least this long (ms); null: not required.")


class AutoPauseOut(BaseModel):
    """The automatic pause policy in force (null: never pauses by itself)."""

    after_consecutive_failures: int | None
    after_failing_for_ms: int | None


class RateLimitIn(Strict):
    """``rate_limit``: a token bucket capping attempts (retries included)."""

    per_second: Annotated[float, Field(gt=0, le=100_000), BeforeValidator(whole_number)] = Field(
        description="Attempts per second on average (fractions allowed: 0.5 = one per 2 s)."
    )
    burst: Annotated[int, Field(ge=1, le=100_000), BeforeValidator(whole_number)] = Field(
        1, description="Attempts that may start at once after a quiet spell."
    )


class RateLimitOut(BaseModel):
    """The rate limit in force."""

    per_second: float
    burst: int


class ConcurrencyOut(BaseModel):
    """How many attempts may be on the wire at once."""

    mode: Literal["fixed", "auto"]
    window: int | None = Field(
        description="`auto`: this instance's current AIMD window (null when this instance "
        "runs no delivery loop for it, e.g. paused); `fixed`: `max_in_flight`."
    )
    ceiling: int


class LastAttemptOut(BaseModel):
    """When an attempt ended that way, and how."""

    at: int
    status: int | None
    reason: str


class EndpointHealthOut(BaseModel):
    """How the endpoint fares, from its recent attempts (any instance's)."""

    success_rate_5m: float | None = Field(description="Share of 2xx attempts, last 5 min.")
    success_rate_1h: float | None = Field(description="Share of 2xx attempts, last hour.")
    attempts_5m: int
    attempts_1h: int
    consecutive_failures: int
    last_success: LastAttemptOut | None
    last_failure: LastAttemptOut | None
    p50_duration_ms: float | None
    p99_duration_ms: float | None


class SubscriptionFields(Strict):
    """Fields shared by create, replace and patch."""

    url: str | None = Field(
        None,
        max_length=MAX_URL_LENGTH,
        pattern=URL_PATTERN,
        description="http(s) URL that receives POSTs.",
    )
    condition: str | None = Field(
        None, max_length=4096, description="CEL over `data`, `topic`, `headers`."
    )
    retry: RetryIn | None = None
    metadata: SubscriptionMetadata | None = Field(
        None,
        description="Free-form; `infrastructure.queue` takes every `retry` field and "
        "`dead_letter_topic`, as in the engine (explicit fields win over it).",
    )
    dead_letter_topic: str | None = Field(
        None, pattern=TOPIC_PATTERN, description=DEAD_LETTER_TOPIC_RULES
    )
    timeout_ms: TimeoutMs | None = None
    max_in_flight: MaxInFlight | Literal["auto"] | None = Field(
        None,
        description='Attempts on the wire at once (default 10). `"auto"`: an AIMD window '
        "starts at 4, grows by one per window of fast successes and halves on a timeout, "
        "connection error, 5xx or 429, up to `max_in_flight_ceiling`.",
    )
    max_in_flight_ceiling: MaxInFlight | None = Field(
        None, description='The ceiling of `max_in_flight: "auto"` (default 100).'
    )
    rate_limit: RateLimitIn | None = Field(
        None,
        description="Cap on attempts per second, retries included (a token bucket). Shared "
        "by every instance on Redis; per instance elsewhere (see the README). A 429 with "
        "`Retry-After` from the receiver still wins. null: no limit.",
    )
    headers: Annotated[dict[str, str], WithJsonSchema(SUBSCRIPTION_HEADERS_SCHEMA)] | None = None
    secret: str | None = Field(
        None, description="Signing secret (`whsec_...`); generated when absent, none if null."
    )
    payload: Literal["envelope", "data"] | None = None
    ordering: Literal["none", "key"] | None = Field(
        None,
        description='`"key"`: messages sharing an `ordering_key` are delivered one at a time, '
        "in publish order; a retry holds back only its own key, a dead letter lets the key "
        'move on; messages without a key are unordered. `"none"` (default): no order.',
    )
    paused: bool | None = None
    auto_pause: AutoPauseIn | None = Field(
        None,
        description="Pause by itself after `after_consecutive_failures` failures in a row "
        "*and* `after_failing_for_ms` of failing (defaults 100 and 10 min); its messages are "
        "then parked (kept, not retried, not dead-lettered) until resume. null disables.",
    )

    @field_validator("url")
    @classmethod
    def _valid_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if len(value) > MAX_URL_LENGTH:
            raise ValueError(f"url is longer than {MAX_URL_LENGTH} characters")
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError as exc:
            raise ValueError(f"invalid url: {exc}") from exc
        if parts.scheme not in ("http", "https"):
            raise ValueError("url must use http or https")
        if not parts.hostname:
            raise ValueError("url must have a host")
        if any(c in value for c in " \r\n\t\0"):
            raise ValueError("url must not contain whitespace")
        return value

    @field_validator("headers")
    @classmethod
    def _valid_headers(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        check_headers(value, MAX_SUBSCRIPTION_HEADERS, reserved=True)
        return value

    @field_validator("secret")
    @classmethod
    def _valid_secret(cls, value: str | None) -> str | None:
        if value is not None and not is_valid_secret(value):
            raise ValueError(
                "secret must be whsec_ + base64 of 24-64 bytes, or 16-256 plain characters"
            )
        return value

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        """A lone surrogate can be stored but never rendered or sent: refuse it first."""
        where = find_lone_surrogate(data)
        if where is not None:
            raise ValueError(
                f"{where or 'body'}: contains a lone UTF-16 surrogate, which is not text"
            )
        return data


class SubscriptionIn(SubscriptionFields):
    """A new subscription (``POST /v1/subscriptions``)."""

    id: str | None = Field(None, pattern=ID_PATTERN, description="Generated when absent.")
    topic: str = Field(pattern=TOPIC_PATTERN)
    url: str = Field(
        max_length=MAX_URL_LENGTH,
        pattern=URL_PATTERN,
        description="http(s) URL that receives POSTs.",
    )

    @model_validator(mode="after")
    def _url_required(self) -> SubscriptionIn:
        if self.url is None:
            raise ValueError("url is required")
        return self


class SubscriptionReplace(SubscriptionFields):
    """A full replacement (``PUT``): absent fields go back to their defaults."""

    topic: str = Field(pattern=TOPIC_PATTERN)
    url: str = Field(max_length=MAX_URL_LENGTH, pattern=URL_PATTERN)


class SubscriptionPatch(SubscriptionFields):
    """A partial change (``PATCH``): only the fields sent change."""


class RetryOut(BaseModel):
    """The retry policy in force."""

    max_retries: int
    retry_delay_ms: int
    backoff: str
    max_delay_ms: int
    jitter: float


class SubscriptionOut(BaseModel):
    """A subscription. ``secret`` is shown in clear only when created or rotated."""

    id: str
    topic: str
    url: str
    condition: str | None
    retry: RetryOut
    dead_letter_topic: str | None
    timeout_ms: int
    max_in_flight: int | Literal["auto"]
    max_in_flight_ceiling: int | None = Field(
        None, description='The ceiling when `max_in_flight` is `"auto"`.'
    )
    rate_limit: RateLimitOut | None = None
    concurrency: ConcurrencyOut | None = None
    headers: dict[str, str]
    secret: str | None
    payload: str
    ordering: Literal["none", "key"] = "none"
    paused: bool
    metadata: dict[str, Any]
    created_at: int
    updated_at: int
    previous_secret_expires_at: int | None = Field(
        None,
        description="While a rotated-out secret still signs (epoch ms); its value is never shown.",
    )
    auto_pause: AutoPauseOut | None = None
    paused_reason: str | None = Field(
        None, description="Why it is paused: `manual`, or what tripped the automatic pause."
    )
    health: EndpointHealthOut | None = Field(
        None, description="Endpoint health (absent when `insight.enabled` is false)."
    )


class SubscriptionList(BaseModel):
    """Subscriptions, optionally of one topic."""

    subscriptions: list[SubscriptionOut]


class RotateSecretIn(Strict):
    """``POST /v1/subscriptions/{id}/rotate-secret`` (the body is optional)."""

    grace_ms: Int = Field(
        DEFAULT_ROTATION_GRACE_MS,
        ge=0,
        le=MAX_ROTATION_GRACE_MS,
        description="How long the replaced secret keeps signing too (ms); 0 ends it at once.",
    )
