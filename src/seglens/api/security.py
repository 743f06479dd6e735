"""The optional bearer token (SEGLENS_API_TOKEN): one comparison, in constant time.

It is checked twice on purpose: `BearerAuthMiddleware` refuses a request under ``/api/``
before its body is read (so an anonymous client cannot make the server spool a large
upload), and the `require_token` dependency declares the scheme in OpenAPI and guards
routers used without the middleware. The token is never logged.
"""

from __future__ import annotations

import hmac

from pydantic import SecretStr
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["UNAUTHORIZED_MESSAGE", "BearerAuthMiddleware", "token_matches"]

UNAUTHORIZED_MESSAGE = "this server needs a bearer token: send 'Authorization: Bearer <SEGLENS_API_TOKEN>'"


def token_matches(authorization: str | None, expected: SecretStr) -> bool:
    """Whether an ``Authorization`` header value carries the expected bearer token."""
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        given = ""
    return hmac.compare_digest(given.strip().encode(), expected.get_secret_value().encode())


class BearerAuthMiddleware:
    """401 for any request under `prefix` without the token (CORS preflights pass, and so
    do GET and HEAD requests for a path in `open_paths`, whose handler decides what an
    anonymous client may see)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: SecretStr,
        prefix: str = "/api/",
        open_paths: frozenset[str] = frozenset(),
    ):
        self.app = app
        self.token = token
        self.prefix = prefix
        self.open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or not scope["path"].startswith(self.prefix)
            or scope["method"] == "OPTIONS"
            or (scope["method"] in ("GET", "HEAD") and scope["path"] in self.open_paths)
        ):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if token_matches(headers.get(b"authorization", b"").decode("latin-1"), self.token):
            await self.app(scope, receive, send)
            return
        answer = JSONResponse(
            {"error": {"code": "unauthorized", "message": UNAUTHORIZED_MESSAGE}},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
        await answer(scope, receive, send)
