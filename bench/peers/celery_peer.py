"""Celery 5 + Redis as a webhook queue, run inside the bench's own Celery venv.

The task POSTs the message to the receiver (``acks_late``, retried with a countdown on a
non-2xx answer or a connection error, ``max_retries`` retries after the first attempt, like
hookline). Configured from the environment: ``BENCH_BROKER`` (a dedicated Redis db),
``BENCH_QUEUE``, ``BENCH_RECEIVER`` (the URL to POST to), ``BENCH_RETRY_S``.

``python -m bench.peers.celery_peer produce --n N --run RUN`` enqueues N tasks; the worker is
``python -m celery -A bench.peers.celery_peer worker -P threads|prefork -c C -Q $BENCH_QUEUE``.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import urllib3
from celery import Celery

from bench.common import make_data

BROKER = os.environ.get("BENCH_BROKER", "redis://127.0.0.1:6379/14")
QUEUE = os.environ.get("BENCH_QUEUE", "bench")
RECEIVER = os.environ.get("BENCH_RECEIVER", "http://127.0.0.1:9/h/celery")
RETRY_S = float(os.environ.get("BENCH_RETRY_S", "0.1"))
MAX_RETRIES = int(os.environ.get("BENCH_MAX_RETRIES", "2"))

app = Celery("bench_celery", broker=BROKER)
app.conf.update(
    task_acks_late=True,
    task_ignore_result=True,
    task_default_queue=QUEUE,
    worker_prefetch_multiplier=int(os.environ.get("BENCH_PREFETCH", "4")),
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    task_serializer="json",
)
http = urllib3.PoolManager(maxsize=128, retries=False, timeout=urllib3.Timeout(10))


@app.task(
    name="bench.deliver", bind=True, acks_late=True, max_retries=MAX_RETRIES, ignore_result=True
)
def deliver(self, message_id: str, body: str) -> None:
    """POST one message; a failure is retried with a countdown, then the task fails."""
    headers = {"Content-Type": "application/json", "webhook-id": message_id}
    try:
        response = http.request("POST", RECEIVER, body=body.encode(), headers=headers)
    except urllib3.exceptions.HTTPError as exc:
        raise self.retry(exc=exc, countdown=RETRY_S) from exc
    if not 200 <= response.status < 300:
        raise self.retry(countdown=RETRY_S)


def produce(n: int, run: str, first: int = 0) -> None:
    started = time.monotonic()
    with app.producer_or_acquire() as producer:
        for seq in range(first, first + n):
            message_id = f"celery-{run}-{seq}"
            body = json.dumps(
                {"id": message_id, "topic": "bench.peer", "data": make_data(seq), "attempt": 1},
                separators=(",", ":"),
            )
            deliver.apply_async((message_id, body), producer=producer, queue=QUEUE)
    print(json.dumps({"produced": n, "seconds": time.monotonic() - started}), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["produce"])
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--run", required=True)
    args = parser.parse_args()
    produce(args.n, args.run, args.first)
