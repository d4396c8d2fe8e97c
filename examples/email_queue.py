"""The engine's email queue: ``send-email`` on ``emails.send`` (5 retries, 2 s apart at
first, dead letters to ``emails.failed``) and ``log-failed-emails`` on ``emails.failed``.

An address that can never work is refused with :class:`hookline.Discard`: it goes to the
dead-letter topic at once instead of being retried for a minute.

Run: ``make run``, then ``.venv/bin/python -m examples.email_queue``.
"""

from __future__ import annotations

import logging
from typing import Any

from hookline import AsyncClient, Discard, Triggers

logger = logging.getLogger("examples.email_queue")
triggers = Triggers()


@triggers.queue(
    "send-email",
    topic="emails.send",
    max_retries=5,
    retry_delay_ms=2000,
    dead_letter_topic="emails.failed",
)
def send_email(data: Any) -> None:
    """A blocking SMTP call is fine: plain functions run in a thread."""
    if "@" not in data["to"]:
        raise Discard(f"invalid address {data['to']!r}")
    logger.info("Sent %r to %s", data["subject"], data["to"])


@triggers.queue("log-failed-emails", topic="emails.failed")
async def log_failed_emails(data: Any) -> None:
    """Every email that could not be sent."""
    logger.info("Email to %s failed", data["to"])


async def demo(client: AsyncClient) -> None:
    """One good address, one impossible one."""
    await client.publish("emails.send", {"to": "ada@example.com", "subject": "Welcome"})
    await client.publish("emails.send", {"to": "nobody", "subject": "Welcome"})


if __name__ == "__main__":
    from examples._run import main

    main(triggers, demo)
