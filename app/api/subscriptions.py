"""Subscriptions: the HTTP form of the engine's queue triggers."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query, Response

from app.api.deps import RuntimeDep, require_scope
from app.api.errors import ApiError
from app.api.insight import with_health
from app.api.schemas import (
    ID_PATTERN,
    ErrorOut,
    RotateSecretIn,
    SubscriptionIn,
    SubscriptionList,
    SubscriptionOut,
    SubscriptionPatch,
    SubscriptionReplace,
)
from app.api.strict_json import StrictJsonRoute
from app.api.subscription_mapping import apply_fields, new_subscription, to_out
from app.core.ids import new_subscription_id
from app.core.models import Subscription
from app.core.signing import DEFAULT_ROTATION_GRACE_MS
from app.core.topics import TOPIC_PATTERN
from app.runtime import Runtime

router = APIRouter(
    route_class=StrictJsonRoute,
    prefix="/v1/subscriptions",
    tags=["subscriptions"],
    dependencies=[Depends(require_scope("subscriptions"))],
    responses={
        401: {"model": ErrorOut},
        403: {"model": ErrorOut},
        404: {"model": ErrorOut},
        409: {"model": ErrorOut},
        422: {"model": ErrorOut},
        503: {"model": ErrorOut},
    },
)

logger = logging.getLogger("hookline.api")

SubscriptionId = Annotated[str, Path(pattern=ID_PATTERN)]


@router.post("", status_code=201, summary="Create a subscription")
async def create_subscription(body: SubscriptionIn, runtime: RuntimeDep) -> SubscriptionOut:
    """Register a callback URL on a topic; the secret is shown in clear this once."""
    subscription = new_subscription(
        body.id or new_subscription_id(), body.topic, body, guard=runtime.guard
    )
    created = await runtime.subscriptions.create(subscription)
    return to_out(created, reveal_secret=True)


@router.get("", summary="List subscriptions")
async def list_subscriptions(
    runtime: RuntimeDep,
    topic: Annotated[str | None, Query(pattern=TOPIC_PATTERN)] = None,
) -> SubscriptionList:
    """All subscriptions, or those of ``topic``."""
    subs = await runtime.subscriptions.find(topic)
    shown = [(s, out) for s in subs if (out := _listed(s, runtime)) is not None]
    return SubscriptionList(subscriptions=await with_health(runtime, shown))


def _listed(subscription: Subscription, runtime: Runtime) -> SubscriptionOut | None:
    """One stored subscription that cannot be shown must not hide all the others."""
    try:
        return _shown(subscription, runtime)
    except Exception:
        logger.exception("subscription %r cannot be shown; left out of the list", subscription.id)
        return None


@router.get("/{subscription_id}", summary="Get a subscription")
async def get_subscription(subscription_id: SubscriptionId, runtime: RuntimeDep) -> SubscriptionOut:
    """One subscription (secret masked), with its endpoint health."""
    subscription = await runtime.subscriptions.get(subscription_id)
    [shown] = await with_health(runtime, [(subscription, _shown(subscription, runtime))])
    return shown


def _shown(subscription: Subscription, runtime: Runtime) -> SubscriptionOut:
    """The API view, with this instance's adaptive concurrency window."""
    window = runtime.dispatcher.concurrency_window(subscription.id)
    return to_out(subscription, concurrency_window=window)


@router.put("/{subscription_id}", summary="Replace a subscription")
async def replace_subscription(
    subscription_id: SubscriptionId, body: SubscriptionReplace, runtime: RuntimeDep
) -> SubscriptionOut:
    """Full replacement: absent fields return to defaults; the secret and the paused state
    are kept unless sent (they are state, not a definition a client re-sends).
    """
    current = await runtime.subscriptions.get(subscription_id)
    if body.topic != current.topic:
        raise ApiError(409, "conflict", "a subscription's topic cannot change")
    replacement = new_subscription(subscription_id, body.topic, body, guard=runtime.guard)
    if "paused" not in body.model_fields_set:
        replacement = replacement.with_changes(paused=current.paused)
    if "secret" not in body.model_fields_set:
        replacement = replacement.with_changes(
            secret=current.secret,
            previous_secret=current.previous_secret,
            previous_secret_expires_at=current.previous_secret_expires_at,
        )
    return to_out(await runtime.subscriptions.replace(replacement))


@router.patch("/{subscription_id}", summary="Change some fields of a subscription")
async def patch_subscription(
    subscription_id: SubscriptionId, body: SubscriptionPatch, runtime: RuntimeDep
) -> SubscriptionOut:
    """Only the fields sent change."""
    current = await runtime.subscriptions.get(subscription_id)
    updated = apply_fields(current, body, guard=runtime.guard)
    return to_out(await runtime.subscriptions.replace(updated))


@router.delete("/{subscription_id}", status_code=204, summary="Delete a subscription")
async def delete_subscription(subscription_id: SubscriptionId, runtime: RuntimeDep) -> Response:
    """Remove it and its pending messages; its DLQ entries stay until purged."""
    await runtime.subscriptions.delete(subscription_id)
    return Response(status_code=204)


@router.post("/{subscription_id}/pause", summary="Pause delivery")
async def pause_subscription(
    subscription_id: SubscriptionId, runtime: RuntimeDep
) -> SubscriptionOut:
    """Stop delivering; messages published meanwhile wait for resume."""
    return to_out(await runtime.subscriptions.set_paused(subscription_id, True))


@router.post("/{subscription_id}/resume", summary="Resume delivery")
async def resume_subscription(
    subscription_id: SubscriptionId, runtime: RuntimeDep
) -> SubscriptionOut:
    """Deliver again, starting with what waited."""
    return to_out(await runtime.subscriptions.set_paused(subscription_id, False))


@router.post("/{subscription_id}/rotate-secret", summary="Rotate the signing secret")
async def rotate_secret(
    subscription_id: SubscriptionId,
    runtime: RuntimeDep,
    body: Annotated[RotateSecretIn | None, Body()] = None,
) -> SubscriptionOut:
    """A new secret, shown in clear this once. The old one keeps signing too for
    ``grace_ms`` (default 24 h; the body is optional) so receivers can switch at leisure.
    """
    grace_ms = DEFAULT_ROTATION_GRACE_MS if body is None else body.grace_ms
    rotated = await runtime.subscriptions.rotate_secret(subscription_id, grace_ms)
    return to_out(rotated, reveal_secret=True)
