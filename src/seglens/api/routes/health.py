"""``GET /health``: models, device, queue."""

from __future__ import annotations

from fastapi import APIRouter

from seglens import __version__
from seglens.api.deps import RuntimeDep
from seglens.api.schemas import HealthOut, QueueOut

router = APIRouter(tags=["health"])


@router.get("/health", summary="Server status, loaded models, device and queue depth")
def read_health(runtime: RuntimeDep) -> HealthOut:
    """`status` is `ready` once the models are loaded. With the `tiny` profile,
    `meaningless` is true and `warning` says that results mean nothing."""
    report = runtime.health()
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
        queue=QueueOut(
            depth=report.queue_depth,
            jobs=report.jobs,
            workers=report.workers,
            in_flight=report.in_flight,
            interactive_in_flight=report.interactive_in_flight,
        ),
    )
