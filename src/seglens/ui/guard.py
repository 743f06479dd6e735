"""The token on every route of the web UI: default-deny in front of the Gradio app.

With a token, Gradio's own password check (`auth`) guards most of its routes but not all:
``gradio_api/heartbeat/*`` (an endless stream), ``reset`` and ``cancel`` answered anyone,
and a route a future Gradio adds would be open until someone noticed. So `UiTokenGate`
sits between the mount and the Gradio app and lets a request through only when

- it carries the session cookie Gradio set after a successful login with the token
  (a script logs in the same way: ``POST <ui>/login`` with the token as the password,
  as ``gradio_client`` does with ``auth=``), or
- it is one of the few requests the login page itself needs (`PUBLIC_PATHS`,
  `PUBLIC_PREFIXES`: the page, its scripts and styles, the login form).

Everything else gets 401 (a WebSocket is closed with 1008). Without a token nothing is
checked. The check works the same when the UI is mounted on the API app (``seglens
serve``) and when it runs alone (``seglens ui``).
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse
from starlette.routing import Mount
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["PUBLIC_PATHS", "PUBLIC_PREFIXES", "UiTokenGate", "protect_ui"]

# Paths relative to the mount point that a browser without a session needs to show and
# submit the login page. Only GET/HEAD, except the login form's POST.
PUBLIC_PATHS = frozenset({"", "/", "/login", "/login/", "/theme.css", "/favicon.ico"})
PUBLIC_PREFIXES = ("/assets/", "/static/", "/svelte/")
_MESSAGE = "the web UI needs the token: log in on the page (any user name, the token as the password)"


class UiTokenGate:
    """401 for every request to `app` (a mounted Gradio app with a password) without a
    logged-in session, apart from the login page's own requests."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def _logged_in(self, cookies: dict[str, str]) -> bool:
        """Whether a cookie is a session Gradio issued after a login with the token."""
        cookie_id = getattr(self.app, "cookie_id", None)
        sessions = getattr(self.app, "tokens", None)
        if not cookie_id or not isinstance(sessions, dict):
            return False
        for name in (f"access-token-{cookie_id}", f"access-token-unsecure-{cookie_id}"):
            value = cookies.get(name)
            if value and value in sessions:
                return True
        return False

    def allowed(self, scope: Scope) -> bool:
        """Whether the request in `scope` may reach the Gradio app."""
        headers = dict(scope.get("headers") or [])
        if self._logged_in(_cookies(headers.get(b"cookie", b""))):
            return True
        if scope["type"] != "http":
            return False
        relative = scope["path"][len(scope.get("root_path", "")) :] if _mounted(scope) else scope["path"]
        method = scope.get("method", "GET")
        if relative in ("/login", "/login/") and method == "POST":
            return True
        if method not in ("GET", "HEAD"):
            return False
        return relative in PUBLIC_PATHS or relative.startswith(PUBLIC_PREFIXES)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self.allowed(scope):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        answer = JSONResponse({"error": {"code": "unauthorized", "message": _MESSAGE}}, status_code=401)
        await answer(scope, receive, send)


def _mounted(scope: Scope) -> bool:
    root = scope.get("root_path", "")
    return bool(root) and str(scope.get("path", "")).startswith(root)


def _cookies(raw: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in raw.decode("latin-1").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name not in out:
            out[name] = value.strip().strip('"')
    return out


def protect_ui(app: Any, path: str, token: str | None) -> Any:
    """Put a `UiTokenGate` in front of the app mounted at `path` on `app` (none when
    `token` is empty); returns the mounted (Gradio) app itself. Raises ValueError when
    nothing is mounted there."""
    for route in app.router.routes:
        if isinstance(route, Mount) and route.path == path.rstrip("/"):
            inner = route.app
            if token:
                route.app = UiTokenGate(inner)
            return inner
    raise ValueError(f"no app is mounted at {path!r}")
