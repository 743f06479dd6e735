"""The OpenAPI schema states this server's own limits.

FastAPI builds the schema from the request models, which know the hard limits (core
`GenerationParams`, `QueryParams`); a few limits are settings of the running server, so
`install_openapi` writes them in when the schema is first built:

- ``maximum`` of every value marked ``x-server-limit: max_points_per_side`` (the point grid)
  becomes SEGLENS_MAX_POINTS_PER_SIDE, the limit the services enforce.

It also writes what OpenAPI's one-by-one parameter lists cannot say: an operation marked
``x-exclusive-query: {"job_id": [], "image_id": ["query"]}`` takes exactly one of the
named query parameters (each with the ones listed after it), so its query parameters
become one object parameter (``style: form, explode: true``: the same query string) whose
schema says so with ``anyOf`` and ``not``.

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
            schema = build()
            _write_limits(schema, limits)
            for item in schema.get("paths", {}).values():
                for operation in item.values():
                    _exclusive_query(operation)
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


def _exclusive_query(operation: dict[str, Any]) -> None:
    choices: dict[str, list[str]] | None = operation.pop("x-exclusive-query", None)
    if not choices:
        return
    query = [p for p in operation.get("parameters", []) if p.get("in") == "query"]
    properties = {p["name"]: _not_null(p["schema"]) for p in query}
    variants = [
        {
            "type": "object",
            "properties": properties,
            "required": [name, *needs],
            "not": {"anyOf": [{"required": [other]} for other in choices if other != name]},
        }
        for name, needs in choices.items()
    ]
    described = ", ".join(
        f"`{name}`" + "".join(f" with `{n}`" for n in needs) for name, needs in choices.items()
    )
    operation["parameters"] = [p for p in operation.get("parameters", []) if p.get("in") != "query"] + [
        {
            "name": "params",
            "in": "query",
            "required": True,
            "style": "form",
            "explode": True,
            "description": f"The query parameters: exactly one of {described}.",
            "schema": {"anyOf": variants},
        }
    ]


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent or a value: drop ``null`` from ``anyOf [X, null]``."""
    options = [o for o in schema.get("anyOf", []) if o.get("type") != "null"]
    if len(options) != 1:
        return schema
    rest = {k: v for k, v in schema.items() if k != "anyOf"}
    return {**options[0], **rest}
