"""The OpenAPI schema states this server's own limits.

FastAPI builds the schema from the request models, which know the hard limits (core
`GenerationParams`, `QueryParams`); a few limits are settings of the running server, so
`install_openapi` writes them in when the schema is first built:

- ``maximum`` of every value marked ``x-server-limit: max_points_per_side`` (the point grid)
  becomes SEGLENS_MAX_POINTS_PER_SIDE, the limit the services enforce.

Whether the bearer scheme is declared at all follows SEGLENS_API_TOKEN (`create_app` adds
the dependency that declares it only when a token is set).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from seglens.settings import Settings

__all__ = ["install_openapi"]


def install_openapi(app: FastAPI, settings: Settings) -> None:
    """Replace ``app.openapi`` with a builder that writes in `settings`' limits (once)."""
    build: Callable[[], dict[str, Any]] = app.openapi
    limits = {"max_points_per_side": settings.max_points_per_side}

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            _write_limits(build(), limits)
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


def _write_limits(node: Any, limits: dict[str, int]) -> None:
    if isinstance(node, dict):
        name = node.get("x-server-limit")
        if name in limits:
            node["maximum"] = min(node.get("maximum", limits[name]), limits[name])
        for value in node.values():
            _write_limits(value, limits)
    elif isinstance(node, list):
        for value in node:
            _write_limits(value, limits)
