"""The import graph of ``app/``: no cycle anywhere, and the core depends on no outer layer.

Built from the source with :mod:`ast` (nothing is imported), so a lazy import inside a
function or under ``TYPE_CHECKING`` counts like any other: each is a dependency a reader
has to follow.
"""

from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "app"
OUTER_LAYERS = ("app.adapters", "app.api", "app.dispatch", "app.observability", "app.config")
"""What ``app.core`` must never import: the core is the policy the outer layers plug into."""


def _module_name(path: Path) -> str:
    parts = path.relative_to(APP.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in APP.rglob("*.py")}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The ``app`` modules ``name`` imports (``from pkg import sub`` counts as ``pkg.sub``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {target for target in found if target in known and target != name}


def import_graph() -> dict[str, set[str]]:
    """Every module of ``app`` and the ``app`` modules it imports."""
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (its modules in order, the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)) is not None:
                return cycle
        state[node] = 2
        path.pop()
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)) is not None:
            return cycle
    return None


def test_the_graph_sees_the_imports_it_must_judge() -> None:
    graph = import_graph()
    assert "app.core.models" in graph["app.core.dead_letters"]
    assert "app.core.ports" in graph["app.core.publisher"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_in_app() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_core_imports_no_outer_layer() -> None:
    wrong = [
        f"{name} imports {target}"
        for name, targets in sorted(import_graph().items())
        if name.startswith("app.core.")
        for target in sorted(targets)
        if target.startswith(OUTER_LAYERS)
    ]
    assert not wrong, "; ".join(wrong)


def test_the_api_imports_no_dispatch_internals() -> None:
    wrong = [
        f"{name} imports {target}"
        for name, targets in sorted(import_graph().items())
        if name.startswith("app.api.")
        for target in sorted(targets)
        if target.startswith("app.dispatch")
    ]
    assert not wrong, "; ".join(wrong)
