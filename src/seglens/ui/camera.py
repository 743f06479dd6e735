"""The camera source: live preview, capture into the batch, and the live overlay.

Frames reach `on_frame` through Gradio's stream event. Gradio keeps only the newest frame
that arrived while the previous call was running, so when the overlay takes longer than
the frame interval the stale frames are dropped and the newest one is processed as soon
as the previous one is done. The frames per second shown are the ones processed.
"""

from __future__ import annotations

import base64
import contextlib
import io
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from seglens.ui.client import ApiError
from seglens.ui.context import UiContext
from seglens.ui.i18n import t
from seglens.ui.jobs import JobHandlers
from seglens.ui.results import Renderer
from seglens.ui.segmentation import SegmentationLayout
from seglens.ui.state import Session
from seglens.ui.views import notice_html

__all__ = ["CAPTURE_JS", "LIVE_POINTS_PER_SIDE", "CameraHandlers", "fps_of"]

LIVE_SIDE_PX = 320
LIVE_POINTS_PER_SIDE = 8
STREAM_EVERY_S = 0.2
_WINDOW = 12


def fps_of(times: list[float]) -> float:
    """Frames per second over the processing completion times given (oldest first)."""
    if len(times) < 2 or times[-1] <= times[0]:
        return 0.0
    return (len(times) - 1) / (times[-1] - times[0])


def _jpeg(frame: np.ndarray, max_side: int | None = None) -> bytes:
    picture = Image.fromarray(np.ascontiguousarray(frame[..., :3]).astype(np.uint8))
    if max_side and max(picture.size) > max_side:
        picture.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _decode_data_url(data_url: str) -> np.ndarray | None:
    """``data:image/jpeg;base64,...`` → (H, W, 3) uint8, or None if it is not a picture."""
    _, _, payload = data_url.partition("base64,")
    try:
        with Image.open(io.BytesIO(base64.b64decode(payload, validate=True))) as picture:
            return np.asarray(picture.convert("RGB"))
    except (ValueError, OSError):
        return None


# The capture button's front-end step: the preview's current frame as a JPEG data URL.
CAPTURE_JS = """(session, _data) => {
  const video = document.querySelector('#camera video');
  if (!video || !video.videoWidth) return [session, ''];
  const canvas = document.createElement('canvas');
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext('2d').drawImage(video, 0, 0);
  return [session, canvas.toDataURL('image/jpeg', 0.92)];
}"""


class CameraHandlers:
    def __init__(
        self, ctx: UiContext, ui: SegmentationLayout, jobs: JobHandlers, renderer: Renderer, notice: Any
    ) -> None:
        self.ctx = ctx
        self.ui = ui
        self.jobs = jobs
        self.renderer = renderer
        self.notice = notice

    def on_frame(self, values: Mapping[Any, Any]) -> dict[Any, Any]:
        """One streamed frame (inputs: the camera, the live toggle and
        `SegmentationLayout.inputs()`): upload it, query it, show the overlay."""
        frame: np.ndarray | None = values.get(self.ui.camera)
        live = bool(values.get(self.ui.live))
        session, panel = self.ui.read(values)
        camera = session.camera
        if frame is None:
            return {}
        camera.frame = frame
        if not live:
            if camera.live_since is not None:
                camera.live_since, camera.processed_at, camera.live_done = None, [], 0
                return {self.ui.fps: t(session.lang, "fps_idle")}
            return {}
        if camera.live_since is None:
            camera.live_since = time.monotonic()
        controls = self.renderer.controls(session, panel)
        if controls is None:
            return {self.ui.fps: t(session.lang, "no_keywords")}
        started = time.perf_counter()
        created_id: str | None = None
        try:
            answer = self.ctx.client.upload(
                [(f"live-{int(time.time() * 1000)}.jpg", _jpeg(frame, LIVE_SIDE_PX))]
            )
            entry = answer["files"][0]
            if entry.get("image") is None:
                return {}
            # Only a frame this request stored is deleted after: the same bytes may
            # already be an image of the batch (a still camera, a captured frame).
            image_id = entry["image"]["id"]
            created_id = image_id if entry.get("status") == "created" else None
            result = self.ctx.client.query(
                image_id,
                controls.query,
                threshold=controls.params.threshold,
                merge_threshold=controls.params.merge_threshold,
                mode=controls.params.mode,
                merge_strategy=controls.params.merge_strategy,
                alpha=controls.alpha,
                points_per_side=panel.points_per_side or LIVE_POINTS_PER_SIDE,
                overlay_max_side_px=LIVE_SIDE_PX * 2,
            )
        except ApiError as error:
            return {self.ui.fps: self.ctx.describe(error, session)}
        finally:
            if created_id is not None:
                # A live frame is seen once: leave no upload or cache entries behind.
                with contextlib.suppress(ApiError):
                    self.ctx.client.delete_image(created_id)
        elapsed_ms = (time.perf_counter() - started) * 1000
        window = deque(camera.processed_at, maxlen=_WINDOW)
        window.append(time.monotonic())
        camera.processed_at = list(window)
        camera.live_done += 1
        overlay = Image.open(io.BytesIO(base64.b64decode(result["overlay_png_base64"])))
        fps = fps_of(camera.processed_at)
        # Frames the browser offered (one per stream interval) that were never processed.
        offered = int((time.monotonic() - camera.live_since) / STREAM_EVERY_S) + 1
        dropped = max(offered - camera.live_done, 0)
        text = t(session.lang, "fps", fps=fps, dropped=dropped)
        return {
            self.ui.live_view: overlay,
            self.ui.fps: f"{text} · "
            + t(session.lang, "fps_detail", ms=elapsed_ms, n=len(result["matches"])),
        }

    def toggle_live(self, live: bool, session: Session) -> dict[Any, Any]:
        camera = session.camera
        camera.processed_at, camera.live_since, camera.live_done = [], None, 0
        return {self.ui.fps: "…" if live else t(session.lang, "fps_idle")}

    def capture(self, session: Session, frame_data: str | None) -> dict[Any, Any]:
        """Add the preview's current frame (sent by the browser as a data URL) to the
        batch; without one, the last streamed frame."""
        frame = _decode_data_url(frame_data) if frame_data else None
        if frame is None:
            frame = session.camera.frame
        if frame is None:
            text = t(session.lang, "camera_no_frame")
            gr.Warning(text)
            return {self.notice: notice_html(text)}
        name = time.strftime("camera-%Y%m%d-%H%M%S.jpg")
        try:
            problems = self.jobs.add_files(session, [(name, _jpeg(frame))])
        except ApiError as error:
            text = self.ctx.describe(error, session)
            gr.Warning(text)
            return {self.notice: notice_html(text)}
        if problems:
            gr.Warning(problems[0])
            return {**self.jobs.batch_outputs(session), self.notice: notice_html(problems[0])}
        gr.Info(t(session.lang, "captured", name=name))
        return {
            **self.jobs.batch_outputs(session),
            self.notice: notice_html(t(session.lang, "captured", name=name), "info"),
        }
