"""The outbound HTTP sender: pyreqwest (Rust reqwest/hyper), keep-alive, no redirects.

pyreqwest was measured at about a third of aiohttp's CPU per request (bench/RESULTS.md,
"Delivery path"). It cannot take a resolver, so the SSRF guard is applied before it: the
host is resolved here through :class:`GuardedResolver` (every address checked), and the
request goes through a client pinned to one checked address
(:mod:`app.dispatch.clients`), so reqwest connects there and nowhere else, with the Host
header and TLS name still the host's. When a pinned address refuses the connection, the
next allowed address is tried within the same deadline.

Connections are budgeted: at most ``max_connections`` in all and at most
``max_connections_per_destination`` to one destination (scheme, host, port), so a dead
receiver holds only its own destination's share. An attempt waits for its slots *before*
its ``timeout_ms`` clock starts: waiting behind another subscription never burns a retry.
Every failure mode of a receiver (refused, reset, hung, trickling, huge or garbage
response) becomes a :class:`SendResult`; nothing raises out of :meth:`WebhookSender.send`.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import time
from collections import deque
from collections.abc import Mapping
from datetime import timedelta

from pyreqwest.client import Client
from pyreqwest.exceptions import (
    BodyDecodeError,
    ConnectError,
    DecodeError,
    PyreqwestError,
    RequestTimeoutError,
)
from pyreqwest.http import Url

from app.core.outcome import BLOCKED, SendResult
from app.core.redact import redact
from app.dispatch.clients import ClientKey, PinnedClients
from app.dispatch.guard import BlockedDestinationError, DestinationGuard, literal_address
from app.dispatch.resolver import GuardedResolver

EXCERPT_CHARS = 1024
MAX_CACHED_TARGETS = 10_000

Destination = tuple[str, str, int]
"""What a connection budget keys on: scheme, host and port (default port filled in)."""


def parse_retry_after(value: str | None, now: float | None = None) -> int | None:
    """``Retry-After`` in ms: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return int(value) * 1000
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    delta = when.timestamp() - (now if now is not None else time.time())
    return max(0, int(delta * 1000))


class _Target:
    """A subscription URL read once: where it goes and, for a literal address, whether
    the guard allows it (the rules never change while the process runs).
    """

    __slots__ = ("addresses", "destination", "host", "keys", "name", "refusal", "url")

    def __init__(self, url: str, guard: DestinationGuard) -> None:
        parsed = Url(url)  # the parser reqwest uses: the host is spelled as it will look it up
        host = parsed.host_str
        port = parsed.port_or_known_default
        if parsed.scheme not in ("http", "https") or not host or port is None:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.url = parsed
        self.host = host
        self.name = parsed.domain
        """The name to resolve; None when the host is a literal address."""
        self.destination: Destination = (parsed.scheme, host, port)
        self.refusal: str | None = None
        self.addresses: list[str] | None = None
        """The resolver's answer ``keys`` were made from (a name's; None for a literal)."""
        self.keys: list[ClientKey] = []
        """The pinned clients to try, in order: a literal's one, or the last answer's."""
        if self.name is None:
            address = literal_address(host)
            if address is None:
                raise ValueError(f"unreadable host in {url!r}")
            if not guard.allows_address(address, host):
                self.refusal = f"destination {host} is a loopback, private or metadata address"
            self.keys = [(parsed.scheme, host, port, None)]

    def keys_for(self, addresses: list[str]) -> list[ClientKey]:
        """One client key per allowed address of the answer (made once per answer)."""
        if addresses is not self.addresses:
            scheme, host, port = self.destination
            self.keys = [(scheme, host, port, address) for address in addresses]
            self.addresses = addresses
        return self.keys


class WebhookSender:
    """Posts signed bodies to subscriber URLs."""

    def __init__(
        self,
        user_agent: str,
        max_connections: int = 1000,
        max_response_bytes: int = 64 * 1024,
        resolver: GuardedResolver | None = None,
        max_connections_per_destination: int = 100,
    ) -> None:
        """``max_response_bytes`` is all that is ever read of a response body.

        ``resolver`` resolves and checks every host name (None: the system resolver with
        every address allowed, as with ``allow_private_networks: true``).
        """
        self._user_agent = user_agent
        self._per_destination = min(max_connections_per_destination, max_connections)
        self._slots = _Slots(max_connections, self._per_destination)
        self._max_response_bytes = max_response_bytes
        if resolver is None:
            resolver = GuardedResolver(DestinationGuard(allow_private_networks=True))
        self._resolver = resolver
        self._targets: dict[str, _Target] = {}
        self._timeouts: dict[float, timedelta] = {}
        self._clients: PinnedClients | None = None

    async def start(self) -> None:
        """Get ready to send (call inside the running event loop)."""
        if self._clients is None:
            self._clients = PinnedClients(self._user_agent, self._per_destination)

    async def close(self) -> None:
        """Close connections."""
        if self._clients is not None:
            clients, self._clients = self._clients, None
            await clients.close()

    @property
    def max_connections_per_destination(self) -> int:
        """The most attempts that can be on the wire to one destination at once."""
        return self._per_destination

    @property
    def clients(self) -> int:
        """Pinned clients alive now (one per destination address in recent use)."""
        return len(self._clients) if self._clients is not None else 0

    async def send(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout_ms: int
    ) -> SendResult:
        """POST once; the whole exchange (resolve, connect, send, read) is bounded by
        ``timeout_ms``.

        The clock starts once the attempt holds its connection slots (its destination's,
        then the global pool's), so time spent queued behind other attempts is not
        charged to this one.
        A failure's excerpt says how far the exchange got (no answer, or the status and
        how much of the body), with credentials masked, so the DLQ tells an operator what
        the receiver did.
        """
        clients = self._clients
        if clients is None:
            raise RuntimeError("WebhookSender.start() was not called")
        target = self._targets.get(url)
        if target is None:
            try:
                target = self._target(url)
            except ValueError as exc:
                return _failed("connection_error", f"invalid URL: {exc}", time.perf_counter())
        if target.refusal is not None:
            return _failed(BLOCKED, target.refusal, time.perf_counter())
        slots = self._slots
        destination = target.destination
        if not slots.try_take(destination):  # free slots are taken without a suspension
            await slots.take(destination)
        try:
            return await self._send(clients, target, body, headers, timeout_ms)
        finally:
            slots.give(destination)

    def _target(self, url: str) -> _Target:
        if len(self._targets) >= MAX_CACHED_TARGETS:
            self._targets.clear()
        target = self._targets[url] = _Target(url, self._resolver.guard)
        return target

    async def _send(
        self,
        clients: PinnedClients,
        target: _Target,
        body: bytes,
        headers: Mapping[str, str],
        timeout_ms: int,
    ) -> SendResult:
        """Resolve (a name), then exchange with each allowed address until one connects."""
        started = time.perf_counter()
        deadline = started + timeout_ms / 1000
        if target.name is None:
            keys = target.keys
        else:
            resolved = await self._client_keys(target, timeout_ms, started)
            if isinstance(resolved, SendResult):
                return resolved
            keys = resolved
        last = len(keys) - 1
        progress = _Progress()
        for index, key in enumerate(keys):
            entry = clients.acquire(key)
            try:
                return await self._exchange(entry.client, target, body, headers, deadline, progress)
            except RequestTimeoutError:
                return _failed("timeout", progress.timed_out(timeout_ms), started)
            except ConnectError as exc:
                # Refused or unreachable at this address: the next allowed one may answer.
                if index == last or time.perf_counter() >= deadline:
                    return _failed("connection_error", progress.failed(exc), started)
            except DecodeError as exc:
                reason = "invalid_response"
                if progress.status or isinstance(exc, BodyDecodeError):
                    reason = "connection_error"
                return _failed(reason, progress.failed(exc), started)
            except (PyreqwestError, ValueError) as exc:
                return _failed("connection_error", progress.failed(exc), started)
            finally:
                entry.release()
        raise AssertionError("unreachable: the last address returns")  # pragma: no cover

    async def _exchange(
        self,
        client: Client,
        target: _Target,
        body: bytes,
        headers: Mapping[str, str],
        deadline: float,
        progress: _Progress,
    ) -> SendResult:
        """One request and its answer, read up to ``max_response_bytes``.

        The usual exchange (a short answer) resumes this coroutine once for the head and
        once for the body, or not at all for the body when it is announced empty. The rest
        of a longer body is never read: leaving the response closes the connection instead
        of draining gigabytes into it.
        """
        started = time.perf_counter()
        request = (
            client.post(target.url)
            .headers(headers)
            .body_bytes(body)
            .timeout(self._timeout(deadline - started))
            # Hand the response over at its head: the body is read here, up to the cap.
            .streamed_read_buffer_limit(0)
            .build_streamed()
        )
        limit = self._max_response_bytes
        chunks: list[bytes] = []
        async with request as response:
            status = progress.status = response.status
            ok = 200 <= status < 300
            retry_after = None if ok else parse_retry_after(response.get_header("Retry-After"))
            length = response.get_header("Content-Length")
            if limit > 0 and length != "0":
                # A length announced within the cap ends the read without waiting for a
                # last, empty chunk.
                want = int(length) if length is not None and length.isdigit() else limit
                reader = response.body_reader
                while progress.body_bytes < min(want, limit):
                    chunk = await reader.read_chunk()
                    if chunk is None:
                        break
                    data = bytes(chunk)[: limit - progress.body_bytes]
                    chunks.append(data)
                    progress.body_bytes += len(data)
        excerpt = None
        if chunks and not ok:  # a 2xx's answer is never kept
            excerpt = redact(b"".join(chunks)[:EXCERPT_CHARS].decode("utf-8", "replace"))
        return SendResult(
            status,
            _reason(status),
            excerpt,
            retry_after_ms=retry_after,
            duration_ms=_since(started),
        )

    async def _client_keys(
        self, target: _Target, timeout_ms: int, started: float
    ) -> list[ClientKey] | SendResult:
        """One pinned client per allowed address of the host's name, or why there is none."""
        host = target.host
        name = target.name
        port = target.destination[2]
        if name is None:  # pragma: no cover - literals never get here
            return target.keys
        try:
            addresses = self._resolver.cached(name, port)
            if addresses is None:
                async with asyncio.timeout(timeout_ms / 1000):
                    addresses = await self._resolver.resolve(name, port)
        except BlockedDestinationError as exc:
            return _failed(BLOCKED, str(exc), started)
        except TimeoutError:
            return _failed("timeout", f"{host} not resolved within {timeout_ms} ms", started)
        except (OSError, ValueError) as exc:
            return _failed("connection_error", f"cannot resolve {host}: {exc}", started)
        return target.keys_for(addresses)

    def _timeout(self, seconds: float) -> timedelta:
        """The attempt's remaining time; the usual whole-attempt values are built once."""
        milliseconds = max(1.0, round(seconds * 1000))
        timeout = self._timeouts.get(milliseconds)
        if timeout is None:
            if len(self._timeouts) > 1000:
                self._timeouts.clear()
            timeout = self._timeouts[milliseconds] = timedelta(milliseconds=milliseconds)
        return timeout


def _failed(reason: str, detail: str, started: float) -> SendResult:
    return SendResult(None, reason, redact(detail)[:EXCERPT_CHARS], duration_ms=_since(started))


def _explain(exc: BaseException) -> str:
    """The message of a pyreqwest error and its chain of causes, innermost last."""
    if not isinstance(exc, PyreqwestError):
        return str(exc)
    parts = [exc.message]
    details = getattr(exc, "details", None)
    for cause in (details or {}).get("causes") or ():
        message = cause.get("message", "")
        if message and message not in parts:
            parts.append(message)
    return ": ".join(parts)


class _Progress:
    """How far one exchange got, to describe a failure."""

    __slots__ = ("body_bytes", "status")

    def __init__(self) -> None:
        self.status: int = 0
        self.body_bytes = 0

    def _where(self) -> str:
        if not self.status:
            return "before any response"
        return f"after status {self.status} and {self.body_bytes} body bytes"

    def timed_out(self, timeout_ms: int) -> str:
        if not self.status:
            return f"no response within {timeout_ms} ms"
        return f"response not complete within {timeout_ms} ms ({self._where()})"

    def failed(self, exc: BaseException) -> str:
        return f"{type(exc).__name__} {self._where()}: {_explain(exc)}"


class _Gate:
    """A first-come, first-served counting gate: ``size`` holders at once.

    A free slot is taken without suspending (:meth:`try_take`); a given-back slot goes
    straight to the longest waiter.
    """

    __slots__ = ("free", "line", "users")

    def __init__(self, size: int) -> None:
        self.free = size
        self.line: deque[asyncio.Future[None]] = deque()
        self.users = 0
        """Holders and waiters (a destination's gate is dropped when none is left)."""

    def try_take(self) -> bool:
        if self.free > 0 and not self.line:
            self.free -= 1
            return True
        return False

    async def take(self) -> None:
        if self.try_take():
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.line.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.give()  # handed a slot as it was cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):
                    self.line.remove(waiter)
            raise

    def give(self) -> None:
        while self.line:
            waiter = self.line.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes to it, still taken
                return
        self.free += 1


class _Slots:
    """Connection budgets: one gate per destination inside one global gate.

    The destination's slot is taken first, so attempts to a dead receiver queue on their
    own gate and never sit in the global queue ahead of healthy destinations.
    A destination's gate is dropped once nobody holds or awaits it.
    """

    def __init__(self, total: int, per_destination: int) -> None:
        self._total = _Gate(total)
        self._per_destination = per_destination
        self._destinations: dict[Destination, _Gate] = {}

    @property
    def destinations(self) -> int:
        """Destinations with an attempt holding or awaiting a slot now."""
        return len(self._destinations)

    def try_take(self, key: Destination) -> bool:
        """Take a slot of ``key``'s budget and one of the global budget if both are free
        now (nobody waiting ahead); False, holding nothing, otherwise.
        """
        gate = self._destinations.get(key)
        if gate is None:
            gate = _Gate(self._per_destination)
        if gate.try_take():
            if self._total.try_take():
                gate.users += 1
                self._destinations[key] = gate
                return True
            gate.give()
        return False

    async def take(self, key: Destination) -> None:
        """Wait for a slot of ``key``'s budget, then one of the global budget."""
        gate = self._destinations.get(key)
        if gate is None:
            gate = self._destinations[key] = _Gate(self._per_destination)
        gate.users += 1
        try:
            await gate.take()
            try:
                await self._total.take()
            except BaseException:
                gate.give()
                raise
        except BaseException:
            self._drop(key, gate)
            raise

    def give(self, key: Destination) -> None:
        """Give back what :meth:`try_take` or :meth:`take` got for ``key``."""
        self._total.give()
        gate = self._destinations[key]
        gate.give()
        self._drop(key, gate)

    def _drop(self, key: Destination, gate: _Gate) -> None:
        gate.users -= 1
        if gate.users <= 0:
            del self._destinations[key]


def _since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _reason(status: int) -> str:
    if 200 <= status < 300:
        return "delivered"
    if status == 410:
        return "gone"
    if 300 <= status < 400:
        return "redirect_not_followed"
    return "http_error"
