"""What this process is loading right now: which models, in which phase, and how many
bytes of a download have arrived. Process-wide (like the model load lock): the hub code
writes it while it downloads, the server's ``/health`` details and the UI's status line
read it. Readers get immutable snapshots; nothing here blocks a loader."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from typing import Literal

__all__ = ["LOADS", "LoadPhase", "LoadTracker", "ModelLoadState"]

LoadPhase = Literal["checking", "downloading", "building", "loading"]


@dataclass(frozen=True)
class ModelLoadState:
    """One model on its way in. `bytes_total` is None until the download's size is known;
    `bytes_done` counts bytes written to the cache by this download (files already in the
    cache are left out of both)."""

    name: str
    phase: LoadPhase
    bytes_done: int = 0
    bytes_total: int | None = None
    started_s: float = 0.0


class LoadTracker:
    """Thread-safe map of model name → `ModelLoadState`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, ModelLoadState] = {}

    def begin(self, name: str, phase: LoadPhase, bytes_total: int | None = None) -> None:
        with self._lock:
            self._states[name] = ModelLoadState(name, phase, 0, bytes_total, time.time())

    def set_phase(self, name: str, phase: LoadPhase) -> None:
        with self._lock:
            state = self._states.get(name)
            self._states[name] = replace(state, phase=phase) if state else ModelLoadState(name, phase)

    def add_bytes(self, name: str, count: int) -> None:
        with self._lock:
            state = self._states.get(name)
            if state is not None:
                self._states[name] = replace(state, bytes_done=max(0, state.bytes_done + count))

    def finish(self, name: str) -> None:
        with self._lock:
            self._states.pop(name, None)

    def snapshot(self) -> list[ModelLoadState]:
        with self._lock:
            return list(self._states.values())


LOADS = LoadTracker()
