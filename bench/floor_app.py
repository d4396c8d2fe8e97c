"""The publish floor: a raw ASGI app on uvicorn (uvloop + httptools), nothing else.

It decodes the same bodies hookline's publish routes take (``{"data": ...}`` and
``{"messages": [...]}``) with msgspec (orjson when msgspec is missing), checks their shape,
and answers 202 with a fixed small JSON body: what one core can do for "accept a message"
before any queueing, validation framework or storage. ``python -m bench.floor_app --port P``.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import Any

try:
    import msgspec

    class Message(msgspec.Struct, forbid_unknown_fields=True):
        """One message, as hookline's ``MessageIn``."""

        data: Any
        delay_ms: int = 0
        headers: dict[str, str] | None = None

    class Batch(msgspec.Struct, forbid_unknown_fields=True):
        """A batch, as hookline's ``BatchIn``."""

        messages: list[Message]

    _single = msgspec.json.Decoder(Message).decode
    _batch = msgspec.json.Decoder(Batch).decode
    DECODER = "msgspec"
except ImportError:  # pragma: no cover - the bench says which decoder it measured
    import orjson

    def _single(raw: bytes) -> Any:
        value = orjson.loads(raw)
        if not isinstance(value, dict) or "data" not in value:
            raise ValueError("no data")
        return value

    def _batch(raw: bytes) -> Any:
        value = orjson.loads(raw)
        if not isinstance(value, dict) or not isinstance(value.get("messages"), list):
            raise ValueError("no messages")
        return value

    DECODER = "orjson"

ACCEPTED = b'{"id":"01JD0000000000000000000000","topic":"bench","duplicate":false}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(ACCEPTED))]
BAD = b'{"error":{"code":"validation_error","message":"bad body"}}'

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """Read the body, decode it, answer 202 (or 422)."""
    if scope["type"] != "http":
        return
    chunks = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    raw = b"".join(chunks)
    status, body = 202, ACCEPTED
    try:
        (_batch if scope["path"].endswith("/batch") else _single)(raw)
    except Exception:
        status, body = 422, BAD
    headers = HEADERS if body is ACCEPTED else [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    """Serve :func:`app` on 127.0.0.1."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
