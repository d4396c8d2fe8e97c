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
    field_validator,
    model_validator,
)

from app.core.signing import is_valid_secret
from app.core.topics import TOPIC_PATTERN
from app.core.tracing import MAX_BAGGAGE_LENGTH, is_valid_traceparent
from app.dispatch.payload import RESERVED_HEADERS

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
HEADER_NAME_PATTERN = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$"
MAX_URL_LENGTH = 2048
MAX_SUBSCRIPTION_HEADERS = 32
MAX_MESSAGE_HEADERS = 32
DAY_MS = 86_400_000

Topic = str
URL_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]?://[^/?#\s]+"


def _whole_number(value: Any) -> Any:
    """JSON Schema's ``integer`` includes ``3.0``; pydantic's strict ``int`` does not."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Int = Annotated[int, BeforeValidator(_whole_number)]
"""An integer as JSON means it: ``3`` or ``3.0``, never ``true`` or ``"3"``."""


class Strict(BaseModel):
    """Unknown fields are an error: a typo must not be silently ignored.

    Types are strict too: ``"delay_ms": false`` or ``"max_retries": "3"`` is a 422, not a
    quiet 0 or 3, so what the spec says is exactly what the API takes.
    """

    model_config = ConfigDict(extra="forbid", strict=True)


def _check_headers(headers: dict[str, str] | None, limit: int, *, reserved: bool) -> None:
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
        if len(value) > 4096 or any(c in value for c in "\r\n\0"):
            raise ValueError(f"invalid value for header {name!r}")


# -- messages ----------------------------------------------------------------------------


class MessageIn(Strict):
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
    AfterValidator(_check_traceparent),
    Field(
        pattern=r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
        description="W3C trace context to continue. " + BODY_TRACE_NOTE,
        examples=["00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"],
    ),
]
"""A body ``traceparent``, as the engine's messages carry it."""

Baggage = Annotated[
    str,
    AfterValidator(_check_baggage),
    Field(
        max_length=MAX_BAGGAGE_LENGTH,
        description="W3C baggage to carry with the message. " + BODY_TRACE_NOTE,
    ),
]
"""A body ``baggage``, as the engine's messages carry it."""


class EnqueueIn(Strict):
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

    max_retries: Int | None = Field(None, ge=0, le=100, description="Retries after the first try.")
    retry_delay_ms: Int | None = Field(None, ge=0, le=DAY_MS)
    backoff: Literal["exponential", "fixed"] | None = None
    max_delay_ms: Int | None = Field(None, ge=0, le=7 * DAY_MS)
    jitter: float | None = Field(None, ge=0, le=1)


class QueueInfrastructure(BaseModel):
    """The engine's ``metadata.infrastructure.queue`` block."""

    model_config = ConfigDict(extra="allow", strict=True)

    max_retries: Int | None = Field(None, ge=0, le=100)
    retry_delay_ms: Int | None = Field(None, ge=0, le=DAY_MS)
    dead_letter_topic: str | None = Field(None, pattern=TOPIC_PATTERN)


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
    metadata: dict[str, Any] | None = Field(
        None,
        description="Free-form; `infrastructure.queue.{max_retries, retry_delay_ms, "
        "dead_letter_topic}` is read as in the engine.",
    )
    dead_letter_topic: str | None = Field(None, pattern=TOPIC_PATTERN)
    timeout_ms: Int | None = Field(None, ge=100, le=300_000)
    max_in_flight: Int | None = Field(None, ge=1, le=1000)
    headers: dict[str, str] | None = None
    secret: str | None = Field(
        None, description="Signing secret (`whsec_...`); generated when absent, none if null."
    )
    payload: Literal["envelope", "data"] | None = None
    paused: bool | None = None

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

    @field_validator("metadata")
    @classmethod
    def _valid_metadata(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        queue = ((value or {}).get("infrastructure") or {}).get("queue")
        if queue is not None:
            QueueInfrastructure.model_validate(queue)
        return value


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
    max_in_flight: int
    headers: dict[str, str]
    secret: str | None
    payload: str
    paused: bool
    metadata: dict[str, Any]
    created_at: int
    updated_at: int


class SubscriptionList(BaseModel):
    """Subscriptions, optionally of one topic."""

    subscriptions: list[SubscriptionOut]


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
    """Every known topic."""

    topics: list[TopicOut]


class HealthOut(BaseModel):
    """Liveness."""

    status: str


class ReadyOut(BaseModel):
    """Readiness: the backend answers."""

    status: str
    adapter: str
    auth: str


class ErrorBody(BaseModel):
    """The body of every error: ``{"error": {code, message, details?}}``."""

    code: str
    message: str
    details: Any = None


class ErrorOut(BaseModel):
    """Every 4xx/5xx answer has this shape."""

    error: ErrorBody
