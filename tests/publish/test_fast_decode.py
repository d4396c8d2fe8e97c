"""Issue 12: the fast path's msgspec decoders are never looser than the routes' models.

Whatever :mod:`app.api.fastdecode` accepts, the route (strict JSON decode, the pydantic
model, the route's own checks) accepts too, with the same values; what it refuses goes to
the route, which answers. Checked on hand-picked edge cases and on generated bodies.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.api import fastdecode
from app.api.functions import EnqueueArgs
from app.api.schemas import BatchIn, EnqueueIn, MessageIn
from app.core.codec import decode_json, encode_json

FIELDS = {
    "message": ["data", "delay_ms", "headers", "ordering_key", "expires_at", "ttl_ms"],
    "batch-entry": [
        "data",
        "delay_ms",
        "headers",
        "idempotency_key",
        "ordering_key",
        "expires_at",
        "ttl_ms",
    ],
    "enqueue": [
        "topic",
        "data",
        "delay_ms",
        "traceparent",
        "baggage",
        "ordering_key",
        "expires_at",
        "ttl_ms",
    ],
    "function": ["topic", "data", "traceparent", "baggage", "ordering_key", "expires_at", "ttl_ms"],
}
"""Each body's fields (the models' and the structs')."""


def slow_message(body: bytes) -> dict[str, Any] | None:
    try:
        model = MessageIn.model_validate(decode_json(body))
    except Exception:
        return None
    return model.model_dump()


def slow_batch(body: bytes) -> list[dict[str, Any]] | None:
    try:
        model = BatchIn.model_validate(decode_json(body))
    except Exception:
        return None
    return [m.model_dump() for m in model.messages]


def slow_enqueue(body: bytes) -> dict[str, Any] | None:
    try:
        return EnqueueIn.model_validate(decode_json(body)).model_dump()
    except Exception:
        return None


def slow_function(body: bytes) -> dict[str, Any] | None:
    try:
        value = decode_json(body)
        if not isinstance(value, dict):
            return None
        return EnqueueArgs.model_validate(value).model_dump()
    except Exception:
        return None


def fast(decoder: Callable[[bytes], Any], body: bytes) -> Any:
    try:
        return decoder(body)
    except Exception:
        return None


def same(fields: list[str], decoded: Any, model: dict[str, Any]) -> None:
    """Every field equal, JSON values compared as encoded (so 1, 1.0 and true differ)."""
    for name in fields:
        got = getattr(decoded, name)
        assert encode_json(got) == encode_json(model[name]), name


def check(body: bytes) -> None:
    """The implication, for ``body`` placed as each route's body."""
    message = fast(fastdecode.decode_message, body)
    if message is not None:
        model = slow_message(body)
        assert model is not None, body
        same(FIELDS["message"], message, model)
    enqueue = fast(fastdecode.decode_enqueue, body)
    if enqueue is not None:
        model = slow_enqueue(body)
        assert model is not None, body
        same(FIELDS["enqueue"], enqueue, model)
    function = fast(fastdecode.decode_enqueue_args, body)
    if function is not None:
        model = slow_function(body)
        assert model is not None, body
        same(FIELDS["function"], function, model)
    batch_body = b'{"messages": [' + body + b"]}"
    batch = fast(fastdecode.decode_batch, batch_body)
    if batch is not None:
        models = slow_batch(batch_body)
        assert models is not None, batch_body
        for entry, model in zip(batch.messages, models, strict=True):
            same(FIELDS["batch-entry"], entry, model)


TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
EDGES = [
    b'{"data": 1}',
    b'{"data": null}',
    b'{"data": 123456789012345678901234567890}',
    b'{"data": -0}',
    b'{"data": 1E2, "delay_ms": 0}',
    b'{"data": 1.5e-400}',
    b'{"data": ' + b"9" * 4300 + b"}",
    b'{"data": ' + b"9" * 4301 + b"}",
    b'{"data": -' + b"9" * 4300 + b"}",
    b'{"data": 1' + b"0" * 5000 + b".5}",
    b'{"data": 0.' + b"0" * 5000 + b"1}",
    b'{"data": 1e400}',
    b'{"data": NaN}',
    b'{"data": "\\ud800"}',
    b'{"data": "\xed\xa0\x80"}',
    b'{"data": {"\\udc00": 1}}',
    b'{"data": 1, "data": 2}',
    b'{"data": 1, "delay_ms": -1, "delay_ms": 5}',
    b'{"data": 1, "delay_ms": 5, "delay_ms": -1}',
    b'{"data": 1, "delay_ms": true}',
    b'{"data": 1, "delay_ms": 3.0}',
    b'{"data": 1, "delay_ms": 3.5}',
    b'{"data": 1, "delay_ms": "3"}',
    b'{"data": 1, "delay_ms": 100000000000000000000000}',
    b'{"data": 1, "headers": {}}',
    b'{"data": 1, "headers": null}',
    b'{"data": 1, "headers": {"a": "b"}}',
    b'{"data": 1, "headers": {"a\\n": "b"}}',
    b'{"data": 1, "headers": {"a": "b\\n"}}',
    b'{"data": 1, "headers": {"a": "b\\u0000"}}',
    b'{"data": 1, "headers": {"a": "\\t b \\t"}}',
    b'{"data": 1, "headers": {"a b": "c"}}',
    b'{"data": 1, "headers": {"": "c"}}',
    b'{"data": 1, "headers": {"a": 1}}',
    b'{"data": 1, "headers": {"a": "' + b"x" * 4097 + b'"}}',
    b'{"data": 1, "headers": {"' + b"n" * 65 + b'": "x"}}',
    b'{"data": 1, "headers": {' + b",".join(b'"h%d": "v"' % i for i in range(33)) + b"}}",
    b'{"data": 1, "ordering_key": ""}',
    b'{"data": 1, "ordering_key": "' + "é".encode() * 255 + b'"}',
    b'{"data": 1, "ordering_key": "' + "é".encode() * 256 + b'"}',
    b'{"data": 1, "ordering_key": "' + "\U0001f600".encode() * 255 + b'"}',
    b'{"data": 1, "idempotency_key": "k"}',
    b'{"data": 1, "expires_at": null, "ttl_ms": null}',
    b'{"data": 1, "expires_at": 5}',
    b'{"data": 1, "ttl_ms": 5}',
    b'{"data": 1, "nope": 1}',
    b'{"topic": "t"}',
    b'{"topic": "t\\n", "data": 1}',
    b'{"topic": "-t", "data": 1}',
    b'{"topic": "' + b"t" * 255 + b'"}',
    b'{"topic": "' + b"t" * 256 + b'"}',
    b'{"topic": "t", "traceparent": "%s"}' % TRACEPARENT.encode(),
    b'{"topic": "t", "traceparent": "%s\\n"}' % TRACEPARENT.encode(),
    b'{"topic": "t", "traceparent": "ff%s"}' % TRACEPARENT[2:].encode(),
    b'{"topic": "t", "traceparent": "00-' + b"0" * 32 + b'-b7ad6b7169203331-01"}',
    b'{"topic": "t", "traceparent": "00-0af7651916cd43dd8448eb211c80319c-' + b"0" * 16 + b'-01"}',
    b'{"topic": "t", "traceparent": "%s"}' % TRACEPARENT.upper().encode(),
    b'{"topic": "t", "baggage": "k=v"}',
    b'{"topic": "t", "baggage": "k=\\u00e9"}',
    b'{"topic": "t", "baggage": "k=v\\n"}',
    b'{"topic": "t", "baggage": "' + b"b" * 8193 + b'"}',
    b'{"topic": "t", "delay_ms": 5}',
    b"[1]",
    b'"{\\"topic\\": \\"t\\"}"',
    b"\xef\xbb\xbf" + b'{"data": 1}',
    b' {"data": 1} ',
    b'{"data": 1} x',
    b'{"data": ' + b"[" * 2000 + b"]" * 2000 + b"}",
]


@pytest.mark.parametrize("body", EDGES, ids=range(len(EDGES)))
def test_the_fast_decoders_accept_only_what_the_routes_accept(body: bytes) -> None:
    """Hand-picked edges: duplicates, bounds, patterns, anchors, hostile JSON."""
    check(body)


def test_a_batch_needs_at_least_one_message() -> None:
    assert fast(fastdecode.decode_batch, b'{"messages": []}') is None
    assert slow_batch(b'{"messages": []}') is None


def test_the_common_bodies_are_taken_fast() -> None:
    """The bodies clients send every day do not fall back."""
    good = [
        (fastdecode.decode_message, b'{"data": {"a": [1, 2.5, "x"]}, "headers": {"k": "v"}}'),
        (fastdecode.decode_message, b'{"data": 1, "delay_ms": 500, "ordering_key": "o-1"}'),
        (fastdecode.decode_batch, b'{"messages": [{"data": 1, "idempotency_key": "k"}]}'),
        (fastdecode.decode_enqueue, b'{"topic": "a.b", "data": 1, "baggage": "k=v"}'),
        (fastdecode.decode_enqueue_args, b'{"topic": "a:b", "data": [1]}'),
    ]
    for decoder, body in good:
        assert fast(decoder, body) is not None, body
        check(body)


KEYS = sorted({name for names in FIELDS.values() for name in names} | {"extra", "messages"})
TEXT = st.text(
    alphabet=st.sampled_from([*"ab0-_.:é\U0001f600 \t\n\r\x00=,", "\ud800"]),
    max_size=12,
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
    st.sampled_from([TRACEPARENT, "t", "k=v", "x" * 300]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)),
    max_leaves=6,
)


def _encode(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=5))
def test_generated_bodies_never_pass_fast_and_fail_slow(body: dict[str, Any]) -> None:
    """Random fields with random values, surrogates and control characters included."""
    check(_encode(body))
