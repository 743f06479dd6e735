"""The FastAPI application: `create_app(settings)` builds it; nothing loads at import.

Everything under ``/api/v1``; OpenAPI at ``/openapi.json``, Swagger UI at ``/docs``, ``/``
redirects to ``/docs`` until the web UI is mounted. The lifespan builds the `Runtime`
(database, queue, workers) and starts loading the models in the background; shutdown
stops the workers and marks running jobs interrupted.

Other front ends (the Gradio UI) attach with `mounts`, or by mounting onto the returned
app, e.g. ``gradio.mount_gradio_app(app, blocks, path="/ui")``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import RedirectResponse
from starlette.types import ASGIApp

from seglens._version import __version__
from seglens.api.deps import require_token
from seglens.api.errors import install_error_handlers, responses
from seglens.api.middleware import RequestContextMiddleware
from seglens.api.openapi import install_openapi
from seglens.api.routes import assistant, health, history, images, interactive, jobs, viewer
from seglens.api.security import BearerAuthMiddleware
from seglens.api.views import API_PREFIX
from seglens.services.runtime import PipelineFactory, Runtime
from seglens.settings import Settings

__all__ = ["API_PREFIX", "create_app"]

log = logging.getLogger("seglens.server")

_DESCRIPTION = """\
Find things in images by words: Segment Anything regions scored by CLIP-family models.

Upload images, run keyword queries on one image (`/query`, answered from the cache) or on
many (`/jobs`, a persistent queue that survives restarts), refine masks with clicks
(`/images/{id}/prompt`) and search every region processed so far (`/search`).

Errors are `{"error": {"code": "...", "message": "..."}}`. When the server has
`SEGLENS_API_TOKEN`, every route needs `Authorization: Bearer <token>`, except
`GET /health`, which answers everyone with only `status` and `version`.
"""


def create_app(
    settings: Settings | None = None,
    *,
    pipeline_factory: PipelineFactory | None = None,
    mounts: Sequence[tuple[str, ASGIApp]] = (),
) -> FastAPI:
    """Build the app. `pipeline_factory(settings)` makes the models (default: the
    settings' profile); tests pass one with fakes. `mounts` are ``(path, asgi_app)``
    pairs mounted after the API routes."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = Runtime(settings, pipeline_factory)
        app.state.runtime = runtime
        await run_in_threadpool(runtime.start)
        try:
            yield
        finally:
            await run_in_threadpool(runtime.stop)

    app = FastAPI(
        title="SegLens",
        version=__version__,
        description=_DESCRIPTION,
        lifespan=lifespan,
        openapi_tags=[
            {"name": "health"},
            {"name": "images", "description": "Upload and read images."},
            {"name": "jobs", "description": "Batches: a persistent queue with cancel and resume."},
            {"name": "interactive", "description": "One image at a time, ahead of batch work."},
            {"name": "history", "description": "Everything that was run."},
            {"name": "assistant", "description": "AI assistant: chat, advice, conversations."},
        ],
    )
    install_error_handlers(app)
    # Added innermost first: CORS (outermost) → request context → token → the app.
    if settings.api_token is not None:
        app.add_middleware(
            BearerAuthMiddleware,
            token=settings.api_token,
            prefix=f"{API_PREFIX}/",
            open_paths=frozenset({f"{API_PREFIX}/health"}),
        )
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_request_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After", "Content-Disposition"],
        )

    # The bearer scheme is part of the API (and its schema) only when a token is set.
    if settings.api_token is not None:
        api = APIRouter(prefix=API_PREFIX, dependencies=[Depends(require_token)], responses=responses(401))
    else:
        api = APIRouter(prefix=API_PREFIX)
    for module in (images, jobs, interactive, viewer, history, assistant):
        api.include_router(module.router)
    # Open for liveness probes; it tells the details only to a request with the token.
    app.include_router(health.router, prefix=API_PREFIX)
    app.include_router(api)
    install_openapi(app, settings)

    @app.get("/", include_in_schema=False)
    def redirect_to_docs() -> RedirectResponse:
        return RedirectResponse("/docs")

    for path, mounted in mounts:
        app.mount(path, mounted)
    return app
