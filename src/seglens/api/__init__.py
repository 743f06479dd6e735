"""The HTTP API (FastAPI): thin adapters over `seglens.services`. See docs/api.md."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["create_app"]

if TYPE_CHECKING:
    from seglens.api.app import create_app


def __getattr__(name: str) -> Any:
    # FastAPI and the services load on first use, not on `import seglens.api`.
    if name == "create_app":
        from seglens.api.app import create_app

        return create_app
    raise AttributeError(f"module 'seglens.api' has no attribute {name!r}")
