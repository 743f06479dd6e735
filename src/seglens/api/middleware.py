"""ASGI middleware: request ids, JSON access logs, and a cap on request body size.

Pure ASGI (no `BaseHTTPMiddleware`), so streaming responses (server-sent events,
downloads) pass through untouched.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from typing import Any

from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from seglens.services.logcontext import bind

__all__ = ["RequestContextMiddleware"]

log = logging.getLogger("seglens.access")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class _TooLarge(HTTPException):
    """Raised from `receive` once the body passes the limit. An HTTPException, so that
    FastAPI's body parsing passes it through to the JSON error handler unchanged."""

    def __init__(self, limit: int):
        super().__init__(413, f"the request body is larger than the limit of {limit:,} bytes")


def _error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


class RequestContextMiddleware:
    """Gives every request an id (the client's ``X-Request-ID`` when it is a short safe
    token, else a new one), echoes it in the response, puts it in the log context, logs
    one access line per request, and answers 413 once a body passes `max_body_bytes`."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int):
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        supplied = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = supplied if _SAFE_ID.match(supplied) else uuid.uuid4().hex[:16]
        started = time.perf_counter()
        state: dict[str, Any] = {"status": None, "received": 0}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        async def counted_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > self.max_body_bytes:
                    raise _TooLarge(self.max_body_bytes)
            return message

        with bind(request_id=request_id):
            declared = headers.get(b"content-length", b"")
            try:
                if declared.isdigit() and int(declared) > self.max_body_bytes:
                    await self._reject(scope, receive, send_with_id)
                else:
                    await self.app(scope, counted_receive, send_with_id)
            except _TooLarge:
                if state["status"] is None:
                    await self._reject(scope, receive, send_with_id)
            finally:
                log.info(
                    "request",
                    extra={
                        "fields": {
                            "method": scope.get("method"),
                            "path": scope.get("path"),
                            "status": state["status"],
                            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                        }
                    },
                )

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = _error_body(
            "request_too_large", f"the request body is larger than the limit of {self.max_body_bytes:,} bytes"
        )
        await Response(body, status_code=413, media_type="application/json")(scope, receive, send)
