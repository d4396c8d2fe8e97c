"""Every API call as an :class:`~hookline._http.Op`: built once, sent by either client."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from hookline._http import Op, new_idempotency_key
from hookline.errors import HooklineError, NotFound, Unsupported
from hookline.models import (
    BatchItemResult,
    DlqEntry,
    DlqPage,
    MessageInfo,
    PublishResult,
    Subscription,
)

FUNCTIONS = ("queue.enqueue", "queue.dlq_count", "queue.redrive_dlq")


def _seg(value: str) -> str:
    """One path segment, escaped (ids and topics never hold ``/``, but a typo might)."""
    return quote(value, safe="")


def _given(**fields: Any) -> dict[str, Any]:
    """The fields that were given: ``None`` means "server default", so it is not sent."""
    return {k: v for k, v in fields.items() if v is not None}


def _idempotency(key: str | None) -> dict[str, str]:
    return {"Idempotency-Key": key or new_idempotency_key()}


def call(function_id: str, args: Mapping[str, Any], idempotency_key: str | None) -> Op[Any]:
    """``client.call('queue.enqueue' | 'queue.dlq_count' | 'queue.redrive_dlq', args)``."""
    if function_id not in FUNCTIONS:
        raise ValueError(f"unknown function {function_id!r}; hookline has {', '.join(FUNCTIONS)}")
    enqueue = function_id == "queue.enqueue"
    return Op(
        "POST",
        f"/v1/functions/{function_id}",
        lambda body: body,
        body=dict(args),
        headers=_idempotency(idempotency_key) if enqueue else {},
        # A redrive repeated after a lost answer would report a wrong count.
        repeatable=function_id != "queue.redrive_dlq",
    )


def publish(
    topic: str,
    data: Any,
    *,
    delay_ms: int | None,
    headers: Mapping[str, str] | None,
    idempotency_key: str | None,
    extra: Mapping[str, Any] | None,
) -> Op[PublishResult]:
    """``POST /v1/topics/{topic}/messages`` with an ``Idempotency-Key`` (made up if absent)."""
    body = {"data": data, **_given(delay_ms=delay_ms, headers=headers), **(extra or {})}
    return Op(
        "POST",
        f"/v1/topics/{_seg(topic)}/messages",
        PublishResult.from_json,
        body=body,
        headers=_idempotency(idempotency_key),
    )


def publish_batch(topic: str, messages: Sequence[Any]) -> Op[list[BatchItemResult]]:
    """``POST .../messages/batch``; each message without an ``idempotency_key`` gets one.

    ``messages`` are message objects (``{"data", "delay_ms"?, "headers"?,
    "idempotency_key"?}``) or :class:`~hookline.Message`.
    """
    items = []
    for message in messages:
        item = dict(message) if isinstance(message, Mapping) else message.to_json()
        if "data" not in item:
            raise ValueError("each batch message needs a 'data' field")
        item.setdefault("idempotency_key", new_idempotency_key())
        items.append(item)

    def read(body: Any) -> list[BatchItemResult]:
        return [BatchItemResult(str(r["id"]), bool(r["duplicate"])) for r in body["results"]]

    return Op("POST", f"/v1/topics/{_seg(topic)}/messages/batch", read, body={"messages": items})


def get_message(message_id: str) -> Op[MessageInfo]:
    """``GET /v1/messages/{id}``; a 404 for the route itself means an older server."""

    def unsupported(error: HooklineError) -> HooklineError:
        # Starlette's answer for a path no route matches is exactly "Not Found"; hookline's
        # own 404s name what is missing.
        if isinstance(error, NotFound) and error.message == "Not Found":
            return Unsupported(
                "this hookline server has no message lookup (GET /v1/messages/{id}); "
                "upgrade it to use messages.get",
                status=404,
                code="unsupported",
                details=error.details,
                headers=error.headers,
            )
        return error

    return Op(
        "GET", f"/v1/messages/{_seg(message_id)}", MessageInfo.from_json, on_error=unsupported
    )


# -- subscriptions ------------------------------------------------------------------------


def create_subscription(body: dict[str, Any]) -> Op[Subscription]:
    """``POST /v1/subscriptions``: retried only when it surely did not arrive (no
    duplicate subscriptions), unless it names its id (a repeat then answers 409).
    """
    return Op("POST", "/v1/subscriptions", Subscription.from_json, body=body, repeatable=False)


def get_subscription(subscription_id: str) -> Op[Subscription]:
    """``GET /v1/subscriptions/{id}``."""
    return Op("GET", f"/v1/subscriptions/{_seg(subscription_id)}", Subscription.from_json)


def list_subscriptions(topic: str | None) -> Op[list[Subscription]]:
    """``GET /v1/subscriptions[?topic=]``."""
    return Op(
        "GET",
        "/v1/subscriptions",
        lambda body: [Subscription.from_json(s) for s in body["subscriptions"]],
        params=_given(topic=topic),
    )


def replace_subscription(subscription_id: str, body: dict[str, Any]) -> Op[Subscription]:
    """``PUT /v1/subscriptions/{id}``: absent fields go back to their defaults."""
    return Op(
        "PUT", f"/v1/subscriptions/{_seg(subscription_id)}", Subscription.from_json, body=body
    )


def update_subscription(subscription_id: str, body: dict[str, Any]) -> Op[Subscription]:
    """``PATCH /v1/subscriptions/{id}``: only the fields sent change."""
    return Op(
        "PATCH", f"/v1/subscriptions/{_seg(subscription_id)}", Subscription.from_json, body=body
    )


def delete_subscription(subscription_id: str) -> Op[None]:
    """``DELETE /v1/subscriptions/{id}``."""
    return Op("DELETE", f"/v1/subscriptions/{_seg(subscription_id)}", lambda _: None)


def set_paused(subscription_id: str, paused: bool) -> Op[Subscription]:
    """``POST /v1/subscriptions/{id}/pause|resume``."""
    action = "pause" if paused else "resume"
    return Op("POST", f"/v1/subscriptions/{_seg(subscription_id)}/{action}", Subscription.from_json)


def rotate_secret(subscription_id: str, grace_ms: int | None) -> Op[Subscription]:
    """``POST /v1/subscriptions/{id}/rotate-secret [{grace_ms}]``: not repeated after a
    lost answer (a second rotation would retire the secret just issued).
    """
    return Op(
        "POST",
        f"/v1/subscriptions/{_seg(subscription_id)}/rotate-secret",
        Subscription.from_json,
        body=_given(grace_ms=grace_ms),
        repeatable=False,
    )


# -- DLQ ----------------------------------------------------------------------------------


def dlq_count(topic: str, subscription: str | None) -> Op[int]:
    """``GET /v1/topics/{topic}/dlq/count``."""
    return Op(
        "GET",
        f"/v1/topics/{_seg(topic)}/dlq/count",
        lambda body: int(body["count"]),
        params=_given(subscription=subscription),
    )


def dlq_list(
    topic: str, subscription: str | None, limit: int | None, cursor: str | None
) -> Op[DlqPage]:
    """``GET /v1/topics/{topic}/dlq``: one page."""
    params = _given(subscription=subscription, limit=None if limit is None else str(limit))
    params.update(_given(cursor=cursor))
    return Op(
        "GET",
        f"/v1/topics/{_seg(topic)}/dlq",
        lambda body: DlqPage(
            [DlqEntry.from_json(e) for e in body["entries"]], body.get("next_cursor")
        ),
        params=params,
    )


def dlq_redrive(topic: str, subscription: str | None, ids: Sequence[str] | None) -> Op[int]:
    """``POST /v1/topics/{topic}/dlq/redrive``: the number of entries sent back."""
    return Op(
        "POST",
        f"/v1/topics/{_seg(topic)}/dlq/redrive",
        lambda body: int(body["redriven"]),
        body=_given(subscription=subscription, ids=None if ids is None else list(ids)),
        repeatable=False,
    )


def dlq_purge(topic: str, subscription: str | None) -> Op[int]:
    """``DELETE /v1/topics/{topic}/dlq``: the number of entries deleted."""
    return Op(
        "DELETE",
        f"/v1/topics/{_seg(topic)}/dlq",
        lambda body: int(body["purged"]),
        params=_given(subscription=subscription),
        repeatable=False,
    )
