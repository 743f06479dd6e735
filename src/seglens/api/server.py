"""Run the app under uvicorn (``seglens serve``).

SIGTERM or Ctrl-C: uvicorn stops accepting connections, waits up to
SEGLENS_SHUTDOWN_GRACE_S for open requests, then the app's shutdown stops the workers
(the image in flight finishes or is abandoned cleanly) and marks running jobs
interrupted; the next start resumes them (unless SEGLENS_AUTO_RESUME=false).
"""

from __future__ import annotations

import ipaddress
import logging
from typing import TYPE_CHECKING, Any

from seglens.services.logcontext import configure_logging
from seglens.services.redaction import secrets_of_url
from seglens.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["run_uvicorn", "serve"]

log = logging.getLogger("seglens.server")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _log_secrets(settings: Settings) -> list[str]:
    """Values that must never appear in a log line: the API token, the LLM keys, and a
    password or key inside the LLM base URL."""
    found = [
        secret.get_secret_value()
        for secret in (settings.api_token, settings.llm_api_key, settings.deepseek_api_key)
        if secret is not None
    ]
    return found + secrets_of_url(settings.llm_base_url)


def serve(settings: Settings, app: FastAPI | None = None, ui_path: str | None = None) -> None:
    """Serve until stopped. Blocks. `app` is ``create_app(settings)`` unless given (the
    CLI passes one with the web UI mounted at `ui_path`)."""
    import uvicorn

    from seglens.api.app import create_app

    configure_logging(settings.log_level, settings.log_format, secrets=_log_secrets(settings))
    if not _is_loopback(settings.host) and settings.api_token is None:
        log.warning(
            "listening on a non-loopback address without SEGLENS_API_TOKEN: anyone who can reach "
            "this port can use the API",
            extra={"fields": {"host": settings.host}},
        )
    base = (
        f"http://[{settings.host}]:{settings.port}"
        if ":" in settings.host
        else f"http://{settings.host}:{settings.port}"
    )
    log.info(
        "starting SegLens"
        + (f": web UI at {base}{ui_path}" if ui_path else "")
        + f", API docs at {base}/docs",
        extra={"fields": {"url": base, "ui": ui_path, "profile": settings.profile}},
    )
    config = uvicorn.Config(
        app if app is not None else create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,  # RequestContextMiddleware writes JSON access lines with request ids
        timeout_graceful_shutdown=max(1, int(settings.shutdown_grace_s)),
        lifespan="on",
    )
    run_uvicorn(config)


def run_uvicorn(config: Any) -> None:
    """Run a ``uvicorn.Config`` until stopped, on `SegLensH11Protocol` (414/431 for an
    oversized request head). When the server starts to stop, before it waits for open
    connections, it calls every callable in the app's ``state.on_stop`` (the web UI ends
    its endless heartbeat streams there), so shutdown is prompt."""
    import uvicorn

    from seglens.api.http import SegLensH11Protocol

    if config.http in ("auto", "h11"):
        config.http = SegLensH11Protocol

    class _Server(uvicorn.Server):
        async def shutdown(self, sockets: Any = None) -> None:
            state = getattr(config.app, "state", None)
            for hook in list(getattr(state, "on_stop", None) or []):
                try:
                    hook()
                except Exception:  # one failing hook must not keep the server up
                    log.exception("a stop hook failed")
            await super().shutdown(sockets)

    _Server(config).run()
