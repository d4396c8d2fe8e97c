"""hookline's Python SDK: a publishing client and subscriber triggers.

```python
from hookline import Client, Triggers
Client().call("queue.enqueue", {"topic": "user.created", "data": {"id": "u_1"}})
```
"""

from hookline._http import RetrySettings
from hookline.aio import AsyncClient
from hookline.client import Client
from hookline.context import Discard, MessageContext
from hookline.errors import (
    Conflict,
    Forbidden,
    HooklineConnectionError,
    HooklineError,
    NotFound,
    Unauthorized,
    Unavailable,
    Unsupported,
    ValidationFailed,
)
from hookline.models import (
    Attempt,
    BatchItemResult,
    DlqEntry,
    DlqPage,
    LastError,
    Message,
    MessageDelivery,
    MessageInfo,
    PublishResult,
    RetryPolicy,
    Subscription,
)
from hookline.options import SubscriptionOptions
from hookline.triggers import Trigger, Triggers, TriggersApp, new_webhook_secret

__version__ = "0.1.0"

__all__ = [
    "AsyncClient",
    "Attempt",
    "BatchItemResult",
    "Client",
    "Conflict",
    "Discard",
    "DlqEntry",
    "DlqPage",
    "Forbidden",
    "HooklineConnectionError",
    "HooklineError",
    "LastError",
    "Message",
    "MessageContext",
    "MessageDelivery",
    "MessageInfo",
    "NotFound",
    "PublishResult",
    "RetryPolicy",
    "RetrySettings",
    "Subscription",
    "SubscriptionOptions",
    "Trigger",
    "Triggers",
    "TriggersApp",
    "Unauthorized",
    "Unavailable",
    "Unsupported",
    "ValidationFailed",
    "new_webhook_secret",
]
