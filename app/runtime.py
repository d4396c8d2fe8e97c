"""The running service's parts, built once by the app factory and shared by the routers."""

from __future__ import annotations

from dataclasses import dataclass

from app.config import ApiKey, Settings
from app.core.dlq import DlqService
from app.core.insight_service import InsightService
from app.core.ports import QueueAdapter
from app.core.publisher import Publisher
from app.core.subscriptions import SubscriptionService
from app.core.topics import TopicsService
from app.dispatch.guard import DestinationGuard
from app.dispatch.insight_recorder import InsightRecorder
from app.dispatch.sender import WebhookSender
from app.dispatch.supervisor import Dispatcher
from app.observability.metrics import DispatchMetrics


@dataclass(slots=True)
class Runtime:
    """Everything a request handler may need."""

    settings: Settings
    adapter: QueueAdapter
    publisher: Publisher
    subscriptions: SubscriptionService
    dlq: DlqService
    topics: TopicsService
    sender: WebhookSender
    dispatcher: Dispatcher
    metrics: DispatchMetrics
    guard: DestinationGuard
    api_keys: list[ApiKey]
    insight: InsightService
    recorder: InsightRecorder
