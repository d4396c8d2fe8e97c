"""Property tests for the config loader: what is written is what is loaded, and whatever is
wrong fails with one line naming the key, never with another exception.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from app.config import SCOPES, LimitSettings, Settings, load_settings
from app.core.errors import ConfigError

LIMIT_BOUNDS = {
    name: (field.metadata[0].ge, field.metadata[1].le if len(field.metadata) > 1 else 10**15)
    for name, field in LimitSettings.model_fields.items()
}
"""Each limit's allowed range (10**15 stands for "no upper bound")."""
KEY_ALPHABET = st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=",:+")

keys = st.text(KEY_ALPHABET, min_size=8, max_size=40)
scope_sets = st.lists(st.sampled_from(SCOPES), min_size=1, max_size=4, unique=True)
limits = st.fixed_dictionaries(
    {},
    optional={
        name: st.integers(low, min(high, 10**12)) for name, (low, high) in LIMIT_BOUNDS.items()
    },
)
delivery = st.fixed_dictionaries(
    {},
    optional={
        "allow_private_networks": st.booleans(),
        "allowed_hosts": st.lists(
            st.sampled_from(["hooks.internal", "10.0.0.0/8", "::1/128", "127.0.0.1"]),
            unique=True,
        ),
        "max_response_bytes": st.integers(0, 16 * 1024 * 1024),
        "shutdown_grace_ms": st.integers(0, 600_000),
    },
)
auth = st.fixed_dictionaries(
    {},
    optional={
        "api_keys": st.lists(
            st.fixed_dictionaries({"key": keys, "scopes": scope_sets}), max_size=4
        ),
        "protect_metrics": st.booleans(),
        "protect_docs": st.booleans(),
    },
)
logging_section = st.fixed_dictionaries(
    {},
    optional={
        "level": st.sampled_from(["debug", "info", "warning", "error"]),
        "json": st.booleans(),
    },
)
module_configs = st.fixed_dictionaries(
    {},
    optional={
        "limits": limits,
        "delivery": delivery,
        "auth": auth,
        "logging": logging_section,
    },
)


@pytest.fixture(autouse=True)
def _no_hookline_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("HOOKLINE_"):
            monkeypatch.delenv(name)


def load_document(document: Any) -> Settings:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config.yaml"
        path.write_text(document if isinstance(document, str) else yaml.safe_dump(document))
        return load_settings(str(path))


def engine_shape(config: dict[str, Any]) -> dict[str, Any]:
    return {"modules": [{"class": "modules::queue::QueueModule", "config": config}]}


@settings(max_examples=60, deadline=None)
@given(module_configs)
def test_what_is_written_is_what_is_loaded(config: dict[str, Any]) -> None:
    loaded = load_document(engine_shape(config))
    for section in ("limits", "delivery", "auth"):
        for key, value in config.get(section, {}).items():
            got = getattr(getattr(loaded, section), key)
            if key == "api_keys":
                got = [k.model_dump() for k in got]
            assert got == value, (section, key)
    for key, value in config.get("logging", {}).items():
        attribute = "json_format" if key == "json" else key
        assert getattr(loaded.logging, attribute) == value


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(keys, scope_sets), min_size=1, max_size=5))
def test_api_keys_from_the_environment_shortcut(pairs: list[tuple[str, list[str]]]) -> None:
    spec = ",".join(f"{key}:{'+'.join(scopes)}" for key, scopes in pairs)
    parsed = Settings(api_keys=spec).all_api_keys()
    assert [(k.key, list(k.scopes)) for k in parsed] == pairs


def _looks_numeric(text: str) -> bool:
    """Text a lax int parser may read as a number ("+5", " 7", "1_0"): not a bad value."""
    try:
        int(text)
    except ValueError:
        return False
    return True


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(sorted(LIMIT_BOUNDS)),
    st.one_of(
        st.integers(max_value=-1),
        st.integers(min_value=10**13),
        st.text(max_size=5).filter(lambda s: not _looks_numeric(s)),
        st.lists(st.integers(), max_size=2),
    ),
)
def test_a_bad_limit_names_its_key_in_one_line(name: str, bad: Any) -> None:
    low, high = LIMIT_BOUNDS[name]
    if isinstance(bad, int) and bad >= low and (bad <= high or high == 10**15):
        return
    with pytest.raises(ConfigError) as caught:
        load_document(engine_shape({"limits": {name: bad}}))
    message = str(caught.value)
    assert f"limits.{name}" in message
    assert "\n" not in message


@settings(max_examples=40, deadline=None)
@given(st.text(st.characters(min_codepoint=97, max_codepoint=122), min_size=1, max_size=12))
def test_an_unknown_section_is_named(section: str) -> None:
    if section in Settings.model_fields:
        return
    with pytest.raises(ConfigError, match=f"{section}: unknown key"):
        load_document(engine_shape({section: {}}))


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_any_text_loads_or_fails_with_one_line(text: str) -> None:
    message = None
    try:
        load_document(text)
    except ConfigError as error:
        message = str(error)
    if message is not None:
        assert message
        assert "\n" not in message
