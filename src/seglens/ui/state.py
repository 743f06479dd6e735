"""What one browser session holds between events (kept server-side in a `gr.State`).

Only plain data: Gradio deep-copies the initial value for every new session. Files
(thumbnails, overlays) live in the UI's scratch directory and are referred to by path.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from seglens.core.types import QueryParams

__all__ = ["CameraState", "ImageEntry", "QueryControls", "ResultEntry", "Session", "SessionLock", "ViewState"]


class SessionLock:
    """Serialises the handlers of one session that redraw the same outputs (a slider's
    re-render racing a click's refinement would otherwise overwrite it with stale
    pictures). A copy is a new lock, so a session's state can be deep-copied."""

    def __init__(self) -> None:
        self._lock = threading.RLock()

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(self, *_: object) -> None:
        self._lock.release()

    def __deepcopy__(self, memo: dict[int, Any]) -> SessionLock:
        return SessionLock()


@dataclass
class ImageEntry:
    """An uploaded image as the API described it, plus its thumbnail on disk."""

    id: str
    filename: str
    width: int
    height: int
    format: str
    bytes: int
    thumb_path: str


@dataclass
class ResultEntry:
    """One image of the current job: its state and its latest rendered overlay."""

    image_id: str
    filename: str
    position: int
    status: str
    error: str | None = None
    overlay_path: str | None = None
    matches: int = 0
    rendered_for: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class QueryControls:
    """What a re-render from cache needs: the composed query, its knobs, the overlay
    opacity and the job's grid."""

    query: str
    params: QueryParams
    alpha: float
    points_per_side: int | None

    def key(self) -> tuple[Any, ...]:
        return (self.query, self.params, self.alpha, self.points_per_side)


@dataclass
class ViewState:
    """The result shown large: the overlay on disk and what is needed to map clicks back
    to image pixels and to draw refined masks on it."""

    image_id: str
    overlay_path: str
    overlay_size_wh: tuple[int, int]
    image_size_wh: tuple[int, int]
    matches: list[dict[str, Any]] = field(default_factory=list)
    best_scores: dict[str, float] = field(default_factory=dict)
    points: list[tuple[float, float, int]] = field(default_factory=list)
    refined: list[dict[str, Any]] = field(default_factory=list)
    query: str = ""


@dataclass
class CameraState:
    """`processed_at`: completion times of the last live frames (for the FPS);
    `live_since`: when the live overlay started; `live_done`: frames processed since."""

    frame: np.ndarray | None = None
    processed_at: list[float] = field(default_factory=list)
    live_since: float | None = None
    live_done: int = 0


@dataclass
class Session:
    lang: str = "en"
    images: list[ImageEntry] = field(default_factory=list)
    selected_upload: int | None = None
    job_id: str | None = None
    job: dict[str, Any] | None = None
    job_points_per_side: int | None = None
    follow: bool = False
    results: dict[str, ResultEntry] = field(default_factory=dict)
    shown_results: list[str] = field(default_factory=list)
    view: ViewState | None = None
    history_pick: tuple[str, str] | None = None
    camera: CameraState = field(default_factory=CameraState)
    meaningless: bool = False
    warning: str | None = None
    profile: str | None = None
    notice: str = ""
    backend_down: bool = False
    # (job id, format, controls key) of the download link on screen.
    export_key: tuple[Any, ...] | None = None
    # The image to open large once its result arrives (a restored session's selection).
    pending_view: str | None = None
    # Saved image ids not fetched back yet (the back end was away when the page loaded).
    unrestored_images: list[str] = field(default_factory=list)
    conversation_id: str | None = None
    suggestions: list[dict[str, Any]] = field(default_factory=list)
    panel_suggestions: list[dict[str, Any]] = field(default_factory=list)
    lock: SessionLock = field(default_factory=SessionLock, repr=False, compare=False)
