"""Request and response bodies of the HTTP API (they are also the OpenAPI spec)."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from app.core.signing import DEFAULT_ROTATION_GRACE_MS, MAX_ROTATION_GRACE_MS, is_valid_secret
from app.core.topics import TOPIC_PATTERN
from app.core.tracing import MAX_BAGGAGE_LENGTH, is_valid_traceparent
from app.dispatch.payload import RESERVED_HEADERS

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
HEADER_NAME_PATTERN = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$"
HEADER_VALUE_PATTERN = r"^(?:[\x21-\x7e](?:[\t\x20-\x7e]*[\x21-\x7e])?)?$"
"""What a subscription header value may hold: visible ASCII, inner spaces and tabs.

Control characters never leave aiohttp, leading or trailing blanks are stripped by every
HTTP parser, and bytes above ASCII reach each receiver differently (aiohttp writes UTF-8,
most servers read Latin-1): a value outside this set is never received as it was saved.
"""
MAX_URL_LENGTH = 2048
MAX_SUBSCRIPTION_HEADERS = 32
MAX_MESSAGE_HEADERS = 32
MAX_HEADER_VALUE_LENGTH = 4096
DAY_MS = 86_400_000


def _any_case(word: str) -> str:
    """``ab`` -> ``[Aa][Bb]``: JSON Schema regexes have no case-insensitive flag."""
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in word)


SUBSCRIPTION_HEADER_NAME_PATTERN = (
    "^(?!(?:"
    + "|".join(_any_case(name) for name in sorted(RESERVED_HEADERS))
    + ")$)"
    + HEADER_NAME_PATTERN[1:]
)
"""A header name a subscription may set: a token, and none of those hookline sets itself."""

SUBSCRIPTION_HEADERS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "maxProperties": MAX_SUBSCRIPTION_HEADERS,
    "propertyNames": {"pattern": SUBSCRIPTION_HEADER_NAME_PATTERN},
    "additionalProperties": {
        "type": "string",
        "maxLength": MAX_HEADER_VALUE_LENGTH,
        "pattern": HEADER_VALUE_PATTERN,
    },
    "description": "Sent with every delivery. Names are HTTP tokens (at most 64 characters), "
    "none of those hookline sets itself (" + ", ".join(sorted(RESERVED_HEADERS)) + ", in any "
    "case); values are visible ASCII with inner spaces or tabs, at most "
    f"{MAX_HEADER_VALUE_LENGTH} characters.",
}

DEAD_LETTER_TOPIC_RULES = (
    "Where a message this subscription gives up on is also published. It must differ from "
    "`topic` (422), and must not lead back to `topic` through the `dead_letter_topic` of "
    "other subscriptions (409 `dead_letter_cycle`)."
)

Topic = str
URL_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]?://[^/?#\s]+"


def _whole_number(value: Any) -> Any:
    """JSON Schema's ``integer`` includes ``3.0``; pydantic's strict ``int`` does not."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Int = Annotated[int, BeforeValidator(_whole_number)]
"""An integer as JSON means it: ``3`` or ``3.0``, never ``true`` or ``"3"``."""

# Bounds go before the BeforeValidator: after it, pydantic can only write them into the
# spec as non-standard ``ge``/``le`` keywords instead of ``minimum``/``maximum``.
MaxRetries = Annotated[int, Field(ge=0, le=100), BeforeValidator(_whole_number)]
RetryDelayMs = Annotated[int, Field(ge=0, le=DAY_MS), BeforeValidator(_whole_number)]
MaxDelayMs = Annotated[int, Field(ge=0, le=7 * DAY_MS), BeforeValidator(_whole_number)]
Jitter = Annotated[float, Field(ge=0, le=1)]
TimeoutMs = Annotated[int, Field(ge=100, le=300_000), BeforeValidator(_whole_number)]
MaxInFlight = Annotated[int, Field(ge=1, le=1000), BeforeValidator(_whole_number)]


class Strict(BaseModel):
    """Unknown fields are an error: a typo must not be silently ignored.

    Types are strict too: ``"delay_ms": false`` or ``"max_retries": "3"`` is a 422, not a
    quiet 0 or 3, so what the spec says is exactly what the API takes.
    """

    model_config = ConfigDict(extra="forbid", strict=True)


def find_lone_surrogate(value: Any, path: str = "") -> str | None:
    r"""The dotted path of the first string (or key) holding a lone UTF-16 surrogate.

    JSON's ``"\ud800"`` parses into such a string; it cannot be encoded as UTF-8, so
    it could be stored but never rendered, logged as JSON or sent.
    """
    if isinstance(value, str):
        return path if _has_surrogate(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and _has_surrogate(key):
                return f"{path}.{key!r}".lstrip(".")
            found = find_lone_surrogate(item, f"{path}.{key}".lstrip("."))
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = find_lone_surrogate(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _check_headers(headers: dict[str, str] | None, limit: int, *, reserved: bool) -> None:
    """``reserved``: these are a subscription's headers, sent on every delivery, so they
    must not shadow hookline's own and must survive the trip to the receiver unchanged.
    """
    import re

    if not headers:
        return
    if len(headers) > limit:
        raise ValueError(f"at most {limit} headers")
    for name, value in headers.items():
        if not re.fullmatch(HEADER_NAME_PATTERN, name):
            raise ValueError(f"invalid header name {name!r}")
        if reserved and name.lower() in RESERVED_HEADERS:
            raise ValueError(f"header {name!r} is set by hookline and cannot be overridden")
        if len(value) > MAX_HEADER_VALUE_LENGTH or any(c in value for c in "\r\n\0"):
            raise ValueError(f"invalid value for header {name!r}")
        if reserved and not re.fullmatch(HEADER_VALUE_PATTERN, value):
            raise ValueError(
                f"invalid value for header {name!r}: only visible ASCII characters, with "
                "spaces or tabs between them, can be sent unchanged"
            )


# -- messages ----------------------------------------------------------------------------

ExpiresAt = (
    Annotated[int, Field(ge=0), BeforeValidator(_whole_number)]
    | Annotated[str, Field(min_length=1, max_length=64)]
)
"""A deadline: epoch milliseconds, or an RFC 3339 date-time with an offset."""

EXPIRES_AT_NOTE = (
    "Deadline: RFC 3339 date-time with an offset (`2030-01-01T00:00:00Z`) or epoch ms. No "
    "attempt starts after it and no retry is scheduled past it: the message is dead-lettered "
    "with reason `expired` instead. In the past, or before `delay_ms` ends: 422."
)
TTL_NOTE = "Deadline relative to now, in ms (instead of `expires_at`; both: 422)."
TtlMs = Annotated[int, Field(ge=1, le=365 * DAY_MS), BeforeValidator(_whole_number)]


class DeadlineFields(Strict):
    """``expires_at`` or ``ttl_ms``: when a message stops being worth delivering."""

    expires_at: ExpiresAt | None = Field(None, description=EXPIRES_AT_NOTE)
    ttl_ms: TtlMs | None = Field(None, description=TTL_NOTE)


class MessageIn(DeadlineFields):
    """One message to publish."""

    data: Any = Field(description="Any JSON value; delivered as-is.")
    delay_ms: Int = Field(0, ge=0, description="Deliver no earlier than this many ms from now.")
    headers: dict[str, str] | None = Field(
        None, description="Message attributes, visible to conditions as `headers`."
    )

    @field_validator("headers")
    @classmethod
    def _valid_headers(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        _check_headers(value, MAX_MESSAGE_HEADERS, reserved=False)
        return value


class BatchMessageIn(MessageIn):
    """One message of a batch, with its own optional idempotency key."""

    idempotency_key: str | None = Field(None, min_length=1, max_length=255)


class BatchIn(Strict):
    """Up to ``limits.max_batch`` messages, accepted all together or not at all."""

    messages: list[BatchMessageIn] = Field(min_length=1)


def _check_traceparent(value: str) -> str:
    if not is_valid_traceparent(value):
        raise ValueError(
            "not a W3C traceparent (00-<32 hex trace id>-<16 hex span id>-<2 hex flags>, "
            "lowercase, ids not all zero)"
        )
    return value


def _check_baggage(value: str) -> str:
    if any(not " " <= c <= "~" for c in value):
        raise ValueError("W3C baggage is printable ASCII (percent-encode anything else)")
    return value


BODY_TRACE_NOTE = (
    "Used when the request has no such header: a request header wins over the body field."
)

Traceparent = Annotated[
    str,
    Field(
        pattern=r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
        description="W3C trace context to continue. " + BODY_TRACE_NOTE,
        examples=["00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"],
    ),
    # After the Field: a validator placed before the constraints hides them from the spec.
    AfterValidator(_check_traceparent),
]
"""A body ``traceparent``, as the engine's messages carry it."""

Baggage = Annotated[
    str,
    Field(
        max_length=MAX_BAGGAGE_LENGTH,
        description="W3C baggage to carry with the message. " + BODY_TRACE_NOTE,
    ),
    AfterValidator(_check_baggage),
]
"""A body ``baggage``, as the engine's messages carry it."""


class EnqueueIn(DeadlineFields):
    """The engine's ``queue.enqueue`` argument: ``{topic, data, traceparent?, baggage?}``."""

    topic: str = Field(pattern=TOPIC_PATTERN)
    data: Any = None
    delay_ms: Int = Field(0, ge=0, description="Deliver no earlier than this many ms from now.")
    traceparent: Traceparent | None = None
    baggage: Baggage | None = None


class PublishOut(BaseModel):
    """The id a message got; ``duplicate`` when an idempotency key matched an earlier one."""

    id: str
    topic: str
    duplicate: bool


class BatchResultOut(BaseModel):
    """One result of a batch, in request order."""

    id: str
    duplicate: bool


class BatchOut(BaseModel):
    """Results of a batch publish."""

    results: list[BatchResultOut]


# -- subscriptions -----------------------------------------------------------------------


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
        int | None, Field(ge=1, le=1_000_000), BeforeValidator(_whole_number)
    ] = Field(100, description="Failed attempts in a row; null: not required.")
    after_failing_for_ms: Annotated[
        int | None, Field(ge=0, le=30 * DAY_MS), BeforeValidator(_whole_number)
    ] = Field(600_000, description="Failing for at least this long (ms); null: not required.")


class AutoPauseOut(BaseModel):
    """The automatic pause policy in force (null: never pauses by itself)."""

    after_consecutive_failures: int | None
    after_failing_for_ms: int | None


class RateLimitIn(Strict):
    """``rate_limit``: a token bucket capping attempts (retries included)."""

    per_second: Annotated[float, Field(gt=0, le=100_000), BeforeValidator(_whole_number)] = Field(
        description="Attempts per second on average (fractions allowed: 0.5 = one per 2 s)."
    )
    burst: Annotated[int, Field(ge=1, le=100_000), BeforeValidator(_whole_number)] = Field(
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
        _check_headers(value, MAX_SUBSCRIPTION_HEADERS, reserved=True)
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


# -- DLQ ---------------------------------------------------------------------------------


class LastErrorOut(BaseModel):
    """Why the last attempt failed."""

    reason: str
    status: int | None = None
    body_excerpt: str | None = None


class DlqEntryOut(BaseModel):
    """A dead-lettered message, with the subscription that failed it."""

    id: str
    message_id: str
    subscription_id: str
    topic: str
    data: Any
    attempts: int
    last_error: LastErrorOut
    failed_at: int
    published_at: int
    traceparent: str | None = None


class DlqListOut(BaseModel):
    """A page of DLQ entries; pass ``next_cursor`` back as ``cursor`` for the next one."""

    entries: list[DlqEntryOut]
    next_cursor: str | None


class DlqCountOut(BaseModel):
    """How many entries a topic's DLQ holds."""

    topic: str
    count: int


class RedriveIn(Strict):
    """Which entries to redrive: all, one subscription's, or these ids."""

    subscription: str | None = Field(None, pattern=ID_PATTERN)
    ids: list[str] | None = Field(None, min_length=1, max_length=10_000)


class RedriveOut(BaseModel):
    """How many entries went back to their subscription."""

    redriven: int


class PurgeOut(BaseModel):
    """How many entries were deleted."""

    purged: int


# -- topics and ops ----------------------------------------------------------------------


class SubscriptionStatsOut(BaseModel):
    """One subscription's figures on a topic."""

    id: str
    paused: bool | None = None
    backlog: int
    in_flight: int
    scheduled: int
    dlq: int


class TopicOut(BaseModel):
    """A topic with its subscriptions and what they hold."""

    topic: str
    subscriptions: list[SubscriptionStatsOut]
    backlog: int
    in_flight: int
    scheduled: int
    dlq_count: int


class TopicList(BaseModel):
    """One page of the known topics, in name order."""

    topics: list[TopicOut]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` for the next page; null on the last page."
    )


class HealthOut(BaseModel):
    """Liveness."""

    status: str


class ReadyOut(BaseModel):
    """Readiness: the backend answers."""

    status: str
    adapter: str
    auth: str
    reason: str | None = Field(None, description="Why not ready (absent when ready).")


class ErrorBody(BaseModel):
    """The body of every error: ``{"error": {code, message, details?}}``."""

    code: str
    message: str
    details: Any = None


class ErrorOut(BaseModel):
    """Every 4xx/5xx answer has this shape."""

    error: ErrorBody
