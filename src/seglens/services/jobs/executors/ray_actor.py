"""The body of a Ray actor that holds the models (no Ray import here: `ray_executor`
wraps this class with ``ray.remote``).

An actor loads the pipeline once, in its constructor, then computes one image per call
and returns its `ItemOutcome` (`seglens.services.jobs.worker.compute_outcome`). It never
touches the job store: the driver commits results.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seglens.core.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, ImageError, LoadedImage, load_image
from seglens.core.types import JobParams
from seglens.services.jobs.worker import ItemOutcome, RenderSpec, compute_outcome
from seglens.services.segment.pipeline import Pipeline

__all__ = ["ImageTask", "SegmentWorker", "WorkerConfig"]


@dataclass(frozen=True)
class ImageTask:
    """The task a driver sends with an image: `filename` names it in messages; `path` is
    a file on a shared mount, or None when the bytes travel with the call; `query` and
    `params` are the job's; `render` asks for rendered files (headless batches)."""

    image_id: str
    filename: str | None
    query: str
    params: JobParams
    path: str | None = None
    render: RenderSpec | None = None


@dataclass(frozen=True)
class WorkerConfig:
    """What an actor loads and how: the `profile` and its overrides (`proposer`,
    `embedder`, `device`, `dtype`, `backend`; None: the profile's or the setting's),
    `data_dir` (models and the artifact cache), whether it may download weights, the
    image limits, and `nice`: CPU priority steps below the server's request threads (a
    Ray private to this machine)."""

    profile: str
    data_dir: str
    device: str | None = None
    dtype: str | None = None
    proposer: str | None = None
    embedder: str | None = None
    backend: str | None = None
    allow_download: bool = True
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_bytes: int = DEFAULT_MAX_BYTES
    nice: int = 0


class SegmentWorker:
    """A Ray actor's body: the pipeline of `config`, loaded once. Torch's CPU threads
    follow the actor's CPUs: Ray sets ``OMP_NUM_THREADS`` to them."""

    def __init__(self, config: WorkerConfig):
        self.config = config
        if config.nice > 0 and hasattr(os, "nice"):
            os.nice(config.nice)
        self.pipeline = Pipeline.from_profile(
            config.profile,
            data_dir=config.data_dir,
            device=config.device,
            dtype=config.dtype,
            proposer=config.proposer,
            embedder=config.embedder,
            backend=config.backend,
            allow_download=config.allow_download,
        )
        self.images = 0

    def info(self) -> dict[str, Any]:
        """``pid``, ``models``, ``meaningless``, ``images`` (computed by this process)."""
        return {
            "pid": os.getpid(),
            "models": self.pipeline.model_ids(),
            "meaningless": self.pipeline.meaningless,
            "images": self.images,
        }

    def process(self, task: ImageTask, data: bytes | None) -> ItemOutcome:
        """Compute one image (`data`: its bytes, or None to read `task.path`); never raises."""
        max_pixels, max_bytes = self.config.max_pixels, self.config.max_bytes

        def load() -> LoadedImage:
            payload = data
            if payload is None:
                try:
                    payload = Path(task.path or "").read_bytes()
                except OSError as error:
                    raise ImageError(
                        f"{task.filename or task.path}: cannot read on the worker "
                        f"({error.strerror or error})",
                        "unreadable",
                    ) from None
            return load_image(
                payload,
                filename=task.filename,
                max_pixels=max_pixels,
                max_bytes=max(max_bytes, len(payload)),
            )

        outcome = compute_outcome(self.pipeline, load, task.query, task.params, task.render)
        self.images += 1
        return outcome.with_log_fields(executor="ray", worker_pid=os.getpid())
