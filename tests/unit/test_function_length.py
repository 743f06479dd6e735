"""Every function (and method) of the package is under 100 lines, decorators included:
a longer one is split, not allowed."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "seglens"
MAX_LINES = 100


def _long_functions(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno is not None:
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                lines = node.end_lineno - start + 1
                if lines >= MAX_LINES:
                    found.append(f"{path.relative_to(root)}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_every_function_is_under_100_lines():
    assert not _long_functions(SRC)


def test_the_check_counts_decorators_and_body(tmp_path):
    body = "\n".join(f"    x{n} = {n}" for n in range(97))
    (tmp_path / "m.py").write_text(f"@decorator\ndef long():\n{body}\n")
    assert _long_functions(tmp_path) == []  # 99 lines
    (tmp_path / "m.py").write_text(f"@decorator\n@another\ndef long():\n{body}\n")
    assert _long_functions(tmp_path) == ["m.py:3 long (100 lines)"]
