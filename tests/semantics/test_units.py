"""The pure parts of deadlines, rate limits and adaptive concurrency."""

from __future__ import annotations

import pytest

from app.core.concurrency import AimdWindow
from app.core.deadlines import DeadlineError, parse_expires_at, resolve_deadline
from app.core.models import Envelope, RateLimit, Subscription
from app.core.outcome import SendResult
from app.core.rate_limit import TokenBucket

NOW = 1_700_000_000_000


def test_deadline_forms() -> None:
    assert resolve_deadline(None, None, 0, NOW) is None
    assert resolve_deadline(None, 500, 0, NOW) == NOW + 500
    assert resolve_deadline(NOW + 10, None, 0, NOW) == NOW + 10
    assert parse_expires_at("2023-11-14T22:13:20Z") == NOW
    assert parse_expires_at("2023-11-14T23:13:20+01:00") == NOW


@pytest.mark.parametrize(
    ("expires_at", "ttl_ms", "delay_ms", "field", "words"),
    [
        (NOW + 1000, 1000, 0, "ttl_ms", "not both"),
        (NOW - 1, None, 0, "expires_at", "in the past"),
        ("2023-11-14T22:13:20", None, 0, "expires_at", "offset"),
        ("2023-11-14", None, 0, "expires_at", "offset"),
        ("tomorrow", None, 0, "expires_at", "RFC 3339"),
        (None, 1000, 1000, "ttl_ms", "before the delay"),
        (NOW + 500, None, 600, "expires_at", "before the delay"),
    ],
)
def test_deadline_refusals(
    expires_at: int | str | None, ttl_ms: int | None, delay_ms: int, field: str, words: str
) -> None:
    with pytest.raises(DeadlineError) as caught:
        resolve_deadline(expires_at, ttl_ms, delay_ms, NOW)
    assert caught.value.field == field
    assert words in caught.value.message


def test_older_stored_forms_still_load() -> None:
    old = {"id": "m", "topic": "t", "data": 1, "published_at": NOW}
    assert Envelope.from_dict(old).expires_at is None
    assert Envelope.from_dict({**old, "expires_at": NOW}).to_dict()["expires_at"] == NOW
    sub = Subscription(id="s", topic="t", url="http://x", rate_limit=RateLimit(2.5, 3))
    raw = sub.to_dict()
    assert Subscription.from_dict(raw) == sub
    del raw["rate_limit"], raw["adaptive_concurrency"]
    legacy = Subscription.from_dict(raw)
    assert legacy.rate_limit is None
    assert not legacy.adaptive_concurrency


def test_token_bucket_reserves_in_order() -> None:
    clock = [0.0]
    bucket = TokenBucket(10, 2, clock=lambda: clock[0])
    assert [bucket.reserve() for _ in range(4)] == pytest.approx([0, 0, 0.1, 0.2])
    clock[0] = 10.0  # long quiet: at most ``burst`` saved up
    assert [bucket.reserve() for _ in range(3)] == pytest.approx([0, 0, 0.1])


def _ok(ms: float = 5) -> SendResult:
    return SendResult(200, "ok", duration_ms=ms)


def test_aimd_grows_by_one_per_window_and_halves_once_per_episode() -> None:
    window = AimdWindow(ceiling=6, start=4)
    for _ in range(4):
        window.record(window.ticket(), _ok(), fast_ms=100)
    assert window.window == 5
    window.record(window.ticket(), _ok(ms=500), fast_ms=100)  # slow success: no growth
    on_the_wire = [window.ticket() for _ in range(5)]
    for ticket in on_the_wire:  # five failures that were on the wire together
        window.record(ticket, SendResult(503, "http_503"), fast_ms=100)
    assert window.window == 2
    window.record(window.ticket(), SendResult(None, "timeout"), fast_ms=100)
    assert window.window == 1
    window.record(window.ticket(), SendResult(None, "connection_error"), fast_ms=100)
    assert window.window == 1  # never below 1
    window.record(window.ticket(), SendResult(400, "http_400"), fast_ms=100)
    assert window.window == 1  # a 4xx says nothing about load
    for _ in range(100):
        window.record(window.ticket(), _ok(), fast_ms=100)
    assert window.window == 6  # never above the ceiling
