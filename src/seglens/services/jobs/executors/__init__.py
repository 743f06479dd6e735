"""Where a job's images run: the executor seam under the scheduler.

The scheduler's worker threads claim images in the job store and hand each to an
executor's `process`; the executor computes the result somewhere and commits it through
`ItemProcessor.commit`, in this process, exactly once. Two executors:

- ``local`` (default): the models of this process, shared by `workers` threads;
- ``ray``: actors that hold the models on a Ray cluster, one per GPU or per CPU slot
  (`seglens.services.jobs.executors.ray_executor`; Ray is an optional extra and is imported
  only there, only when chosen).

Job states, cancel, resume and crash recovery stay the job store's, whichever runs.
"""

from __future__ import annotations

from typing import Protocol

from seglens.errors import ExecutorUnavailable
from seglens.services.jobs.worker import FilesSink, RenderSpec
from seglens.services.provider import PipelineProvider
from seglens.services.segment.images import ImageService
from seglens.settings import Settings
from seglens.storage.jobs_repo import ClaimedItem, JobRepository

__all__ = ["Executor", "ExecutorUnavailable", "build_executor"]


class Executor(Protocol):
    """Where a job's images run (`local` threads or `ray` actors): started once, then asked to
    `process` each claimed image, which it computes and commits exactly once. `workers` is
    how many scheduler threads feed it; `yield_to_interactive` and `nice` say whether its
    work steps aside for interactive requests."""

    name: str
    # Scheduler threads, known once `start` has returned.
    workers: int
    yield_to_interactive: bool
    nice: int

    def start(self) -> None:
        """Connect and start the workers; raises `ExecutorUnavailable`."""

    def ready(self, timeout_s: float) -> bool:
        """Whether images can be processed now (models loaded), waiting up to `timeout_s`."""

    def wait_ready(self, timeout_s: float | None = None) -> None:
        """Block until ready; raises `ExecutorUnavailable` when loading failed."""

    def process(self, claimed: ClaimedItem) -> None:
        """Compute and commit one claimed image; never raises."""

    def close(self) -> None:
        """Release the workers (after the scheduler has stopped)."""


def build_executor(
    settings: Settings,
    jobs: JobRepository,
    images: ImageService,
    provider: PipelineProvider,
    *,
    render: RenderSpec | None = None,
    sink: FilesSink | None = None,
) -> Executor:
    """The executor `settings.executor` names. `render` and `sink` make every image's
    result come with rendered files (headless batches)."""
    from seglens.services.jobs.worker import ItemProcessor

    committer = ItemProcessor(jobs, images, provider, render=render, sink=sink)
    if settings.executor == "ray":
        from seglens.services.jobs.executors.ray_executor import RayExecutor

        return RayExecutor(settings, jobs, images, committer)
    from seglens.services.jobs.executors.local import LocalExecutor

    return LocalExecutor(settings, committer)
