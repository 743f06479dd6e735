"""Public definitions state their contract in a docstring. Checked where the whole layer
or module is documented; widen `DOCUMENTED` as more of the package gets there."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "seglens"

DOCUMENTED = [
    "core",
    "storage",
    "errors.py",
    "_version.py",
    "models/protocols.py",
    "models/registry.py",
    "models/specs.py",
    "models/amg.py",
    "services/errors.py",
    "services/jobs/service.py",
    "services/jobs/types.py",
    "services/jobs/worker.py",
    "services/jobs/reports.py",
    "services/segment/images.py",
    "services/jobs/headless.py",
    "services/jobs/executors/__init__.py",
    "services/jobs/executors/ray_actor.py",
]
# Storage of the assistant's conversations is the assistant's to document.
SKIPPED = {"storage/conversations_repo.py"}


def _undocumented(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    missing = []

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                if node.name.startswith("_"):
                    continue
                if ast.get_docstring(node) is None and not _is_property_of_protocol(node, prefix):
                    missing.append(f"{prefix}{node.name}")
                if isinstance(node, ast.ClassDef):
                    visit(node.body, f"{node.name}.")

    visit(tree.body, "")
    return missing


def _is_property_of_protocol(node: ast.AST, prefix: str) -> bool:
    # A protocol's read-only attribute, a property whose body is ``...``: its class
    # documents it.
    body = getattr(node, "body", [])
    return (
        bool(prefix)
        and any(isinstance(d, ast.Name) and d.id == "property" for d in getattr(node, "decorator_list", ()))
        and len(body) == 1
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and body[0].value.value is Ellipsis
    )


def _files():
    for entry in DOCUMENTED:
        target = SRC / entry
        for path in sorted(target.rglob("*.py")) if target.is_dir() else [target]:
            rel = str(path.relative_to(SRC))
            if rel not in SKIPPED and "migrations" not in path.parts:
                yield path


def test_public_definitions_have_docstrings():
    missing = {str(p.relative_to(SRC)): names for p in _files() if (names := _undocumented(p))}
    assert not missing
