"""Imports point inward only (docs/architecture.md). Checked on every import statement,
including imports inside functions."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "seglens"

# package -> seglens packages it must never import
FORBIDDEN = {
    "core": {"models", "services", "storage", "api", "ui", "llm", "cli", "settings"},
    "models": {"services", "storage", "api", "ui", "llm", "cli"},
    "storage": {"services", "api", "ui", "llm", "cli"},
    "llm": {"services", "storage", "api", "ui", "cli", "models"},
    "services": {"api", "ui", "cli"},
    "api": {"ui", "cli"},
    "ui": {"services", "storage", "models", "api", "llm"},
}
CORE_THIRD_PARTY = {"numpy", "PIL", "pycocotools"}


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _modules():
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        if len(rel.parts) > 1 and rel.parts[0] in FORBIDDEN and "migrations" not in rel.parts:
            yield pytest.param(path, rel.parts[0], id=str(rel))


@pytest.mark.parametrize(("path", "package"), list(_modules()))
def test_imports_point_inward(path, package):
    bad = []
    for name in _imports(path):
        parts = name.split(".")
        if parts[0] == "seglens" and len(parts) > 1 and parts[1] in FORBIDDEN[package]:
            bad.append(name)
        if package == "core" and parts[0] != "seglens":
            top = parts[0]
            if top not in CORE_THIRD_PARTY and top not in sys.stdlib_module_names and top != "__future__":
                bad.append(name)
    assert not bad, f"{path.relative_to(SRC)} imports {bad}"
