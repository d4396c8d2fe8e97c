"""A key hookline does not read is an error naming it, never a silent default.

The trap: the seed ``config.yaml`` with its indentation lost puts the adapter at the top
level, the QueueModule keeps no ``config:``, and hookline used to run the in-memory adapter
while its author believed Redis was configured.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.config import load_settings
from app.core.errors import ConfigError

pytestmark = pytest.mark.slow

MODULE = "modules:\n  - class: modules::queue::QueueModule\n"
INDENTATION_LOST = (
    MODULE + "config:\nadapter:\nclass: modules::queue::RedisAdapter\nconfig:\n"
    "redis_url: redis://localhost:6379\n"
)

BAD = {
    "indentation lost": (INDENTATION_LOST, "adapter: unknown top-level key"),
    "unknown top-level key": (MODULE + "    config: {}\nlimits: {}\n", "limits: unknown top-level"),
    "module without config": (MODULE, "modules[0].config: missing"),
    "module with empty config": (MODULE + "    config:\n", "modules[0].config: missing"),
    "unknown key in the module": (
        MODULE + "    config: {}\n    adapter: {class: modules::queue::RedisAdapter}\n",
        "modules[0].adapter: unknown key",
    ),
    "unknown key in the module's config": (
        MODULE + "    config:\n      deliveries: {}\n",
        "deliveries: unknown key",
    ),
    "module config half-indented": (
        MODULE + "    config:\n      adapter:\n      redis_url: redis://localhost:6379\n",
        "redis_url: not read here; write it as adapter.config.redis_url",
    ),
    "no queue module": (
        "modules:\n  - class: modules::queue::QueueModul\n    config: {}\n",
        "no modules::queue::QueueModule entry (found: modules::queue::QueueModul)",
    ),
    "two queue modules": (MODULE + "    config: {}\n" + MODULE[9:] + "    config: {}\n", "second"),
}

ADAPTER_TYPO = (
    MODULE + "    config:\n      adapter:\n        class: modules::queue::BuiltinQueueAdapter\n"
    "        config: {max_message: 10}\n"
)


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("case", sorted(BAD))
def test_load_refuses_and_names_the_key(tmp_path: Path, case: str) -> None:
    text, expected = BAD[case]
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text))
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)


def test_an_empty_config_block_still_means_every_default(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, MODULE + "    config: {}\n"))
    assert settings.adapter.kind == "builtin"


def hookline(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("command", ["check-config", "serve"])
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        BAD["indentation lost"],
        BAD["module without config"],
        BAD["unknown key in the module's config"],
        (ADAPTER_TYPO, "adapter.config.max_message: unknown key"),
    ],
    ids=["indentation-lost", "no-module-config", "unknown-module-key", "adapter-typo"],
)
def test_cli_refuses_in_one_line(tmp_path: Path, command: str, text: str, expected: str) -> None:
    extra = ["--port", "0"] if command == "serve" else []
    result = hookline(command, "--config", write(tmp_path, text), *extra)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("hookline: config error:")
    assert expected in line
