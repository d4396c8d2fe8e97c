"""The publish routes without the framework in the way, for requests that are plainly fine.

FastAPI's per-request machinery (dependency solving, request and response models, the
encoder) costs several times what accepting a message needs. :class:`FastPublishMiddleware`
serves the hot routes (``POST /v1/topics/{topic}/messages``, ``.../batch``, ``/v1/enqueue``,
``/v1/functions/queue.enqueue``) itself: one strict decode (:func:`app.core.codec.decode_json`,
the decoder the routes use), the routes' own pydantic models validating the decoded value
(so every rule holds exactly as declared), the auth check only when keys are configured,
and a response encoded once. An ``ordering_key`` is carried over as validated (the same
field, the same publisher call as the route's).

It only ever takes the happy path. Anything it does not accept as it stands (a body that is
not JSON or not valid, a bad header, a missing or wrong key, a limit passed, a content type
other than JSON) is handed to the FastAPI route unchanged, body replayed, and answered there
with the same error shapes, codes and messages as always. A failure after the message went
to the publisher (backend down, capacity) goes through the app's own exception handlers.
The routes stay declared in FastAPI: the OpenAPI spec and the slow path are the same code.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.deps import authorize
from app.api.functions import EnqueueArgs
from app.api.messages import TRACE_HEADERS, trace_carrier_from
from app.api.schemas import BatchIn, EnqueueIn, MessageIn
from app.core.codec import decode_json
from app.core.publisher import PublishRequest
from app.core.topics import TOPIC_PATTERN
from app.runtime import Runtime

_HOT = re.compile(
    r"^/v1/(?:topics/(?P<topic>[^/]+)/messages(?P<batch>/batch)?|(?P<enqueue>enqueue)"
    r"|functions/(?P<function>queue\.enqueue))$"
)
_TOPIC = re.compile(TOPIC_PATTERN)
_JSON_TYPE = re.compile(rb"^application/json\s*(;.*)?$", re.IGNORECASE)
_JSON_HEADERS = [(b"content-type", b"application/json")]

Handler = Callable[[Request, Exception], Awaitable[Response]]


class _SlowPathError(Exception):
    """The request takes the FastAPI route (which answers whatever is wrong with it)."""


def _first_headers(scope: Scope) -> dict[bytes, bytes]:
    """Header name -> the first value sent under it (as Starlette's ``headers[name]``)."""
    found: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        found.setdefault(name, value)
    return found


def _validate(model: type[BaseModel], value: Any) -> Any:
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise _SlowPathError from exc


def _idempotency_key(headers: Mapping[bytes, bytes]) -> str | None:
    raw = headers.get(b"idempotency-key")
    if raw is None:
        return None
    key = raw.decode("latin-1")
    if not 1 <= len(key) <= 255:
        raise _SlowPathError
    return key


class FastPublishMiddleware:
    """Serves well-formed publishes directly; every other request goes to ``app``.

    Sits inside the request limits (body 413, header 431), so those apply first.
    """

    def __init__(
        self, app: ASGIApp, runtime: Runtime, handlers: Mapping[Any, Callable[..., Any]]
    ) -> None:
        """``handlers``: the app's exception handlers (for failures after publishing)."""
        self._app = app
        self._runtime = runtime
        self._handlers = handlers
        self.served = 0
        """Requests answered here (tests check that the fast path is the one taken)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] != "http" or scope["method"] != "POST":
            await self._app(scope, receive, send)
            return
        match = _HOT.match(scope["path"])
        headers = _first_headers(scope) if match else {}
        if match is None or not _JSON_TYPE.match(headers.get(b"content-type", b"")):
            await self._app(scope, receive, send)
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
            await self._app(scope, replay, send)
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
                "headers": [(b"content-length", b"%d" % len(payload)), *_JSON_HEADERS],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    def _check_key(self, headers: Mapping[bytes, bytes]) -> None:
        """``require_scope("publish")`` without the dependency machinery (no keys: nothing)."""
        if not self._runtime.api_keys:
            return
        scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise _SlowPathError
        credentials = HTTPAuthorizationCredentials(scheme=scheme, credentials=token)
        authorize(self._runtime, credentials, "publish")

    def _plan(
        self, match: re.Match[str], body: bytes, headers: Mapping[bytes, bytes]
    ) -> Callable[[], Awaitable[tuple[bytes, int]]]:
        """Decode and validate; the returned coroutine function publishes (no side effect
        before it runs, so anything refused here can still go the slow way).
        """
        value = decode_json(body)
        if match["topic"] is not None:
            topic = match["topic"]
            if not _TOPIC.match(topic):
                raise _SlowPathError
            if match["batch"]:
                batch = _validate(BatchIn, value)
                if any(_has_deadline(m) for m in batch.messages):
                    raise _SlowPathError
                return self._batch(topic, batch, headers)
            message = _validate(MessageIn, value)
            if _has_deadline(message):
                raise _SlowPathError
            return self._single(topic, message, _idempotency_key(headers), headers, None)
        if match["enqueue"]:
            enqueue = _validate(EnqueueIn, value)
            if _has_deadline(enqueue):
                raise _SlowPathError
            message = MessageIn(
                data=enqueue.data, delay_ms=enqueue.delay_ms, ordering_key=enqueue.ordering_key
            )
            carrier = (enqueue.traceparent, enqueue.baggage)
            key = _idempotency_key(headers)
            return self._single(enqueue.topic, message, key, headers, carrier)
        if not isinstance(value, dict):
            raise _SlowPathError  # a JSON string holding JSON: the route unwraps it
        args = _validate(EnqueueArgs, value)
        if _has_deadline(args):
            raise _SlowPathError
        function = self._single(
            args.topic,
            MessageIn(data=args.data, ordering_key=args.ordering_key),
            _idempotency_key(headers),
            headers,
            (args.traceparent, args.baggage),
        )

        async def call() -> tuple[bytes, int]:
            await function()
            return b"null", 200

        return call

    def _single(
        self,
        topic: str,
        message: MessageIn,
        key: str | None,
        headers: Mapping[bytes, bytes],
        body_trace: tuple[str | None, str | None] | None,
    ) -> Callable[[], Awaitable[tuple[bytes, int]]]:
        runtime = self._runtime
        _check_delay(runtime, message.delay_ms)
        carrier = _carrier(headers, body_trace)
        request = PublishRequest(
            message.data,
            message.delay_ms,
            message.headers or {},
            key,
            ordering_key=message.ordering_key,
        )

        async def publish() -> tuple[bytes, int]:
            [result] = await runtime.publisher.publish(topic, [request], carrier)  # counts it
            out = {"id": result.id, "topic": topic, "duplicate": result.duplicate}
            return orjson.dumps(out), 202

        return publish

    def _batch(
        self, topic: str, batch: BatchIn, headers: Mapping[bytes, bytes]
    ) -> Callable[[], Awaitable[tuple[bytes, int]]]:
        runtime = self._runtime
        if len(batch.messages) > runtime.settings.limits.max_batch:
            raise _SlowPathError
        for message in batch.messages:
            _check_delay(runtime, message.delay_ms)
        requests = [
            PublishRequest(
                m.data, m.delay_ms, m.headers or {}, m.idempotency_key, ordering_key=m.ordering_key
            )
            for m in batch.messages
        ]
        carrier = _carrier(headers, None)

        async def publish() -> tuple[bytes, int]:
            results = await runtime.publisher.publish(topic, requests, carrier)  # counts them
            out = {"results": [{"id": r.id, "duplicate": r.duplicate} for r in results]}
            return orjson.dumps(out), 202

        return publish

    def _handler_for(self, exc: Exception) -> Handler | None:
        for cls in type(exc).__mro__:
            if cls in self._handlers:
                handler: Handler = self._handlers[cls]
                return handler
        return None


def _has_deadline(message: MessageIn | EnqueueIn | EnqueueArgs) -> bool:
    """Deadlines are resolved (and refused) by the route alone: one implementation."""
    return message.expires_at is not None or message.ttl_ms is not None


def _check_delay(runtime: Runtime, delay_ms: int) -> None:
    if delay_ms > runtime.settings.limits.max_delay_ms:
        raise _SlowPathError


def _carrier(
    headers: Mapping[bytes, bytes], body_trace: tuple[str | None, str | None] | None
) -> dict[str, str]:
    found = {
        name: headers[key].decode("latin-1")
        for name in TRACE_HEADERS
        if (key := name.encode()) in headers
    }
    traceparent, baggage = body_trace or (None, None)
    return trace_carrier_from(found, traceparent, baggage)


async def _read_body(receive: Receive) -> tuple[bytes, Message | None]:
    """The whole body, or the disconnect message that cut it short."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"", message
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), None
