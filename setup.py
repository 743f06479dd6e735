"""Packaging hook: the wheel carries a copy of ``docs/*.md`` as ``seglens/_docs``, so the
AI assistant's user guide (seglens.services.assistant.guide) is the same whether SegLens
runs from a checkout or from an installed wheel. Everything else is in pyproject.toml."""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

DOCS = Path(__file__).resolve().parent / "docs"


class build_py_with_docs(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False) or not DOCS.is_dir():
            return  # an editable install reads the checkout's docs/ directly
        target = Path(self.build_lib) / "seglens" / "_docs"
        target.mkdir(parents=True, exist_ok=True)
        for page in sorted(DOCS.glob("*.md")):
            shutil.copy2(page, target / page.name)


setup(cmdclass={"build_py": build_py_with_docs})
