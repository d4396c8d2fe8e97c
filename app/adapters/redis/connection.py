"""The Redis client (standalone or cluster), Lua calls, and the one place errors are mapped.

Every failure that means "Redis cannot be reached right now" becomes
:class:`BackendUnavailableError`, so the API answers 503 and never a false 202. A
background probe watches reachability: it logs one line when Redis goes away or comes
back and drives ``ping()`` for ``/readyz``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis import exceptions as rexc
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from app.adapters.redis.settings import RedisSettings
from app.core.errors import BackendUnavailableError, CapacityExceededError
from app.core.redact import mask_url_credentials

logger = logging.getLogger("hookline.redis")

RedisClient = Redis | RedisCluster

UNAVAILABLE: tuple[type[BaseException], ...] = (
    rexc.ConnectionError,  # includes BusyLoadingError (Redis loading its data after a restart)
    rexc.TimeoutError,
    rexc.ClusterDownError,
    rexc.TryAgainError,
    rexc.MasterDownError,
    rexc.ReadOnlyError,
    rexc.RedisClusterException,  # "cannot connect to any node", slots not covered
    OSError,
)
"""Exceptions that mean the backend is unreachable (not that a command was wrong)."""

_TRANSLATED: tuple[type[BaseException], ...] = (*UNAVAILABLE, rexc.ResponseError)

_PROBE_HEALTHY_S = 1.0
_PROBE_DOWN_S = 0.25


@dataclass(frozen=True, slots=True)
class LuaScript:
    """A Lua script called by SHA, sent in full only when Redis does not know it yet."""

    name: str
    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())  # noqa: S324 - Redis' script id


def build_client(settings: RedisSettings) -> RedisClient:
    """A client that does no I/O until used, so building it never fails on a down Redis.

    One retry only: redis-py's default (ten, with backoff) would hold a publish for
    seconds during an outage instead of answering 503 at once; the single retry still
    covers a pooled connection that went stale across a Redis restart. A timeout is not
    retried: a hung Redis then costs a command ``socket_timeout_ms`` once (a 503), not
    twice, and a write that may have happened is never sent again.
    """
    retry = Retry(
        ExponentialBackoff(cap=0.05, base=0.01), 1, supported_errors=(rexc.ConnectionError,)
    )
    common: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": settings.socket_timeout_ms / 1000,
        "socket_connect_timeout": settings.connect_timeout_ms / 1000,
        "retry": retry,
        "max_connections": settings.max_connections,
    }
    if settings.cluster:
        return RedisCluster.from_url(settings.redis_url, **common)
    return Redis.from_url(settings.redis_url, **common)


class RedisConnection:
    """Owns the client; every adapter module talks to Redis through it."""

    def __init__(self, settings: RedisSettings) -> None:
        """No I/O here: ``start`` begins probing in the background."""
        self._settings = settings
        self._client: RedisClient = build_client(settings)
        self._reachable = False
        self._probe: asyncio.Task[None] | None = None
        self._ever_reachable = asyncio.Event()
        self._first_probe = True

    @property
    def settings(self) -> RedisSettings:
        """What the connection was built from."""
        return self._settings

    @property
    def client(self) -> RedisClient:
        """The underlying redis-py client (standalone or cluster)."""
        return self._client

    @property
    def reachable(self) -> bool:
        """What the last probe or command found."""
        return self._reachable

    async def wait_reachable(self, timeout_s: float) -> bool:
        """Wait until Redis has answered once (tests and start-up ordering)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ever_reachable.wait(), timeout_s)
        return self._ever_reachable.is_set()

    def start(self) -> None:
        """Start the reachability probe; never raises, even when Redis is down."""
        if self._probe is None:
            self._probe = asyncio.create_task(self._probe_loop(), name="redis-probe")

    async def close(self) -> None:
        """Stop probing and close every pooled connection."""
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
            self._probe = None
        with contextlib.suppress(*UNAVAILABLE):
            await self._client.aclose()

    async def ping(self) -> bool:
        """True when Redis answers now."""
        try:
            await self._client.ping()
        except UNAVAILABLE as exc:
            self._mark(reachable=False, error=exc)
            return False
        self._mark(reachable=True)
        return True

    def _mark(self, reachable: bool, error: BaseException | None = None) -> None:
        """Log reachability transitions once, not on every failing call."""
        where = mask_url_credentials(self._settings.redis_url)
        if reachable and not self._reachable:
            logger.info("redis reachable at %s", where)
            self._ever_reachable.set()
        elif not reachable and (self._reachable or self._first_probe):
            logger.warning(
                "redis unreachable at %s (%s); retrying in the background, "
                "/readyz answers 503 and publishes are refused until it answers",
                where,
                error,
            )
        self._first_probe = False
        self._reachable = reachable

    async def _probe_loop(self) -> None:
        while True:
            healthy = await self.ping()
            await asyncio.sleep(_PROBE_HEALTHY_S if healthy else _PROBE_DOWN_S)

    @contextlib.contextmanager
    def translate(self) -> Iterator[None]:
        """Map Redis failures to the adapter's errors, so the API answers 503, never 500.

        Unreachable (or refusing writes, ``MISCONF``) -> :class:`BackendUnavailableError`;
        out of memory under ``noeviction`` -> :class:`CapacityExceededError`.
        """
        try:
            yield
        except _TRANSLATED as exc:
            mapped = self.mapped(exc)
            if mapped is exc:
                raise
            raise mapped from exc

    def mapped(self, exc: BaseException) -> BaseException:
        """The adapter's error for ``exc`` (see :meth:`translate`), or ``exc`` itself."""
        if isinstance(exc, UNAVAILABLE):
            self._mark(reachable=False, error=exc)
            return BackendUnavailableError(f"redis unavailable: {exc}")
        if isinstance(exc, rexc.OutOfMemoryError):
            return CapacityExceededError(
                "redis is full (maxmemory reached): receivers are behind, retry later"
            )
        if isinstance(exc, rexc.ResponseError) and str(exc).startswith("MISCONF"):
            return BackendUnavailableError(f"redis refuses writes: {exc}")
        return exc

    async def run(self, script: LuaScript, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run ``script`` atomically on the slot of ``keys`` (EVALSHA, EVAL when unknown).

        Redis forgets scripts on restart; the fallback reloads them transparently.
        """
        with self.translate():
            try:
                return await self._client.evalsha(script.sha, len(keys), *keys, *args)
            except rexc.NoScriptError:
                return await self._client.eval(script.source, len(keys), *keys, *args)
