"""A database path that cannot work stops ``check-config`` and ``serve`` with one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.process import free_port, write_config
from tests.sqlite.mounts import remount_read_only, tmpfs

pytestmark = pytest.mark.slow


def run(command: str, config: Path) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "app.cli", command, "--config", str(config)]
    if command == "serve":
        args += ["--port", str(free_port())]
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def corrupt(tmp_path: Path) -> str:
    path = tmp_path / "corrupt.db"
    path.write_bytes(b"this is not a database, just text " * 200)
    return str(path)


def unwritable(tmp_path: Path) -> str:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    return str(blocker / "data" / "hookline.db")  # its directory would sit under a file


def read_only(tmp_path: Path) -> str:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    return str(folder / "hookline.db")


CASES = {
    "corrupt file": (corrupt, "not a usable SQLite database"),
    "directory under a file": (unwritable, "cannot create its directory"),
    "directory is read-only": (read_only, "cannot open"),
}


@pytest.mark.parametrize("command", ["check-config", "serve"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_path_is_one_line_at_start(tmp_path: Path, command: str, case: str) -> None:
    make, expected = CASES[case]
    if case == "directory is read-only" and os.geteuid() == 0:
        pytest.skip("root writes into read-only directories")
    path = make(tmp_path)
    config = write_config(tmp_path / "config.yaml", "modules::queue::SqliteAdapter", {"path": path})
    result = run(command, config)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("hookline: config error: adapter.config: path "), lines[0]
    assert expected in lines[0], lines[0]


def test_read_only_file_is_one_line_at_start(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", "4m") as folder:
        path = folder / "hookline.db"
        config = write_config(
            tmp_path / "config.yaml", "modules::queue::SqliteAdapter", {"path": str(path)}
        )
        assert run("check-config", config).returncode == 0  # creates it
        remount_read_only(folder)
        for command in ("check-config", "serve"):
            result = run(command, config)
            assert result.returncode == 2, result.stderr
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1, result.stderr
            assert "adapter.config: path " in lines[0], lines[0]
            assert "read" in lines[0], lines[0]


def test_unknown_key_and_bad_value_are_one_line(tmp_path: Path) -> None:
    for adapter, expected in (
        ({"pth": "x.db"}, "adapter.config.pth: unknown key"),
        (
            {"synchronous": "sometimes"},
            "adapter.config.synchronous: Input should be 'normal' or 'full'",
        ),
    ):
        config = write_config(tmp_path / "config.yaml", "modules::queue::SqliteAdapter", adapter)
        result = run("check-config", config)
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1, result.stderr
        assert expected in result.stderr


def test_a_good_path_is_created(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "hookline.db"
    config = write_config(
        tmp_path / "config.yaml", "modules::queue::SqliteAdapter", {"path": str(path)}
    )
    result = run("check-config", config)
    assert result.returncode == 0, result.stderr
    assert "adapter sqlite" in result.stdout
    assert path.exists()
