"""The exported spec in ``openapi/openapi.json`` must match the code."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

import pytest
from pydantic import BaseModel, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from app.api import schemas
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


# -- bounds: what the spec says is what the validator does ---------------------------------

_STANDARD = {
    "ge": "minimum",
    "le": "maximum",
    "gt": "exclusiveMinimum",
    "lt": "exclusiveMaximum",
    "pattern": "pattern",
}
_NON_STANDARD = {"ge", "le", "gt", "lt", "min_length", "max_length", "multiple_of"}
_SPEC_BOUNDS = {
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "pattern",
}


def _spec() -> dict[str, Any]:
    spec: dict[str, Any] = json.loads((ROOT / DEFAULT_OPENAPI_PATH).read_text())
    return spec


def _models() -> list[type[BaseModel]]:
    return [
        value
        for value in vars(schemas).values()
        if isinstance(value, type) and issubclass(value, BaseModel) and value is not BaseModel
    ]


def _validator_bounds(annotation: Any, metadata: list[Any]) -> dict[str, Any]:
    """Every bound pydantic enforces on a field, wherever it is declared (on the field,
    or inside an ``Annotated`` alias in a union), named as JSON Schema names it.
    """
    found: dict[str, Any] = {}
    kind = "string"
    pending: list[Any] = [*metadata]
    stack = [annotation]
    while stack:
        current = stack.pop()
        if get_origin(current) is Annotated:
            base, *extra = get_args(current)
            stack.append(base)
            pending.extend(extra)
        elif get_origin(current) in (Union, UnionType):
            stack.extend(get_args(current))
        elif current in (int, float):
            kind = "number"
        elif get_origin(current) is list:
            kind = "array"
    while pending:
        item = pending.pop()
        pending.extend(getattr(item, "metadata", []) if hasattr(item, "annotation") else [])
        for attr, name in _STANDARD.items():
            if getattr(item, attr, None) is not None:
                found[name] = getattr(item, attr)
        for attr, suffix in (("min_length", "Min"), ("max_length", "Max")):
            if getattr(item, attr, None) is not None:
                name = f"{suffix.lower()}Items" if kind == "array" else f"{suffix.lower()}Length"
                found[name] = getattr(item, attr)
    return found


def _spec_bounds(schema: dict[str, Any]) -> dict[str, Any]:
    branches = [b for b in schema.get("anyOf", [schema]) if b.get("type") != "null"]
    found: dict[str, Any] = {}
    for branch in branches:
        found.update({k: v for k, v in branch.items() if k in _SPEC_BOUNDS})
    return found


def test_spec_uses_only_standard_keywords() -> None:
    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if where.endswith(".properties"):
                    walk(value, f"{where}.{key}")
                    continue
                assert key not in _NON_STANDARD, f"non-standard keyword {key!r} at {where}"
                walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{where}[{index}]")

    walk(_spec(), "spec")


def test_every_field_bound_in_the_spec_is_the_validators() -> None:
    components = _spec()["components"]["schemas"]
    compared = 0
    for model in _models():
        if model.__name__ not in components:
            continue
        properties = components[model.__name__].get("properties", {})
        for name, field in model.model_fields.items():
            expected = _validator_bounds(field.annotation, list(field.metadata))
            if name not in properties:
                continue
            actual = _spec_bounds(properties[name])
            if "pattern" in expected and "pattern" not in actual:
                actual["pattern"] = None
            assert actual == expected, f"{model.__name__}.{name}: spec {actual} != {expected}"
            compared += 1
    assert compared > 50


def test_numeric_bounds_in_the_spec_are_enforced_exactly() -> None:
    components = _spec()["components"]["schemas"]
    probed = 0
    for model in _models():
        properties = components.get(model.__name__, {}).get("properties", {})
        for name, field in model.model_fields.items():
            bounds = _spec_bounds(properties.get(name, {}))
            if not {"minimum", "maximum"} & set(bounds):
                continue
            annotation = (
                Annotated[(field.annotation, *field.metadata)]
                if field.metadata
                else field.annotation
            )
            adapter: TypeAdapter[Any] = TypeAdapter(
                annotation,
                config=model.model_config if model.model_config.get("strict") else None,
            )
            step = 1 if "integer" in json.dumps(properties[name]) else 0.001
            for bound, outside in (("minimum", -step), ("maximum", step)):
                if bound in bounds:
                    adapter.validate_python(bounds[bound])
                    with pytest.raises(PydanticValidationError):
                        adapter.validate_python(bounds[bound] + outside)
                    probed += 1
    assert probed >= 10


def test_spec_states_the_header_rules_the_server_applies() -> None:
    headers = _spec()["components"]["schemas"]["SubscriptionIn"]["properties"]["headers"]
    [rules] = [b for b in headers["anyOf"] if b.get("type") == "object"]
    name_pattern = rules["propertyNames"]["pattern"]
    value_pattern = rules["additionalProperties"]["pattern"]
    names = ["x-a", "X-Tenant", "Content-Type", "content-TYPE", "WEBHOOK-ID", "traceparent"]
    names += ["Host", "hosts", "x a", "", "a" * 65, "user-agent-x"]
    values = ["v", "a b", "a\tb", "", " a", "a ", "a\x7f", "a\x01", "caf\u00e9", "\u4e2d", "a\r\nb"]
    for name in names:
        spec_allows = re.fullmatch(name_pattern, name) is not None
        try:
            schemas.SubscriptionPatch.model_validate({"headers": {name: "v"}})
            server_allows = True
        except PydanticValidationError:
            server_allows = False
        assert spec_allows == server_allows, name
    for value in values:
        spec_allows = re.fullmatch(value_pattern, value) is not None
        try:
            schemas.SubscriptionPatch.model_validate({"headers": {"x-a": value}})
            server_allows = True
        except PydanticValidationError:
            server_allows = False
        assert spec_allows == server_allows, repr(value)
    dead_letter_topic = _spec()["components"]["schemas"]["SubscriptionIn"]["properties"][
        "dead_letter_topic"
    ]
    assert "must differ from `topic`" in dead_letter_topic["description"]
    assert "dead_letter_cycle" in dead_letter_topic["description"]
