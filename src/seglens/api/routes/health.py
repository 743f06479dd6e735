"""``GET /health``: open to everyone for a liveness check (status and version); the
details (models, device, queue) need the token when the server has one."""

from __future__ import annotations

from fastapi import APIRouter, Request

from seglens._version import __version__
from seglens.api.deps import RuntimeDep
from seglens.api.schemas import HealthOut, LivenessOut, LoadingOut, QueueOut
from seglens.api.security import token_matches

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    summary="Server status and version (open); models, device and queue depth (with the token)",
    response_model=HealthOut | LivenessOut,
)
def read_health(runtime: RuntimeDep, request: Request) -> HealthOut | LivenessOut:
    """Needs no token, so a load balancer or a container runtime can probe it. Without the
    token (when the server has ``SEGLENS_API_TOKEN``) the answer is only `status` and
    `version`; with it (or on a server without a token) it also has the profile, models,
    device, queue and warnings. `status` is `ready` once the models are loaded. With the
    `tiny` profile, `meaningless` is true and `warning` says that results mean nothing.
    While the models load, `loading` says which ones and how far their downloads are."""
    report = runtime.health()
    expected = runtime.settings.api_token
    if expected is not None and not token_matches(request.headers.get("authorization"), expected):
        return LivenessOut(status=report.status, version=__version__)
    return HealthOut(
        status=report.status,
        version=__version__,
        profile=report.profile,
        models=report.models,
        device=report.device,
        backend=report.backend,
        meaningless=report.meaningless,
        warning=report.warning,
        load_error=report.load_error,
        loading=[
            LoadingOut(name=m.name, phase=m.phase, bytes_done=m.bytes_done, bytes_total=m.bytes_total)
            for m in report.loading
        ],
        queue=QueueOut(
            depth=report.queue_depth,
            jobs=report.jobs,
            workers=report.workers,
            in_flight=report.in_flight,
            interactive_in_flight=report.interactive_in_flight,
        ),
    )
