"""Results from the cache: the results gallery, the large view (the client-side viewer's
value), the region list, the threshold pad and refinement clicks.

The large view repaints in the page (`seglens.ui.viewer`); the gallery thumbnails and the
region list follow once the controls settle (`refresh`), with the gallery's ``POST /query``
calls side by side. Every call passes the job's points per side, so the back end reads
regions and embeddings from its cache: no new job and no model run on pixels.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import gradio as gr
from PIL import Image

from seglens.core.viewdata import display_size
from seglens.ui.client import ApiError
from seglens.ui.context import UiContext
from seglens.ui.controls import PanelControls
from seglens.ui.i18n import t
from seglens.ui.segmentation import SegmentationLayout
from seglens.ui.state import QueryControls, ResultEntry, Session, ViewState
from seglens.ui.viewer import VIEW_SIDE_PX, viewer_spec
from seglens.ui.views import (
    notice_html,
    pad_values,
    region_table,
    result_caption,
    threshold_pad,
)

__all__ = ["GALLERY_LIMIT", "Renderer", "compose_query"]

GALLERY_LIMIT = 60
GALLERY_SIDE_PX = 360
GALLERY_WORKERS = 4
_SPLIT = re.compile(r"[,;，；、\n]+")


def compose_query(keywords: str, exclude: str) -> str:
    """The keywords box plus the exclusions box as one query: ``cat, dog, -grass``."""
    parts = [p.strip() for p in _SPLIT.split(keywords or "") if p.strip()]
    for term in _SPLIT.split(exclude or ""):
        term = term.strip().lstrip("-−").strip()
        if term:
            parts.append(f"-{term}")
    return ", ".join(parts)


class Renderer:
    def __init__(self, ctx: UiContext, ui: SegmentationLayout, notice: Any) -> None:
        self.ctx = ctx
        self.ui = ui
        self.notice = notice

    # -- pieces used by other handlers --------------------------------------------------
    @staticmethod
    def controls(session: Session, panel: PanelControls) -> QueryControls | None:
        """The query to re-render with: the panel's keywords (the job's query when the
        panel has none) and knobs, with the job's grid; None without any keyword."""
        query = compose_query(panel.keywords, panel.exclude)
        if not any(not p.startswith("-") for p in query.split(", ") if p):
            query = (session.job or {}).get("query", "")
        if not query:
            return None
        return QueryControls(
            query=query, params=panel.params, alpha=panel.alpha, points_per_side=session.job_points_per_side
        )

    def _query(self, image_id: str, controls: QueryControls, max_side: int | None) -> dict[str, Any]:
        params = controls.params
        return self.ctx.client.query(
            image_id,
            controls.query,
            threshold=params.threshold,
            merge_threshold=params.merge_threshold,
            mode=params.mode,
            merge_strategy=params.merge_strategy,
            alpha=controls.alpha,
            points_per_side=controls.points_per_side,
            overlay=max_side is not None,
            overlay_max_side_px=max_side,
        )

    def render_entry(self, session: Session, entry: ResultEntry, controls: QueryControls | None) -> None:
        """Give a finished entry its picture: the overlay for a done image (re-rendered
        only when the controls changed), the thumbnail otherwise."""
        if entry.status == "done" and controls is not None:
            if entry.rendered_for == controls.key() and entry.overlay_path:
                return
            answer = self._query(entry.image_id, controls, GALLERY_SIDE_PX)
            png = base64.b64decode(answer["overlay_png_base64"])
            entry.overlay_path = self.ctx.save("overlays", png, ".png")
            entry.matches = len(answer["matches"])
            entry.rendered_for = controls.key()
        elif entry.overlay_path is None:
            known = {e.id: e for e in session.images}
            if entry.image_id in known:
                entry.overlay_path = known[entry.image_id].thumb_path
            else:
                entry.overlay_path = self.ctx.save(
                    "thumbs", self.ctx.client.thumbnail(entry.image_id), ".jpg"
                )

    def render_entries(self, session: Session, controls: QueryControls | None) -> None:
        """`render_entry` for the gallery's entries, a few requests side by side."""
        entries = sorted(session.results.values(), key=lambda e: e.position)[:GALLERY_LIMIT]
        with ThreadPoolExecutor(GALLERY_WORKERS) as pool:
            for future in [pool.submit(self.render_entry, session, e, controls) for e in entries]:
                future.result()

    def gallery(self, session: Session) -> list[tuple[str, str]]:
        finished = sorted(
            (
                e
                for e in session.results.values()
                if e.overlay_path and e.status in ("done", "failed", "skipped")
            ),
            key=lambda e: e.position,
        )[:GALLERY_LIMIT]
        session.shown_results = [e.image_id for e in finished]
        return [(e.overlay_path or "", result_caption(e, session.lang)) for e in finished]

    def render_view(self, session: Session, image_id: str, controls: QueryControls) -> ViewState:
        """Make `image_id` the large view: its matches for the region list (the picture
        itself is painted by the viewer in the page)."""
        answer = self._query(image_id, controls, None)
        if answer["matches"]:
            h, w = answer["matches"][0]["rle"]["size"]
            image_size = (int(w), int(h))
        else:
            image_size = self._image_size(session, image_id, (1, 1))
        shown_h, shown_w = display_size((image_size[1], image_size[0]), VIEW_SIDE_PX)
        view = ViewState(
            image_id=image_id,
            overlay_path="",
            overlay_size_wh=(shown_w, shown_h),
            image_size_wh=image_size,
            matches=[{k: v for k, v in m.items() if k != "rle"} for m in answer["matches"]],
            best_scores=dict(answer.get("best_scores", {})),
        )
        previous = session.view
        if previous is not None and previous.image_id == image_id:
            # Clicks refined on this image survive a re-render (also one racing a click).
            view.points, view.refined = previous.points, previous.refined
        view.query = controls.query
        session.view = view
        entry = session.results.get(image_id)
        if entry is not None:
            entry.matches = len(answer["matches"])
        return view

    def _image_size(self, session: Session, image_id: str, fallback: tuple[int, int]) -> tuple[int, int]:
        for e in session.images:
            if e.id == image_id:
                return (e.width, e.height)
        try:
            info = self.ctx.client.image(image_id)
            return (int(info["width"]), int(info["height"]))
        except ApiError:
            return fallback

    def view_outputs(self, session: Session) -> dict[Any, Any]:
        view = session.view
        if view is None:
            spec = viewer_spec(session, image_id=None, query="", image_size_wh=None)
            return {self.ui.view: spec, self.ui.regions: region_table([], [], session.lang)}
        spec = viewer_spec(
            session,
            image_id=view.image_id,
            query=view.query or (session.job or {}).get("query", ""),
            image_size_wh=view.image_size_wh,
            points=view.points,
            refined=view.refined,
        )
        return {self.ui.view: spec, self.ui.regions: region_table(view.matches, view.refined, session.lang)}

    # -- handlers ------------------------------------------------------------------------
    def _refresh(self, session: Session, panel: PanelControls) -> dict[Any, Any]:
        """The controls settled: redraw the pad, the region list and the gallery from cache
        (the large view repainted itself in the page already)."""
        params = panel.params
        out: dict[Any, Any] = {self.ui.pad: threshold_pad(params.threshold, params.merge_threshold)}
        controls = self.controls(session, panel)
        if controls is None or not session.results:
            return out
        try:
            if session.view is not None and session.results.get(session.view.image_id, None) is not None:
                self.render_view(session, session.view.image_id, controls)
                out.update(self.view_outputs(session))
            self.render_entries(session, controls)
            out[self.ui.results] = self.gallery(session)
            out[self.notice] = notice_html("")
        except ApiError as error:
            out[self.notice] = self._fail(session, error)
        return out

    def _select_result(self, session: Session, panel: PanelControls, evt: gr.SelectData) -> dict[Any, Any]:
        index = evt.index if isinstance(evt.index, int) else (evt.index or [0])[0]
        if not 0 <= index < len(session.shown_results):
            return {}
        image_id = session.shown_results[index]
        entry = session.results[image_id]
        if entry.status != "done":
            session.view = None
            return {
                **self.view_outputs(session),
                self.notice: notice_html(result_caption(entry, session.lang)),
            }
        controls = self.controls(session, panel)
        if controls is None:
            return {self.notice: notice_html(t(session.lang, "no_keywords"))}
        try:
            self.render_view(session, image_id, controls)
        except ApiError as error:
            return {self.notice: self._fail(session, error)}
        return {**self.view_outputs(session), self.notice: notice_html("")}

    def _click_view(self, session: Session, point_mode: str, evt: gr.EventData) -> dict[Any, Any]:
        """A click on the viewer adds a point (1 positive, 0 negative; Shift: negative) at
        the image pixel the page reports and refines a mask through
        ``POST /images/{id}/prompt``."""
        view = session.view
        data = getattr(evt, "_data", None) or {}
        try:
            x, y = float(data["x"]), float(data["y"])
        except (KeyError, TypeError, ValueError):
            return {self.notice: notice_html(t(session.lang, "select_result"))}
        if view is None:
            return {self.notice: notice_html(t(session.lang, "select_result"))}
        label = 0 if str(point_mode) == "0" or data.get("shift") is True else 1
        points = [*view.points, (round(x, 1), round(y, 1), label)]
        try:
            answer = self.ctx.client.prompt(view.image_id, [list(p) for p in points])
        except ApiError as error:
            return {self.notice: self._fail(session, error)}
        refined = list(answer["masks"])
        for shown in {id(v): v for v in (view, session.view) if v is not None}.values():
            if shown.image_id == view.image_id:  # a re-render may have replaced the view meanwhile
                shown.points, shown.refined = points, refined
        return {**self.view_outputs(session), self.notice: notice_html("")}

    def _clear_points(self, session: Session) -> dict[Any, Any]:
        if session.view is not None:
            session.view.points, session.view.refined = [], []
        return self.view_outputs(session)

    def click_pad(self, evt: gr.SelectData) -> dict[Any, Any]:
        if not isinstance(evt.index, list | tuple) or len(evt.index) < 2:
            return {}
        threshold, merge = pad_values(float(evt.index[0]), float(evt.index[1]))
        return {self.ui.threshold: threshold, self.ui.merge: merge}

    # The handlers Gradio calls (inputs: `SegmentationLayout.inputs()`): one at a time per session.
    def refresh(self, values: Mapping[Any, Any]) -> dict[Any, Any]:
        session, panel = self.ui.read(values)
        with session.lock:
            return self._refresh(session, panel)

    def select_result(self, values: Mapping[Any, Any], evt: gr.SelectData) -> dict[Any, Any]:
        session, panel = self.ui.read(values)
        with session.lock:
            return self._select_result(session, panel, evt)

    def click_view(self, session: Session, point_mode: str, evt: gr.EventData) -> dict[Any, Any]:
        with session.lock:
            return self._click_view(session, point_mode, evt)

    def clear_points(self, session: Session) -> dict[Any, Any]:
        with session.lock:
            return self._clear_points(session)

    def _fail(self, session: Session, error: ApiError) -> str:
        text = self.ctx.describe(error, session)
        gr.Warning(text)
        return notice_html(text)


def decode_overlay(answer: dict[str, Any]) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(answer["overlay_png_base64"])))
