"""Imports point inward only and never go round in a circle (docs/architecture.md).

Checked on every import statement, including imports inside functions and under
``if TYPE_CHECKING:``: a lazy or type-only import still couples two modules.
"""

from __future__ import annotations

import ast
import sys
from functools import cache
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "seglens"

# package (or top-level module) -> seglens packages and modules it must never import
FORBIDDEN = {
    "core": {"models", "services", "storage", "api", "ui", "llm", "cli", "settings"},
    "models": {"services", "storage", "api", "ui", "llm", "cli", "settings"},
    "storage": {"services", "api", "ui", "llm", "cli", "settings"},
    "llm": {"services", "storage", "api", "ui", "cli", "models"},
    "settings": {"models", "services", "storage", "api", "ui", "llm", "cli"},
    "services": {"api", "ui", "cli"},
    "api": {"ui", "cli"},
    "ui": {"services", "storage", "models", "api", "llm", "cli"},
}
# The innermost modules: they import nothing of SegLens, and every layer may import them.
LEAVES = {"_version", "errors"}
CORE_THIRD_PARTY = {"numpy", "PIL", "pycocotools"}

# Known circles still to be broken, each a set of modules a circle may lie within (none).
ALLOWED_CYCLES: list[set[str]] = []


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def _all_modules() -> dict[str, Path]:
    return {
        _module_name(p): p for p in sorted(SRC.rglob("*.py")) if "migrations" not in p.relative_to(SRC).parts
    }


def _imports(path: Path) -> list[str]:
    """Every module an import statement of `path` names (absolute; ``from a import b``
    names ``a``, and ``a.b`` too when that is a module)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    modules = _all_modules()
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names.extend(
                f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules
            )
    return names


def _layer(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _modules():
    for path in _all_modules().values():
        yield pytest.param(path, _layer(path), id=str(path.relative_to(SRC)))


@pytest.mark.parametrize(("path", "package"), list(_modules()))
def test_imports_point_inward(path, package):
    bad = []
    for name in _imports(path):
        parts = name.split(".")
        if parts[0] != "seglens":
            top = parts[0]
            if package == "core" and top not in CORE_THIRD_PARTY | {"__future__"} | sys.stdlib_module_names:
                bad.append(name)
            continue
        if len(parts) == 1 or parts[1] == "cli":
            bad.append(f"{name} (upward: the package facade and the CLI are the top)")
        elif package in LEAVES:
            bad.append(f"{name} (a leaf module imports nothing of SegLens)")
        elif parts[1] in FORBIDDEN.get(package, ()):
            bad.append(name)
    assert not bad, f"{path.relative_to(SRC)} imports {bad}"


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(component)

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph)))
    try:
        for node in sorted(graph):
            if node not in index:
                visit(node)
    finally:
        sys.setrecursionlimit(limit)
    return found


def test_no_import_cycles_between_modules():
    modules = _all_modules()
    graph = {
        name: {target for target in _imports(path) if target in modules and target != name}
        for name, path in modules.items()
    }
    cycles = [sorted(c) for c in _cycles(graph) if not any(c <= allowed for allowed in ALLOWED_CYCLES)]
    assert not cycles, f"modules that import each other (directly or round a circle): {cycles}"


def test_the_cycle_finder_finds_a_circle_and_ignores_a_chain():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
