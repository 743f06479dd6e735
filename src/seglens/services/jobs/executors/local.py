"""The local executor: worker threads of this process share its models."""

from __future__ import annotations

from seglens.errors import ExecutorUnavailable
from seglens.services.jobs.worker import ItemProcessor
from seglens.settings import Settings
from seglens.storage.jobs_repo import ClaimedItem

__all__ = ["LocalExecutor", "auto_workers"]


def auto_workers(settings: Settings) -> int:
    """`settings.workers`, or 1 on a CPU and 2 on CUDA when it is 0."""
    if settings.workers > 0:
        return settings.workers
    # One worker keeps the models busy; a second overlaps decoding, matching and database
    # writes with model time, which pays only when the model time is short (a GPU).
    from seglens.models.device import select_device

    try:
        device = select_device(settings.device, settings.dtype).device
    except ValueError:
        return 1
    return 2 if device.startswith("cuda") else 1


class LocalExecutor:
    name = "local"
    yield_to_interactive = True

    def __init__(self, settings: Settings, processor: ItemProcessor):
        self.processor = processor
        self.workers = auto_workers(settings)
        self.nice = settings.worker_nice

    def start(self) -> None:
        self.processor.provider.start()

    def ready(self, timeout_s: float) -> bool:
        provider = self.processor.provider
        return provider.wait(timeout_s) and provider.pipeline is not None

    def wait_ready(self, timeout_s: float | None = None) -> None:
        provider = self.processor.provider
        provider.start()
        provider.wait(timeout_s)
        if provider.pipeline is None:
            raise ExecutorUnavailable(provider.error or "the models are still loading")

    def process(self, claimed: ClaimedItem) -> None:
        self.processor(claimed)

    def close(self) -> None:
        return None
