"""Structured logs: one JSON object per line, carrying the request and job in context.

`bind(request_id=..., job_id=...)` sets context for the current thread or task (HTTP
handlers run in worker threads that inherit it); every record logged inside carries it.
Extra fields go through ``log.info("...", extra={"fields": {...}})``.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import IO, Any

from seglens.services.redaction import RedactingFormatter

__all__ = ["JsonFormatter", "bind", "configure_logging", "current"]

_CONTEXT: ContextVar[dict[str, str]] = ContextVar("seglens_log_context", default={})  # noqa: B039


def current() -> dict[str, str]:
    return dict(_CONTEXT.get())


@contextmanager
def bind(**fields: str | None) -> Iterator[None]:
    """Add fields (None values are ignored) to the log context for the duration of the block."""
    token = _CONTEXT.set({**_CONTEXT.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message", <context>, <fields>, "exc"}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_CONTEXT.get())
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(
    level: str = "info", fmt: str = "json", *, secrets: Iterable[str] = (), stream: IO[str] | None = None
) -> None:
    """Route every logger (uvicorn's, httpx's and gradio's included) to `stream` (stderr),
    as JSON lines or plain text, with credentials redacted from every line: the literal
    `secrets` and anything that looks like one (`seglens.services.redaction`)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    inner = (
        JsonFormatter()
        if fmt == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handler.setFormatter(RedactingFormatter(inner, secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # Alembic announces every plugin and migration step at INFO.
    logging.getLogger("alembic").setLevel(max(root.level, logging.WARNING))
