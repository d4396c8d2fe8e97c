"""The engine's DLQ example: ``queue.dlq_count`` then ``queue.redrive_dlq`` for a topic.

Run: ``make run``, ``.venv/bin/python -m examples.retries --exit-after 10`` (dead-letters an
order), then ``.venv/bin/python -m examples.dlq order.process``.
"""

from __future__ import annotations

import sys

from hookline import Client


def redrive(client: Client, topic: str) -> tuple[int, int]:
    """How many messages failed on ``topic``, and how many went back to their trigger."""
    count: int = client.call("queue.dlq_count", {"topic": topic})
    redriven = client.call("queue.redrive_dlq", {"topic": topic}) if count else 0
    return count, redriven


if __name__ == "__main__":
    topic = sys.argv[1] if len(sys.argv) > 1 else "order.process"
    with Client() as client:
        count, redriven = redrive(client, topic)
    sys.stdout.write(f"{topic}: {count} in the DLQ, {redriven} redriven\n")
