"""What the sync and async clients share: settings, one request's description, when to
retry, and how an answer becomes a result or an exception.

Each API call is an :class:`Op` (method, path, body, how to read the answer, whether it
may be repeated); :class:`hookline.Client` and :class:`hookline.AsyncClient` only differ
in how they send it.
"""

from __future__ import annotations

import email.utils
import os
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx

from hookline import _tracing
from hookline.errors import HooklineConnectionError, HooklineError, error_for

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:8080"
USER_AGENT = "hookline-sdk-python/0.1.0"


def resolve_url(base_url: str | None) -> str:
    """``base_url``, else ``HOOKLINE_URL``, else hookline's ``make run`` address."""
    return (base_url or os.environ.get("HOOKLINE_URL") or DEFAULT_URL).rstrip("/")


def resolve_key(api_key: str | None) -> str | None:
    """``api_key``, else ``HOOKLINE_API_KEY`` (``None``: an open hookline)."""
    return api_key or os.environ.get("HOOKLINE_API_KEY") or None


def new_idempotency_key() -> str:
    """A key for one publish, kept across the client's retries of it."""
    return f"sdk-{uuid.uuid4().hex}"


def default_headers(api_key: str | None) -> dict[str, str]:
    """Headers every request carries."""
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


@dataclass(frozen=True, slots=True)
class RetrySettings:
    """How hard the client tries before raising.

    ``max_retries`` further attempts after the first, on a 503 (waiting its
    ``Retry-After``, at most ``max_wait_s``) or on a connection error (waiting
    ``backoff_s`` doubled each time, +-20 %).
    """

    max_retries: int = 3
    backoff_s: float = 0.2
    max_wait_s: float = 30.0


_NO_BODY: Any = object()


@dataclass(frozen=True, slots=True)
class Op(Generic[T]):
    """One API call.

    ``repeatable``: sending it twice does no harm (reads, PUTs, a publish carrying its
    idempotency key), so it is retried even after an error that may have come once
    hookline had it; otherwise only when it surely never arrived (connection refused)
    or hookline answered 503 (it did nothing).
    """

    method: str
    path: str
    read: Callable[[Any], T]
    body: Any = _NO_BODY
    params: dict[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    repeatable: bool = True
    on_error: Callable[[HooklineError], HooklineError] | None = None

    def request(self, client: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        """The request to send (trace context of the caller injected)."""
        headers = dict(self.headers)
        _tracing.inject(headers)
        if self.body is _NO_BODY:
            return client.build_request(self.method, self.path, params=self.params, headers=headers)
        return client.build_request(
            self.method, self.path, params=self.params, headers=headers, json=self.body
        )

    def result(self, response: httpx.Response) -> T:
        """The typed result of a 2xx, or the exception for anything else."""
        if response.is_success:
            return self.read(_json(response) if response.content else None)
        error = error_for(response.status_code, _json(response), dict(response.headers))
        raise self.on_error(error) if self.on_error else error


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def retry_after_s(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date), or ``None``."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def wait_before_retry(
    op: Op[Any],
    settings: RetrySettings,
    attempt: int,
    response: httpx.Response | None,
    error: httpx.TransportError | None,
) -> float | None:
    """Seconds to wait before sending ``op`` again after ``attempt`` (1-based), or
    ``None`` to stop here.
    """
    if attempt > settings.max_retries:
        return None
    backoff = settings.backoff_s * 2.0 ** (attempt - 1) * random.uniform(0.8, 1.2)
    if response is not None:
        if response.status_code != 503:
            return None
        after = retry_after_s(response)
        return min(settings.max_wait_s, backoff if after is None else after)
    never_arrived = isinstance(error, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    if never_arrived or op.repeatable:
        return min(settings.max_wait_s, backoff)
    return None


def connection_error(op: Op[Any], error: httpx.TransportError, base_url: str) -> HooklineError:
    """The exception for a request that got no answer."""
    return HooklineConnectionError(
        f"{op.method} {base_url}{op.path}: no answer ({type(error).__name__}: {error})",
        code="connection_error",
    )
