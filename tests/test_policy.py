"""The core's policy, in isolation: retry schedule, outcome classification, Retry-After, signing."""

from __future__ import annotations

import base64
import email.utils
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook

from app.core.models import LastError, RetryPolicy
from app.core.outcome import DeadLetter, Delivered, RetryLater, SendResult, classify
from app.core.retry import retry_delay_ms
from app.core.signing import is_valid_secret, mask_secret, sign
from app.dispatch.sender import parse_retry_after

policies = st.builds(
    RetryPolicy,
    max_retries=st.integers(0, 100),
    retry_delay_ms=st.integers(0, 86_400_000),
    backoff=st.sampled_from(["exponential", "fixed"]),
    max_delay_ms=st.integers(0, 7 * 86_400_000),
    jitter=st.floats(0, 1),
)


@given(policies, st.integers(1, 10_000), st.integers(0, 2**32))
def test_delay_is_bounded_by_max_delay(policy: RetryPolicy, n: int, seed: int) -> None:
    delay = retry_delay_ms(policy, n, random.Random(seed))
    assert 0 <= delay <= policy.max_delay_ms


@given(st.integers(1, 10_000), st.integers(1, 30))
def test_exponential_without_jitter_doubles_until_the_cap(base: int, n: int) -> None:
    policy = RetryPolicy(retry_delay_ms=base, max_delay_ms=10**9, jitter=0)
    assert retry_delay_ms(policy, n) == min(10**9, base * 2 ** (n - 1))


@given(st.integers(0, 10_000), st.integers(1, 50))
def test_fixed_is_constant(base: int, n: int) -> None:
    policy = RetryPolicy(retry_delay_ms=base, backoff="fixed", max_delay_ms=10**9, jitter=0)
    assert retry_delay_ms(policy, n) == base


@given(st.floats(0.01, 1), st.integers(0, 2**32))
def test_jitter_stays_within_its_fraction(jitter: float, seed: int) -> None:
    policy = RetryPolicy(retry_delay_ms=1000, backoff="fixed", jitter=jitter)
    delay = retry_delay_ms(policy, 1, random.Random(seed))
    assert 1000 * (1 - jitter) - 1 <= delay <= 1000 * (1 + jitter)


def test_retry_number_starts_at_one() -> None:
    with pytest.raises(ValueError, match="starts at 1"):
        retry_delay_ms(RetryPolicy(), 0)


POLICY = RetryPolicy(max_retries=2, retry_delay_ms=100, jitter=0, max_delay_ms=1000)


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_2xx_is_delivered(status: int) -> None:
    assert classify(SendResult(status, "delivered"), 1, POLICY) == Delivered()


@pytest.mark.parametrize(
    ("result", "reason"),
    [
        (SendResult(500, "http_error", "boom"), "http_error"),
        (SendResult(404, "http_error"), "http_error"),
        (SendResult(301, "redirect_not_followed"), "redirect_not_followed"),
        (SendResult(None, "timeout"), "timeout"),
        (SendResult(None, "connection_error"), "connection_error"),
    ],
)
def test_failures_retry_while_retries_are_left(result: SendResult, reason: str) -> None:
    first = classify(result, 1, POLICY)
    assert isinstance(first, RetryLater)
    assert first.delay_ms == 100
    assert first.error.reason == reason
    second = classify(result, 2, POLICY)
    assert isinstance(second, RetryLater)
    assert second.delay_ms == 200
    last = classify(result, 3, POLICY)  # max_retries=2: the third attempt is the last
    assert isinstance(last, DeadLetter)


def test_gone_and_blocked_are_dead_at_once() -> None:
    gone = classify(SendResult(410, "gone", "bye"), 1, POLICY)
    assert gone == DeadLetter(LastError("gone", 410, "bye"))
    blocked = classify(SendResult(None, "blocked_destination"), 1, POLICY)
    assert isinstance(blocked, DeadLetter)


def test_retry_after_wins_and_is_capped() -> None:
    honoured = classify(SendResult(429, "http_error", retry_after_ms=700), 1, POLICY)
    assert honoured == RetryLater(700, LastError("http_error", 429))
    capped = classify(SendResult(503, "http_error", retry_after_ms=60_000), 1, POLICY)
    assert isinstance(capped, RetryLater)
    assert capped.delay_ms == 1000
    ignored = classify(SendResult(500, "http_error", retry_after_ms=700), 1, POLICY)
    assert isinstance(ignored, RetryLater)
    assert ignored.delay_ms == 100


def test_parse_retry_after() -> None:
    assert parse_retry_after("7") == 7000
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(date, now=now) == 30_000
    assert parse_retry_after(email.utils.formatdate(now - 30, usegmt=True), now=now) == 0


@given(st.binary(max_size=2000), st.text(min_size=1, max_size=40), st.integers(0, 2**33))
def test_signature_matches_the_reference_library(body: bytes, msg_id: str, stamp: int) -> None:
    secret = "whsec_" + base64.b64encode(b"0123456789abcdef01234567").decode()
    expected = Webhook(secret).sign(msg_id, _datetime(stamp), body.decode("latin-1"))
    assert sign(secret, msg_id, stamp, body.decode("latin-1").encode()) == expected


def _datetime(stamp: int):  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    return datetime.fromtimestamp(stamp, tz=UTC)


def test_secret_rules_and_masking() -> None:
    good = "whsec_" + base64.b64encode(b"x" * 24).decode()
    assert is_valid_secret(good)
    assert is_valid_secret("a-plain-secret-of-16+")
    assert not is_valid_secret("short")
    assert not is_valid_secret("whsec_" + base64.b64encode(b"x" * 8).decode())
    assert not is_valid_secret("whsec_not base64!")
    masked = mask_secret(good)
    assert masked is not None
    assert good not in masked
    assert mask_secret(None) is None
