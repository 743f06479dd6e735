"""Loads the models once, in the background, and hands the shared `Pipeline` out.

The server starts answering at once (``/health`` says ``loading``); requests that need
the models wait up to a timeout, then get `ModelsUnavailable` with a retry hint. A load
that fails (weights missing offline, bad profile) is kept with its message, so every
later request and ``/health`` say what is wrong and how to fix it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Literal

from seglens.services.errors import ModelsUnavailable
from seglens.services.segment.pipeline import Pipeline

__all__ = ["PipelineProvider", "ProviderState"]

log = logging.getLogger(__name__)
ProviderState = Literal["idle", "loading", "ready", "error"]


class PipelineProvider:
    """`factory` builds the pipeline (it may take minutes and may raise)."""

    def __init__(self, factory: Callable[[], Pipeline]):
        self._factory = factory
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._pipeline: Pipeline | None = None
        self._error: str | None = None
        self._state: ProviderState = "idle"
        self.load_s: float | None = None

    @property
    def state(self) -> ProviderState:
        return self._state

    @property
    def error(self) -> str | None:
        return self._error

    @property
    def pipeline(self) -> Pipeline | None:
        """The pipeline if loaded, else None; never waits."""
        return self._pipeline

    def start(self) -> None:
        """Begin loading in a daemon thread (once)."""
        with self._lock:
            if self._state != "idle":
                return
            self._state = "loading"
        threading.Thread(target=self._load, name="seglens-model-loader", daemon=True).start()

    def _load(self) -> None:
        started = time.perf_counter()
        try:
            pipeline = self._factory()
        except Exception as error:
            self._error = f"{type(error).__name__}: {error}"
            self._state = "error"
            log.error("models failed to load", extra={"fields": {"error": self._error}})
        else:
            self._pipeline = pipeline
            self.load_s = time.perf_counter() - started
            self._state = "ready"
            log.info(
                "models loaded",
                extra={"fields": {"models": pipeline.model_ids(), "load_s": round(self.load_s, 2)}},
            )
        finally:
            self._ready.set()

    def wait(self, timeout_s: float | None) -> bool:
        """True once loading has finished (successfully or not)."""
        return self._ready.wait(timeout_s)

    def get(self, timeout_s: float | None = None) -> Pipeline:
        """The pipeline, waiting up to `timeout_s` for it; raises `ModelsUnavailable`."""
        if self._state == "idle":
            self.start()
        self._ready.wait(timeout_s)
        if self._pipeline is not None:
            return self._pipeline
        if self._state == "error":
            raise ModelsUnavailable("models_unavailable", f"the models could not be loaded: {self._error}")
        raise ModelsUnavailable("models_loading", "the models are still loading; try again shortly", 5)
