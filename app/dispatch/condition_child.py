"""An evaluator process for costly conditions: JSON lines in, JSON lines out.

The ``cel`` package holds the GIL while evaluating, so a thread cannot keep the event loop
free; a process can, and can be killed when it runs over its time. Run by
:mod:`app.dispatch.condition_pool` as ``python -m app.dispatch.condition_child``.
Request: ``{"source", "data", "topic", "headers"}``; reply: ``{"ok": bool}`` or
``{"error": str}``. It exits at the end of its input, and when its parent dies.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
from typing import Any

import cel

from app.core.conditions import ConditionEvaluationError, evaluate

_PR_SET_PDEATHSIG = 1
_CACHE_SIZE = 256


def _die_with_parent(parent: int) -> None:
    """Linux: be killed when the parent exits, even in the middle of an evaluation."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        sys.exit(0)


def _answer(request: dict[str, Any], programs: dict[str, Any]) -> dict[str, Any]:
    source = request["source"]
    program = programs.get(source)
    if program is None:
        if len(programs) >= _CACHE_SIZE:
            programs.clear()
        program = programs[source] = cel.compile(source)
    try:
        return {"ok": evaluate(program, request["data"], request["topic"], request["headers"])}
    except ConditionEvaluationError as exc:
        return {"error": str(exc)}


def main() -> None:
    """Serve requests from stdin until it closes."""
    if len(sys.argv) > 1:
        _die_with_parent(int(sys.argv[1]))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when this ends
    programs: dict[str, Any] = {}
    out = sys.stdout
    out.write('{"ready": true}\n')
    out.flush()
    for line in sys.stdin:
        try:
            reply = _answer(json.loads(line), programs)
        except Exception as exc:  # noqa: BLE001 - any failure is this message's error
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
