"""The ``hookline`` command: serve, publish, openapi, check-config."""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app import __version__
from app.config import Settings, load_settings
from app.core.errors import ConfigError

DEFAULT_OPENAPI_PATH = "openapi/openapi.json"
WORKER_HEALTHCHECK_S = 30
"""How long a ``--workers`` supervisor waits for a worker's health answer before replacing it."""


def app_from_env() -> Any:
    """Factory used by uvicorn workers (``--workers N``): settings from HOOKLINE_CONFIG + env.

    Runs in each worker process, so this is where a worker ties its life to the supervisor.
    """
    from app.api.http_server import server_options
    from app.gc_policy import settle_heap
    from app.main import create_app
    from app.observability.logging import setup_logging
    from app.observability.tracing import configure_tracing
    from app.parent_watch import exit_with_supervisor

    settings = load_settings()
    setup_logging(settings.logging.level, settings.logging.json_format)
    # An orphaned worker would keep serving and consuming with no supervisor: follow it.
    exit_with_supervisor(grace_s=settings.delivery.shutdown_grace_ms / 1000 + 10)
    server_options(settings.limits)  # this worker's protocol class gets the configured bound
    configure_tracing()
    app = create_app(settings)
    settle_heap()
    return app


def _fail(message: str) -> int:
    sys.stderr.write(f"hookline: {message}\n")
    return 2


def _load(config: str | None) -> Settings:
    if config:
        os.environ["HOOKLINE_CONFIG"] = config
    return load_settings(config)


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the HTTP API and the dispatcher."""
    import uvicorn

    from app.api.http_server import server_options
    from app.gc_policy import settle_heap
    from app.main import create_app
    from app.observability.logging import setup_logging
    from app.observability.tracing import configure_tracing

    settings = _load(args.config)
    if args.workers > 1 and settings.adapter.kind == "builtin":
        return _fail(
            "--workers > 1 needs a shared backend: the builtin adapter keeps messages inside "
            "one process. Use modules::queue::SqliteAdapter, RedisAdapter or RabbitMQAdapter."
        )
    setup_logging(settings.logging.level, settings.logging.json_format)
    if args.workers == 1:
        configure_tracing()  # with several workers, each one does it in app_from_env
    common: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": max(1, settings.delivery.shutdown_grace_ms // 1000 + 1),
        "server_header": False,
        **server_options(settings.limits),
    }
    if args.workers > 1:
        uvicorn.run(
            "app.cli:app_from_env",
            factory=True,
            workers=args.workers,
            # A worker answers the supervisor's health pings only once its interpreter is up;
            # uvicorn's 5 s default kills and respawns workers forever on a loaded host.
            timeout_worker_healthcheck=WORKER_HEALTHCHECK_S,
            **common,
        )
    else:
        app = create_app(settings)  # fails on a bad static subscription, before binding
        settle_heap()
        uvicorn.run(app, **common)
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    """POST one message to a running hookline."""
    try:
        data = json.loads(args.data)
    except json.JSONDecodeError as exc:
        return _fail(f"DATA is not valid JSON: {exc}")
    body = json.dumps({"data": data, "delay_ms": args.delay_ms}).encode()
    url = f"{args.url.rstrip('/')}/v1/topics/{args.topic}/messages"
    headers = {"Content-Type": "application/json"}
    key = args.api_key or os.environ.get("HOOKLINE_API_KEY")
    if key:
        headers["Authorization"] = f"Bearer {key}"
    if args.idempotency_key:
        headers["Idempotency-Key"] = args.idempotency_key
    request = urllib.request.Request(url, body, headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            sys.stdout.write(response.read().decode() + "\n")
    except urllib.error.HTTPError as exc:
        sys.stderr.write(exc.read().decode() + "\n")
        return 1
    except urllib.error.URLError as exc:
        return _fail(f"cannot reach {args.url}: {exc.reason}")
    return 0


def render_openapi() -> str:
    """The OpenAPI document of the default app, as written to ``openapi/openapi.json``."""
    from app.main import create_app

    spec = create_app(Settings()).openapi()
    return json.dumps(spec, indent=2, sort_keys=True) + "\n"


def cmd_openapi(args: argparse.Namespace) -> int:
    """Write (or print) the OpenAPI spec."""
    text = render_openapi()
    if args.output == "-":
        sys.stdout.write(text)
    else:
        path = Path(args.output)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        sys.stdout.write(f"wrote {path}\n")
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate the configuration and say what it selects."""
    from app.main import create_app

    settings = _load(args.config)
    create_app(settings)
    sys.stdout.write(
        f"config ok: adapter {settings.adapter.kind}, {len(settings.subscriptions)} static "
        f"subscription(s), {len(settings.all_api_keys())} API key(s)\n"
    )
    return 0


def _port(text: str) -> int:
    """A TCP port, 0-65535 (0: any free one; the OS would take 99999 as 34463 without a
    word).
    """
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0-65535, not {port}")
    return port


def _at_least(minimum: int) -> Callable[[str], int]:
    """An integer option of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {value}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests)."""
    parser = argparse.ArgumentParser(
        prog="hookline", description="HTTP message queue with webhooks"
    )
    parser.add_argument("--version", action="version", version=f"hookline {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the API and the dispatcher")
    serve.add_argument("--config", help="path to config.yaml (default ./config.yaml)")
    serve.add_argument("--host", default=os.environ.get("HOOKLINE_HOST", "127.0.0.1"))
    # A string default goes through the type too: a bad HOOKLINE_PORT is a usage error.
    serve.add_argument("--port", type=_port, default=os.environ.get("HOOKLINE_PORT", "8080"))
    serve.add_argument(
        "--workers", type=_at_least(1), default=1, help="processes (shared backends only)"
    )
    serve.set_defaults(func=cmd_serve)

    publish = sub.add_parser("publish", help="publish one message to a running hookline")
    publish.add_argument("topic")
    publish.add_argument("data", help="the message data, as JSON")
    publish.add_argument("--url", default=os.environ.get("HOOKLINE_URL", "http://127.0.0.1:8080"))
    publish.add_argument("--api-key")
    publish.add_argument("--delay-ms", type=_at_least(0), default=0)
    publish.add_argument("--idempotency-key")
    publish.set_defaults(func=cmd_publish)

    openapi = sub.add_parser("openapi", help="write the OpenAPI spec")
    openapi.add_argument(
        "--output", "-o", default=DEFAULT_OPENAPI_PATH, help="path, or - for stdout"
    )
    openapi.set_defaults(func=cmd_openapi)

    check = sub.add_parser("check-config", help="validate config.yaml and the environment")
    check.add_argument("--config")
    check.set_defaults(func=cmd_check_config)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hookline`` console script."""
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except ConfigError as exc:
        return _fail(f"config error: {exc}")
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
