"""The body of a Ray actor that holds the models (no Ray import here: `ray_executor`
wraps this class with ``ray.remote``).

An actor loads the pipeline once, in its constructor, then computes one image per call
and returns the plain outcome dict of `seglens.services.jobs_worker.compute_outcome`. It
never touches the job store: the driver commits results.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from seglens.core.images import DEFAULT_MAX_PIXELS, ImageError, load_image
from seglens.services.jobs_worker import RenderSpec, compute_outcome
from seglens.services.pipeline import Pipeline

__all__ = ["ImageTask", "SegmentWorker"]

# The task a driver sends with an image: ``image_id``, ``filename`` (for messages),
# ``path`` (a file on a shared mount) or None when the bytes travel with the call,
# ``query``, ``params`` (a job's params dict), ``render`` (None, or ``{"cutouts": bool}``).
ImageTask = dict[str, Any]


class SegmentWorker:
    """`config`: ``profile``, ``data_dir`` (models and the artifact cache), ``device``,
    ``dtype``, ``proposer``, ``embedder``, ``allow_download``, ``max_pixels``,
    ``max_bytes``, ``nice`` (CPU priority steps below the server's request threads, for
    a Ray private to this machine). Torch's CPU threads follow the actor's CPUs: Ray
    sets ``OMP_NUM_THREADS`` to them."""

    def __init__(self, config: dict[str, Any]):
        self.config = dict(config)
        nice = int(config.get("nice") or 0)
        if nice > 0 and hasattr(os, "nice"):
            os.nice(nice)
        self.pipeline = Pipeline.from_profile(
            config["profile"],
            data_dir=config["data_dir"],
            device=config.get("device"),
            dtype=config.get("dtype"),
            proposer=config.get("proposer"),
            embedder=config.get("embedder"),
            allow_download=bool(config.get("allow_download", True)),
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

    def process(self, task: ImageTask, data: bytes | None) -> dict[str, Any]:
        max_pixels = int(self.config.get("max_pixels", DEFAULT_MAX_PIXELS))
        max_bytes = int(self.config.get("max_bytes", 50 * 1024 * 1024))

        def load() -> Any:
            payload = data
            if payload is None:
                try:
                    payload = Path(task["path"]).read_bytes()
                except OSError as error:
                    raise ImageError(
                        f"{task.get('filename') or task['path']}: cannot read on the worker "
                        f"({error.strerror or error})",
                        "unreadable",
                    ) from None
            return load_image(
                payload,
                filename=task.get("filename"),
                max_pixels=max_pixels,
                max_bytes=max(max_bytes, len(payload)),
            )

        render = RenderSpec(**task["render"]) if task.get("render") is not None else None
        outcome = compute_outcome(self.pipeline, load, task["query"], task["params"], render)
        self.images += 1
        outcome["log_fields"] = {"executor": "ray", "worker_pid": os.getpid()}
        return outcome
