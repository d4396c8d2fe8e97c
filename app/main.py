"""The app factory and its lifespan: build the parts, start them, stop them gracefully."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI
from pydantic import ValidationError

from app import __version__
from app.adapters.factory import build
from app.api import dlq, functions, insight, messages, ops, subscriptions, topics
from app.api.docs import install_docs
from app.api.errors import (
    BodyLimitMiddleware,
    HeaderLimitMiddleware,
    install_error_handlers,
)
from app.api.fastpublish import FastPublisher, FastPublishMiddleware, HooklineApp
from app.api.schemas import ErrorOut, SubscriptionIn
from app.api.subscription_mapping import new_subscription
from app.api.whoami import router as whoami_router
from app.config import Settings
from app.core.dead_letters import DeadLetterCycleError, find_cycle
from app.core.dlq import DlqService
from app.core.errors import AdapterError, ConfigError
from app.core.insight_service import InsightService
from app.core.models import Subscription
from app.core.ports import InsightAdapter, QueueAdapter
from app.core.publisher import Publisher
from app.core.subscriptions import SubscriptionRuleError, SubscriptionService
from app.core.topics import TopicsService
from app.dispatch.condition_pool import ConditionPool
from app.dispatch.context import DeliveryContext
from app.dispatch.guard import DestinationGuard
from app.dispatch.insight_recorder import InsightRecorder
from app.dispatch.payload import USER_AGENT
from app.dispatch.resolver import GuardedResolver
from app.dispatch.sender import WebhookSender
from app.dispatch.supervisor import Dispatcher
from app.observability.metrics import DispatchMetrics
from app.observability.tracing import instrument
from app.runtime import Runtime
from app.ui import install_console

logger = logging.getLogger("hookline")

DESCRIPTION = (
    "Publish JSON messages to topics over HTTP; hookline delivers each to every matching "
    "webhook subscription, signed (Standard Webhooks), retried with backoff, dead-lettered "
    "when it keeps failing."
)


def static_subscriptions(settings: Settings, guard: DestinationGuard) -> list[Subscription]:
    """The ``subscriptions:`` of config.yaml, validated like API bodies.

    Unlike the API, a static subscription without ``secret`` is not signed: its secret
    would otherwise change at every start.
    """
    result = []
    for index, raw in enumerate(settings.subscriptions):
        where = f"subscriptions[{index}]"
        try:
            body = SubscriptionIn.model_validate(raw)
            if not body.id:
                raise ConfigError(f"{where}.id: static subscriptions need an id")
            subscription = new_subscription(body.id, body.topic, body, guard=guard)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            raise ConfigError(f"{where}.{loc}: {first['msg']}") from exc
        except SubscriptionRuleError as exc:
            raise ConfigError(f"{where}: {exc.message}") from exc
        if "secret" not in body.model_fields_set:
            subscription = subscription.with_changes(secret=None)
        result.append(subscription)
    for index, subscription in enumerate(result):
        cycle = find_cycle(subscription, result)
        if cycle is not None:
            raise ConfigError(
                f"subscriptions[{index}].dead_letter_topic: {DeadLetterCycleError(cycle)}"
            )
    return result


def build_runtime(settings: Settings, adapter: QueueAdapter | None = None) -> Runtime:
    """Wire the parts together (nothing is started yet)."""
    guard = DestinationGuard(
        settings.delivery.allow_private_networks, settings.delivery.allowed_hosts
    )
    if adapter is None:
        adapter = build(settings.adapter)
    metrics = DispatchMetrics(settings.observability.max_label_values)
    publisher = Publisher(adapter, settings.limits.idempotency_ttl_ms, metrics)
    insight_settings = settings.insight.to_settings()
    insight_adapter = adapter if isinstance(adapter, InsightAdapter) else None
    store = (
        insight_adapter.insight_store(insight_settings)
        if insight_adapter is not None and insight_settings.enabled
        else None
    )
    recorder = InsightRecorder(store, insight_settings, metrics)
    if store is not None:
        publisher.on_published = recorder.messages
    sender = WebhookSender(
        USER_AGENT,
        max_connections=settings.delivery.max_connections,
        max_connections_per_destination=settings.delivery.max_connections_per_destination,
        max_response_bytes=settings.delivery.max_response_bytes,
        resolver=GuardedResolver(guard),
    )
    context = DeliveryContext(
        adapter=adapter,
        sender=sender,
        publisher=publisher,
        metrics=metrics,
        conditions=ConditionPool(),
        guard=guard,
        max_dead_letter_hops=settings.delivery.max_dead_letter_hops,
        insight=recorder if store is not None else None,
    )
    dispatcher = Dispatcher(context, shutdown_grace_s=settings.delivery.shutdown_grace_ms / 1000)
    service = SubscriptionService(adapter, on_change=dispatcher.changed_here)
    insight_service = InsightService(insight_adapter, store, service, publisher, metrics)
    service.on_paused_changed = insight_service.paused_changed
    dispatcher.on_trip = insight_service.pause_automatically
    return Runtime(
        settings=settings,
        adapter=adapter,
        publisher=publisher,
        subscriptions=service,
        dlq=DlqService(adapter),
        topics=TopicsService(adapter, adapter),
        sender=sender,
        dispatcher=dispatcher,
        metrics=metrics,
        guard=guard,
        api_keys=settings.all_api_keys(),
        insight=insight_service,
        recorder=recorder,
    )


async def _apply_static(runtime: Runtime, statics: list[Subscription]) -> None:
    """Register config.yaml's subscriptions, retrying while the backend is down."""
    delay = 0.5
    while True:
        try:
            await runtime.subscriptions.apply_static(statics)
        except AdapterError as exc:
            logger.warning("cannot register static subscriptions yet: %s", exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10)
        else:
            return


def create_app(settings: Settings | None = None, adapter: QueueAdapter | None = None) -> FastAPI:
    """Build the FastAPI app; raises :class:`ConfigError` for a bad configuration."""
    settings = settings or Settings()
    runtime = build_runtime(settings, adapter)
    statics = static_subscriptions(settings, runtime.guard)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if not runtime.api_keys:
            logger.warning(
                "NO API KEYS CONFIGURED: the API is open to anyone who can reach it. "
                "Set auth.api_keys in config.yaml or HOOKLINE_API_KEYS before exposing it."
            )
        await runtime.adapter.start()
        if runtime.recorder.store is not None:
            await runtime.recorder.store.open()
        runtime.recorder.start()
        await runtime.sender.start()
        static_task = asyncio.create_task(_apply_static(runtime, statics))
        runtime.dispatcher.start()
        logger.info(
            "hookline %s started",
            __version__,
            extra={"adapter": runtime.adapter.name, "static_subscriptions": len(statics)},
        )
        try:
            yield
        finally:
            logger.info("shutting down: finishing in-flight deliveries")
            static_task.cancel()
            with suppress(asyncio.CancelledError):
                await static_task
            await runtime.dispatcher.stop()
            await runtime.recorder.stop()
            if runtime.recorder.store is not None:
                await runtime.recorder.store.close()
            await runtime.sender.close()
            await runtime.adapter.close()
            logger.info("stopped")

    hide_docs = settings.auth.protect_docs
    app = HooklineApp(
        title="hookline",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served from the package by install_docs, not from a CDN
        redoc_url=None,
        openapi_url=None if hide_docs else "/openapi.json",
        # The request limits apply before any route: every operation can answer them
        # (415: a compressed body; on routes with a body, also one not declared as JSON).
        responses={413: {"model": ErrorOut}, 415: {"model": ErrorOut}, 431: {"model": ErrorOut}},
    )
    app.state.runtime = runtime
    install_error_handlers(app)
    if app.openapi_url is not None:
        install_docs(app, app.openapi_url)
    for module in (messages, insight, subscriptions, dlq, topics, functions, ops):
        app.include_router(module.router)
    app.include_router(whoami_router)
    install_console(app)
    fast = FastPublisher(runtime, app.exception_handlers)
    app.fast_publish = fast  # serves publishes before the whole stack (no spans recorded)
    # Added first, so it runs inside the request limits below (the last added is outermost):
    # the fast path while spans are recorded (inside the server-span middleware).
    app.add_middleware(FastPublishMiddleware, fast=fast)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.limits.max_body_bytes)
    app.add_middleware(
        HeaderLimitMiddleware,
        max_headers=settings.limits.max_headers,
        max_header_bytes=settings.limits.max_header_bytes,
    )
    instrument(app)
    return app
