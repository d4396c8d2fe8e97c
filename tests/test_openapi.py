"""The exported spec in ``openapi/openapi.json`` must match the code."""

from __future__ import annotations

from pathlib import Path

from app.cli import DEFAULT_OPENAPI_PATH, render_openapi

ROOT = Path(__file__).resolve().parent.parent


def test_exported_spec_is_current() -> None:
    exported = (ROOT / DEFAULT_OPENAPI_PATH).read_text()
    assert exported == render_openapi(), (
        "openapi/openapi.json is stale: run `hookline openapi` and commit the result"
    )


def test_spec_declares_every_route_and_the_bearer_scheme() -> None:
    import json

    spec = json.loads(render_openapi())
    paths = set(spec["paths"])
    for path in (
        "/v1/topics/{topic}/messages",
        "/v1/topics/{topic}/messages/batch",
        "/v1/enqueue",
        "/v1/functions/{function_id}",
        "/v1/subscriptions",
        "/v1/subscriptions/{subscription_id}",
        "/v1/subscriptions/{subscription_id}/pause",
        "/v1/subscriptions/{subscription_id}/resume",
        "/v1/subscriptions/{subscription_id}/rotate-secret",
        "/v1/topics/{topic}/dlq",
        "/v1/topics/{topic}/dlq/count",
        "/v1/topics/{topic}/dlq/redrive",
        "/v1/topics",
        "/v1/topics/{topic}",
        "/healthz",
        "/readyz",
        "/metrics",
    ):
        assert path in paths, path
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
