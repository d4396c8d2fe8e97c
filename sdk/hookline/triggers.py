"""Subscriber triggers: the engine's queue handlers, served as signed webhooks.

```python
triggers = Triggers(public_url="http://127.0.0.1:3000")

@triggers.queue("send-email", topic="emails.send", max_retries=5, retry_delay_ms=2000,
                dead_letter_topic="emails.failed")
async def send_email(data, ctx): ...      # raise -> retried; return -> delivered
```

A trigger's name is its subscription id; its route is ``{path_prefix}/{name}``. At start-up
(:meth:`Triggers.mount` on FastAPI/Starlette, the lifespan of :meth:`Triggers.asgi_app`,
or ``await triggers.sync()``) each subscription is created or replaced by id with the
triggers' own secret, pointing at ``public_url`` + the route: registering again is
harmless, and a restart never loses the secret.
"""

from __future__ import annotations

import base64
import builtins
import logging
import os
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar, Unpack

from hookline import _ops
from hookline._asgi import Handler, Receive, Scope, Send, TriggerEndpoint, error, respond
from hookline._http import resolve_key, resolve_url
from hookline.aio import AsyncClient
from hookline.errors import Conflict, HooklineError, NotFound
from hookline.models import Subscription
from hookline.options import SubscriptionOptions, subscription_body

logger = logging.getLogger("hookline.triggers")

H = TypeVar("H", bound=Handler)
_OWN_FIELDS = frozenset({"secret", "url", "topic", "id"})


@dataclass(frozen=True, slots=True)
class Trigger:
    """One declared handler: subscription ``name`` on ``topic``, served at ``path``."""

    name: str
    topic: str
    path: str
    handler: Handler
    options: SubscriptionOptions
    endpoint: TriggerEndpoint


def new_webhook_secret() -> str:
    """A fresh ``whsec_`` secret (32 random bytes)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class Triggers:
    """A set of queue triggers served by one web app.

    ``base_url``/``api_key``: the hookline to register with (default ``HOOKLINE_URL`` /
    ``HOOKLINE_API_KEY``). ``public_url``: where hookline reaches this app (default
    ``HOOKLINE_PUBLIC_URL``). ``secret``: the signing secret every trigger's subscription
    gets and every request is verified with (default ``HOOKLINE_WEBHOOK_SECRET``; without
    one a random secret is made, so registrations change on every restart: set one).
    """

    def __init__(
        self,
        base_url: str | None = None,
        public_url: str | None = None,
        *,
        secret: str | None = None,
        api_key: str | None = None,
        path_prefix: str = "/hooks",
        max_body_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        self._base_url = base_url
        self._public_url = public_url
        self._api_key = api_key
        self.path_prefix = "/" + path_prefix.strip("/") if path_prefix.strip("/") else ""
        self._max_body = max_body_bytes
        given = secret or os.environ.get("HOOKLINE_WEBHOOK_SECRET")
        self._ephemeral_secret = not given
        self.secret = given or new_webhook_secret()
        self._triggers: dict[str, Trigger] = {}

    # -- declaring ----------------------------------------------------------------------

    def queue(
        self,
        name: str,
        *,
        topic: str,
        path: str | None = None,
        **options: Unpack[SubscriptionOptions],
    ) -> Callable[[H], H]:
        """Declare ``handler(data, ctx)`` (or ``handler(data)``) for ``topic``.

        ``options`` are subscription fields (``max_retries``, ``retry_delay_ms``,
        ``dead_letter_topic``, ``condition``, ``payload``, ``ordering``, ...). A return
        answers 200 (delivered), an exception 500 (retried), :class:`hookline.Discard`
        410 (dead-lettered at once).
        """
        clash = _OWN_FIELDS.intersection(options)
        if clash:
            raise TypeError(f"trigger {name!r}: {', '.join(sorted(clash))} is set by Triggers")
        if name in self._triggers:
            raise ValueError(f"trigger {name!r} is declared twice")

        def register(handler: H) -> H:
            route = path or f"{self.path_prefix}/{name}"
            endpoint = TriggerEndpoint(
                name,
                topic,
                handler,
                self.secret,
                payload=options.get("payload", "envelope"),
                max_body_bytes=self._max_body,
            )
            self._triggers[name] = Trigger(name, topic, route, handler, options, endpoint)
            return handler

        return register

    @property
    def triggers(self) -> builtins.list[Trigger]:
        """The declared triggers, in declaration order."""
        return list(self._triggers.values())

    # -- registering --------------------------------------------------------------------

    def public_url(self) -> str:
        """Where hookline reaches this app."""
        url = self._public_url or os.environ.get("HOOKLINE_PUBLIC_URL")
        if not url:
            raise HooklineError(
                "Triggers need public_url= (or HOOKLINE_PUBLIC_URL): the address at which "
                "hookline reaches this app, e.g. http://127.0.0.1:3000",
                code="configuration_error",
            )
        return url.rstrip("/")

    def url_of(self, name: str) -> str:
        """The callback URL of trigger ``name``."""
        return self.public_url() + self._triggers[name].path

    def client(self) -> AsyncClient:
        """A client for the hookline these triggers register with."""
        return AsyncClient(resolve_url(self._base_url), api_key=resolve_key(self._api_key))

    async def sync(self) -> builtins.list[Subscription]:
        """Create or replace each trigger's subscription (by id, with the secret).

        Registering what is already registered leaves it as it was; a subscription an
        operator paused stays paused unless the trigger says ``paused=``. A trigger whose
        topic changed raises :class:`hookline.Conflict` (delete the subscription first:
        its pending messages are on the old topic).
        """
        if self._ephemeral_secret:
            logger.warning(
                "no HOOKLINE_WEBHOOK_SECRET: signing with a random secret that changes on "
                "every restart"
            )
        async with self.client() as client:
            return [await self._register(client, t) for t in self._triggers.values()]

    async def _register(self, client: AsyncClient, trigger: Trigger) -> Subscription:
        body = subscription_body(
            trigger.options, topic=trigger.topic, url=self.url_of(trigger.name)
        )
        body["secret"] = self.secret
        try:
            current = await client.subscriptions.get(trigger.name)
        except NotFound:
            try:
                created = await client.send(_ops.create_subscription({"id": trigger.name, **body}))
            except Conflict:  # another instance created it meanwhile: replace it below
                current = await client.subscriptions.get(trigger.name)
            else:
                logger.info("trigger %s registered on %s", trigger.name, trigger.topic)
                return created
        if current.topic != trigger.topic:
            raise Conflict(
                f"trigger {trigger.name!r} is declared on topic {trigger.topic!r} but its "
                f"subscription is on {current.topic!r}: a topic cannot change; delete the "
                f"subscription {trigger.name!r} to register it again",
                status=409,
                code="topic_changed",
            )
        body.setdefault("paused", current.paused)
        replaced = await client.send(_ops.replace_subscription(trigger.name, body))
        logger.info("trigger %s re-registered on %s", trigger.name, trigger.topic)
        return replaced

    # -- serving ------------------------------------------------------------------------

    def asgi_app(self) -> TriggersApp:
        """An ASGI app serving every trigger's route; its lifespan start-up runs
        :meth:`sync` (for frameworks other than Starlette/FastAPI, or on its own).
        """
        return TriggersApp(self)

    def mount(self, app: Any) -> None:
        """Add one ``POST`` route per trigger to a FastAPI/Starlette ``app`` and run
        :meth:`sync` at its start-up (after the app's own lifespan start-up). Declare
        every trigger before mounting.
        """
        for trigger in self._triggers.values():
            app.add_route(trigger.path, trigger.endpoint, methods=["POST"])
        router = app.router
        original: Callable[[Any], AbstractAsyncContextManager[Any]] = router.lifespan_context

        @asynccontextmanager
        async def lifespan(app_: Any) -> AsyncIterator[Any]:
            async with original(app_) as state:
                await self.sync()
                yield state

        router.lifespan_context = lifespan


class TriggersApp:
    """The triggers' routes as one ASGI app (see :meth:`Triggers.asgi_app`)."""

    def __init__(self, triggers: Triggers) -> None:
        self.triggers = triggers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Route by path; run :meth:`Triggers.sync` at lifespan start-up."""
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        for trigger in self.triggers.triggers:
            if trigger.path == path:
                await trigger.endpoint(scope, receive, send)
                return
        await respond(send, 404, error("not_found", f"no trigger at {path}"))

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.triggers.sync()
                except Exception as exc:
                    logger.exception("registering the triggers failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
