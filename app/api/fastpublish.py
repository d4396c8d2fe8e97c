"""The publish routes without the framework in the way, for requests that are plainly fine.

FastAPI's per-request machinery (its middleware layers, dependency solving, request and
response models, the encoder) costs several times what accepting a message needs.
:class:`FastPublisher` serves the hot routes (``POST /v1/topics/{topic}/messages``,
``.../batch``, ``/v1/enqueue``, ``/v1/functions/queue.enqueue``) itself: one msgspec pass
decodes and validates the body (:mod:`app.api.fastdecode`, never looser than the routes'
models), the auth check runs only when keys are configured, a batch's entries go to the
publisher as decoded, and the answer is encoded once.

It answers from the outermost layer, :class:`HooklineApp`, before any middleware, so it
applies the request limits itself (header count and bytes, a declared body size). When
spans are recorded it stands back there and :class:`FastPublishMiddleware`, inside the
limits and the server-span middleware, serves instead, so every request still has its span.

It only ever takes the happy path. Anything it does not accept as it stands (a body that is
not JSON or not valid, a bad header, a missing or wrong key, a limit passed, a deadline,
a content type other than JSON, a chunked body) is handed to the FastAPI app unchanged,
body replayed, and answered there with the same error shapes, codes and messages as
always. A failure after the message went to the publisher (backend down, capacity) goes
through the app's own exception handlers. The routes stay declared in FastAPI: the
OpenAPI spec and the slow path are the same code.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from operator import attrgetter
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.security import HTTPAuthorizationCredentials
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api import fastdecode
from app.api.deps import authorize
from app.api.messages import trace_carrier_from
from app.core.publisher import PublishEntry, PublishRequest, PublishResult
from app.core.topics import is_valid_topic
from app.core.tracing import tracing_enabled
from app.runtime import Runtime

_HOT = re.compile(
    r"/v1/(?:topics/(?P<topic>[^/]+)/messages(?P<batch>/batch)?|(?P<enqueue>enqueue)"
    r"|functions/(?P<function>queue\.enqueue))"
)
_JSON_TYPE = re.compile(rb"application/json\s*(?:;.*)?", re.IGNORECASE | re.DOTALL)
_JSON_HEADER = (b"content-type", b"application/json")
_IDENTITY = (b"", b"identity")
_TRACE_HEADERS = ((b"traceparent", "traceparent"), (b"tracestate", "tracestate"))
_DELAY = attrgetter("delay_ms")
SEEN = "hookline.fast_publish.seen"
"""Scope key: the fast path has looked at this request (and handed it on)."""

Handler = Callable[[Request, Exception], Awaitable[Response]]
Work = Callable[[], Awaitable[tuple[bytes, int]]]


class _SlowPathError(Exception):
    """The request takes the FastAPI route (which answers whatever is wrong with it)."""


class FastPublisher:
    """Serves well-formed publishes directly; hands every other request to a fallback."""

    def __init__(self, runtime: Runtime, handlers: Mapping[Any, Callable[..., Any]]) -> None:
        """``handlers``: the app's exception handlers (for failures after publishing)."""
        self._runtime = runtime
        self._handlers = handlers
        limits = runtime.settings.limits
        self._max_headers = limits.max_headers
        self._max_header_bytes = limits.max_header_bytes
        self._max_body = limits.max_body_bytes
        self._max_batch = limits.max_batch
        self._max_delay = limits.max_delay_ms
        self.served = 0
        """Requests answered here (tests check that the fast path is the one taken)."""

    async def serve(self, scope: Scope, receive: Receive, send: Send, fallback: ASGIApp) -> None:
        """Answer ``scope`` if it is a plainly good publish, else pass it to ``fallback``."""
        match = _HOT.fullmatch(scope["path"]) if scope["method"] == "POST" else None
        headers = self._headers(scope) if match is not None else None
        if match is None or headers is None:
            scope[SEEN] = True
            await fallback(scope, receive, send)
            return
        body, message = await _read_body(receive)
        if message is not None:
            return  # the client went away
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        try:
            self._check_key(headers)
            work = self._plan(match, body, headers)
        except Exception:  # noqa: BLE001 - nothing happened yet: the route answers it
            scope[SEEN] = True
            await fallback(scope, replay, send)
            return
        try:
            payload, status = await work()
        except Exception as exc:
            handler = self._handler_for(exc)
            if handler is None:
                raise
            response = await handler(Request(scope, replay), exc)
            await response(scope, replay, send)
            return
        self.served += 1
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-length", b"%d" % len(payload)), _JSON_HEADER],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    def _headers(self, scope: Scope) -> dict[bytes, bytes] | None:
        """Header name -> its first value (as Starlette's ``headers[name]``), or ``None``
        when the request is for the app to answer: a request limit passed, a body of
        undeclared size (chunked) or compressed, or a content type other than JSON.
        """
        raw = scope["headers"]
        if len(raw) > self._max_headers:
            return None
        found: dict[bytes, bytes] = {}
        size = 0
        for name, value in raw:
            size += len(name) + len(value)
            if name not in found:
                found[name] = value
            if name == b"content-encoding" and value.strip().lower() not in _IDENTITY:
                return None  # a compressed body: the app's 415
        if size > self._max_header_bytes:
            return None
        length = found.get(b"content-length")
        if length is None or not length.isdigit() or int(length) > self._max_body:
            return None
        if not _JSON_TYPE.fullmatch(found.get(b"content-type", b"")):
            return None
        return found

    def _check_key(self, headers: Mapping[bytes, bytes]) -> None:
        """``require_scope("publish")`` without the dependency machinery (no keys: nothing)."""
        if not self._runtime.api_keys:
            return
        scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise _SlowPathError
        credentials = HTTPAuthorizationCredentials(scheme=scheme, credentials=token)
        authorize(self._runtime, credentials, "publish")

    def _plan(self, match: re.Match[str], body: bytes, headers: Mapping[bytes, bytes]) -> Work:
        """Decode and validate; the returned coroutine function publishes (no side effect
        before it runs, so anything refused here can still go the slow way).
        """
        topic = match["topic"]
        if topic is not None:
            if not is_valid_topic(topic):
                raise _SlowPathError
            if match["batch"]:
                return self._batch(topic, fastdecode.decode_batch(body).messages, headers)
            message = fastdecode.decode_message(body)
            request = PublishRequest(
                message.data,
                self._delay(message.delay_ms),
                message.headers,
                _idempotency_key(headers),
                ordering_key=message.ordering_key,
            )
            return self._single(topic, request, _carrier(headers, None, None))
        if match["enqueue"]:
            enqueue = fastdecode.decode_enqueue(body)
            request = PublishRequest(
                enqueue.data,
                self._delay(enqueue.delay_ms),
                None,
                _idempotency_key(headers),
                ordering_key=enqueue.ordering_key,
            )
            carrier = _carrier(headers, enqueue.traceparent, enqueue.baggage)
            return self._single(enqueue.topic, request, carrier)
        args = fastdecode.decode_enqueue_args(body)
        request = PublishRequest(
            args.data, 0, None, _idempotency_key(headers), ordering_key=args.ordering_key
        )
        publish = self._single(
            args.topic, request, _carrier(headers, args.traceparent, args.baggage)
        )

        async def call() -> tuple[bytes, int]:
            await publish()
            return b"null", 200

        return call

    def _delay(self, delay_ms: int) -> int:
        if delay_ms > self._max_delay:
            raise _SlowPathError
        return delay_ms

    def _single(self, topic: str, request: PublishRequest, carrier: dict[str, str]) -> Work:
        publisher = self._runtime.publisher

        async def publish() -> tuple[bytes, int]:
            [result] = await publisher.publish(topic, [request], carrier)  # counts it
            if result.duplicate:
                out = {"id": result.id, "topic": topic, "duplicate": True}
                return orjson.dumps(out), 202
            # A new id is hex and a topic is [A-Za-z0-9._:-]: nothing to escape.
            return b'{"id":"%s","topic":"%s","duplicate":false}' % (
                result.id.encode(),
                topic.encode(),
            ), 202

        return publish

    def _batch(
        self, topic: str, entries: Sequence[PublishEntry], headers: Mapping[bytes, bytes]
    ) -> Work:
        if len(entries) > self._max_batch or max(map(_DELAY, entries)) > self._max_delay:
            raise _SlowPathError
        publisher = self._runtime.publisher
        carrier = _carrier(headers, None, None)

        async def publish() -> tuple[bytes, int]:
            results = await publisher.publish(topic, entries, carrier)  # counts them
            return _batch_answer(results), 202

        return publish

    def _handler_for(self, exc: Exception) -> Handler | None:
        for cls in type(exc).__mro__:
            if cls in self._handlers:
                handler: Handler = self._handlers[cls]
                return handler
        return None


def _batch_answer(results: list[PublishResult]) -> bytes:
    """``BatchOut``, encoded: new ids are joined into a template, repeats go through orjson."""
    if any(r.duplicate for r in results):
        out = {"results": [{"id": r.id, "duplicate": r.duplicate} for r in results]}
        return orjson.dumps(out)
    ids = '","duplicate":false},{"id":"'.join([r.id for r in results])
    return b'{"results":[{"id":"' + ids.encode() + b'","duplicate":false}]}'


def _idempotency_key(headers: Mapping[bytes, bytes]) -> str | None:
    raw = headers.get(b"idempotency-key")
    if raw is None:
        return None
    key = raw.decode("latin-1")
    if not 1 <= len(key) <= 255:
        raise _SlowPathError
    return key


def _carrier(
    headers: Mapping[bytes, bytes], traceparent: str | None, baggage: str | None
) -> dict[str, str]:
    """:func:`app.api.messages.trace_carrier` from the raw headers."""
    found = {name: headers[key].decode("latin-1") for key, name in _TRACE_HEADERS if key in headers}
    header_baggage = headers.get(b"baggage")
    if header_baggage is not None:
        found["baggage"] = header_baggage.decode("latin-1")
    return trace_carrier_from(found, traceparent, baggage)


async def _read_body(receive: Receive) -> tuple[bytes, Message | None]:
    """The whole body, or the disconnect message that cut it short."""
    message = await receive()
    if message["type"] != "http.request":
        return b"", message
    if not message.get("more_body", False):
        return message.get("body", b""), None
    chunks = [message.get("body", b"")]
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"", message
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), None


class FastPublishMiddleware:
    """The fast path inside the middleware stack: used while spans are recorded (the
    server-span middleware then wraps it), and a no-op for what the outer layer saw.
    """

    def __init__(self, app: ASGIApp, fast: FastPublisher) -> None:
        """Wrap ``app``; ``fast`` is the app's one :class:`FastPublisher`."""
        self._app = app
        self._fast = fast

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] != "http" or SEEN in scope:
            await self._app(scope, receive, send)
            return
        await self._fast.serve(scope, receive, send, self._app)


class HooklineApp(FastAPI):
    """FastAPI with the fast path in front of its whole stack (see the module docstring)."""

    fast_publish: FastPublisher | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point: publishes go to :attr:`fast_publish` first, unless spans are
        recorded (the stack's own :class:`FastPublishMiddleware` then serves them).
        """
        fast = self.fast_publish
        if fast is None or scope["type"] != "http" or tracing_enabled():
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self
        await fast.serve(scope, receive, send, super().__call__)
