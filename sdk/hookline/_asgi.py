"""One trigger's webhook route, as a bare ASGI app (no web framework needed).

Per request: verify the Standard Webhooks signature (401 and the handler never runs when
it is forged, missing or stale), rebuild ``data`` and the context, run the handler in a
span continuing the request's ``traceparent``, answer 2xx / 5xx / 410.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from standardwebhooks.webhooks import Webhook

from hookline import _tracing
from hookline.context import Discard, MessageContext, parse_baggage

logger = logging.getLogger("hookline.triggers")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Handler = Callable[..., Any]
"""``(data, ctx)`` or ``(data)``; ``async def`` or a plain function (run in a thread)."""


def webhook_for(secret: str) -> Webhook:
    """A verifier keyed as hookline signs: base64 after ``whsec_``, else the UTF-8 bytes."""
    return Webhook(secret if secret.startswith("whsec_") else secret.encode())


async def respond(
    send: Send, status: int, body: Any, headers: dict[str, str] | None = None
) -> None:
    """Send a JSON answer."""
    raw = json.dumps(body).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    head += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": raw})


def error(code: str, message: str) -> dict[str, Any]:
    """The error shape of hookline, so the DLQ's ``body_excerpt`` reads like the API's."""
    return {"error": {"code": code, "message": message}}


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or ``None`` once it exceeds ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _takes_context(handler: Handler) -> bool:
    """Whether ``handler`` wants ``(data, ctx)`` rather than the engine's bare ``(data)``."""
    try:
        params = inspect.signature(handler).parameters.values()
    except (TypeError, ValueError):
        return True
    positional = [
        p
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
    ]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in positional)


@dataclass(frozen=True, slots=True)
class Delivery:
    """A verified request, unpacked."""

    data: Any
    context: MessageContext


def unpack(trigger: str, topic: str, payload: str, body: Any, headers: dict[str, str]) -> Delivery:
    """``data`` and the context from an envelope (or a bare ``payload="data"`` body)."""
    envelope = body if payload == "envelope" and isinstance(body, dict) else None
    source = envelope or {}
    attempt = source.get("attempt")
    published = source.get("published_at")
    context = MessageContext(
        message_id=str(source.get("id") or headers.get("webhook-id", "")),
        trigger=trigger,
        topic=str(source.get("topic") or topic),
        attempt=attempt if isinstance(attempt, int) else None,
        headers=headers,
        published_at=published if isinstance(published, int) else None,
        traceparent=headers.get("traceparent") or source.get("traceparent"),
        baggage=parse_baggage(headers.get("baggage") or source.get("baggage")),
        message_headers=dict(source.get("headers") or {}),
        dead_letter=source.get("dead_letter"),
        envelope=envelope,
    )
    return Delivery(source.get("data") if envelope is not None else body, context)


class TriggerEndpoint:
    """The ASGI app of one trigger: mount it at the trigger's path, ``POST`` only."""

    def __init__(
        self,
        name: str,
        topic: str,
        handler: Handler,
        secret: str,
        payload: str = "envelope",
        max_body_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        self.name = name
        self.topic = topic
        self.handler = handler
        self.payload = payload
        self._verifier = webhook_for(secret)
        self._with_context = _takes_context(handler)
        self._max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Verify, run the handler, answer."""
        if scope["type"] != "http":
            return
        if scope["method"] != "POST":
            await respond(send, 405, error("method_not_allowed", "POST only"), {"Allow": "POST"})
            return
        body = await read_body(receive, self._max_body)
        if body is None:
            await respond(send, 413, error("payload_too_large", "body too large"))
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            self._verifier.verify(body, headers, json_parse=False)
        except Exception as exc:  # noqa: BLE001 - the library raises several kinds on bad input
            logger.warning(
                "trigger %s: refused a request: %s", self.name, exc or type(exc).__name__
            )
            await respond(
                send, 401, error("invalid_signature", "signature missing, forged or stale")
            )
            return
        try:
            delivery = unpack(self.name, self.topic, self.payload, json.loads(body), headers)
        except ValueError:
            await respond(send, 400, error("bad_request", "body is not JSON"))
            return
        status, answer = await self._run(delivery)
        await respond(send, status, answer)

    async def _run(self, delivery: Delivery) -> tuple[int, Any]:
        ctx = delivery.context
        attributes: dict[str, Any] = {
            "messaging.system": "hookline",
            "messaging.destination.name": ctx.topic,
            "messaging.message.id": ctx.message_id,
            "messaging.consumer.group.name": ctx.trigger,
        }
        if ctx.attempt is not None:
            attributes["hookline.attempt"] = ctx.attempt
        with _tracing.handler_span(f"{ctx.topic} handle", ctx.headers, attributes):
            try:
                await self._call(delivery)
            except Discard as exc:
                logger.info("trigger %s discarded message %s: %s", ctx.trigger, ctx.message_id, exc)
                return 410, error("discarded", str(exc) or "discarded by the handler")
            except Exception as exc:
                logger.exception("trigger %s failed on message %s", ctx.trigger, ctx.message_id)
                _tracing.record_exception(exc)
                return 500, error("handler_error", f"{type(exc).__name__}: {exc}"[:1000])
        return 200, {"status": "delivered"}

    async def _call(self, delivery: Delivery) -> None:
        args = (delivery.data, delivery.context) if self._with_context else (delivery.data,)
        if inspect.iscoroutinefunction(self.handler):
            await self.handler(*args)
            return
        result = await asyncio.to_thread(self.handler, *args)  # copies the span's context
        if inspect.isawaitable(result):
            await result
