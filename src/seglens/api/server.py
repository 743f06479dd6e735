"""Run the app under uvicorn (``seglens serve``).

SIGTERM or Ctrl-C: uvicorn stops accepting connections, waits up to
SEGLENS_SHUTDOWN_GRACE_S for open requests, then the app's shutdown stops the workers
(the image in flight finishes or is abandoned cleanly) and marks running jobs
interrupted; the next start resumes them (unless SEGLENS_AUTO_RESUME=false).
"""

from __future__ import annotations

import ipaddress
import logging
from typing import TYPE_CHECKING

from seglens.services.logcontext import configure_logging
from seglens.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["serve"]

log = logging.getLogger("seglens.server")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(settings: Settings, app: FastAPI | None = None, ui_path: str | None = None) -> None:
    """Serve until stopped. Blocks. `app` is ``create_app(settings)`` unless given (the
    CLI passes one with the web UI mounted at `ui_path`)."""
    import uvicorn

    from seglens.api.app import create_app

    configure_logging(settings.log_level, settings.log_format)
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
    uvicorn.Server(config).run()
