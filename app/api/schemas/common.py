"""Shared pieces of the API's bodies: patterns, bounded number types, strictness, headers
and trace context.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
)

from app.core.headers import RESERVED_HEADERS
from app.core.tracing import MAX_BAGGAGE_LENGTH, is_valid_traceparent

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
HEADER_NAME_PATTERN = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$"
HEADER_VALUE_PATTERN = r"^(?:[\x21-\x7e](?:[\t\x20-\x7e]*[\x21-\x7e])?)?$"
"""What a subscription header value may hold: visible ASCII, inner spaces and tabs.

Control characters never leave the HTTP client, leading or trailing blanks are stripped by
every HTTP parser, and bytes above ASCII reach each receiver differently (clients write
UTF-8, most servers read Latin-1): a value outside this set is never received as saved.
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


def whole_number(value: Any) -> Any:
    """JSON Schema's ``integer`` includes ``3.0``; pydantic's strict ``int`` does not."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Int = Annotated[int, BeforeValidator(whole_number)]
"""An integer as JSON means it: ``3`` or ``3.0``, never ``true`` or ``"3"``."""

# Bounds go before the BeforeValidator: after it, pydantic can only write them into the
# spec as non-standard ``ge``/``le`` keywords instead of ``minimum``/``maximum``.
MaxRetries = Annotated[int, Field(ge=0, le=100), BeforeValidator(whole_number)]
RetryDelayMs = Annotated[int, Field(ge=0, le=DAY_MS), BeforeValidator(whole_number)]
MaxDelayMs = Annotated[int, Field(ge=0, le=7 * DAY_MS), BeforeValidator(whole_number)]
Jitter = Annotated[float, Field(ge=0, le=1)]
TimeoutMs = Annotated[int, Field(ge=100, le=300_000), BeforeValidator(whole_number)]
MaxInFlight = Annotated[int, Field(ge=1, le=1000), BeforeValidator(whole_number)]


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


def check_headers(headers: dict[str, str] | None, limit: int, *, reserved: bool) -> None:
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
