"""Publishing: one confirmed, persistent message per published message, to the topic exchange.

The broker copies it into the queue of every subscription bound to the topic then
(fan-out). A delayed message carries its due time; each subscription's copy goes through
the delay ladder when its consumer first sees it, so fan-out still happens now.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.adapters.kit.codec import encode_envelope
from app.adapters.rabbitmq import codec
from app.adapters.rabbitmq.connection import BrokerConnection, Outbound
from app.adapters.rabbitmq.names import NameSpace
from app.core.models import now_ms
from app.core.ports import OutgoingMessage


class MessageWriter:
    """Stores published messages for every current subscription of their topic."""

    def __init__(self, connection: BrokerConnection, names: NameSpace) -> None:
        """Publishes on the connection's current session."""
        self._conn = connection
        self._names = names

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        """Publish each message, confirmed; raise the first failure.

        A batch is not atomic in AMQP: on failure some messages may have been accepted,
        and a client retry duplicates them (at-least-once).
        """
        session = await self._conn.session()
        now = now_ms()
        outbound = []
        for message in messages:
            due = message.deliver_at_ms
            headers = {codec.DUE: due} if due is not None and due > now else None
            outbound.append(
                Outbound(
                    self._names.topics,
                    message.envelope.topic,
                    encode_envelope(message.envelope),
                    codec.properties(headers),
                    mandatory=False,
                )
            )
        for result in await session.publish_each(outbound):
            if result is not None:
                raise result
