"""Rendering results from the cache: the results gallery, the large view, the region list,
the threshold pad and refinement clicks.

Every re-render goes through ``POST /query`` with the job's points per side, so the back end
reads regions and embeddings from its cache: no new job and no model run on pixels.
"""

from __future__ import annotations

import base64
import io
import re
from typing import Any

import gradio as gr
from PIL import Image

from seglens.ui.client import ApiError
from seglens.ui.context import UiContext
from seglens.ui.i18n import t
from seglens.ui.segmentation import SegmentationLayout
from seglens.ui.state import QueryControls, ResultEntry, Session, ViewState
from seglens.ui.views import (
    draw_refinement,
    notice_html,
    pad_values,
    region_table,
    result_caption,
    threshold_pad,
)

__all__ = ["GALLERY_LIMIT", "Renderer", "compose_query"]

GALLERY_LIMIT = 60
GALLERY_SIDE_PX = 360
VIEW_SIDE_PX = 1024
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
    def controls(
        session: Session,
        keywords: str,
        exclude: str,
        mode: str,
        threshold: float,
        merge: float,
        alpha: float,
    ) -> QueryControls | None:
        query = compose_query(keywords, exclude)
        if not any(not p.startswith("-") for p in query.split(", ") if p):
            query = (session.job or {}).get("query", "")
        if not query:
            return None
        return QueryControls(
            query=query,
            threshold=float(threshold),
            merge_threshold=float(merge),
            alpha=float(alpha),
            mode=mode or "any",
            points_per_side=session.job_points_per_side,
        )

    def _query(self, image_id: str, controls: QueryControls, max_side: int) -> dict[str, Any]:
        return self.ctx.client.query(
            image_id,
            controls.query,
            threshold=controls.threshold,
            merge_threshold=controls.merge_threshold,
            mode=controls.mode,
            alpha=controls.alpha,
            points_per_side=controls.points_per_side,
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
        answer = self._query(image_id, controls, VIEW_SIDE_PX)
        png = base64.b64decode(answer["overlay_png_base64"])
        path = self.ctx.save("views", png, ".png")
        size = (int(answer["overlay_width"]), int(answer["overlay_height"]))
        image_size = size
        if answer["matches"]:
            h, w = answer["matches"][0]["rle"]["size"]
            image_size = (int(w), int(h))
        else:
            image_size = self._image_size(session, image_id, size)
        view = ViewState(
            image_id=image_id,
            overlay_path=path,
            overlay_size_wh=size,
            image_size_wh=image_size,
            matches=[{k: v for k, v in m.items() if k != "rle"} for m in answer["matches"]],
            best_scores=dict(answer.get("best_scores", {})),
        )
        previous = session.view
        if previous is not None and previous.image_id == image_id:
            # Clicks refined on this image survive a re-render (also one racing a click).
            view.points, view.refined = previous.points, previous.refined
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
            return {self.ui.view: None, self.ui.regions: region_table([], [], session.lang)}
        picture: str | Image.Image = view.overlay_path
        if view.points or view.refined:
            with Image.open(view.overlay_path) as base:
                picture = draw_refinement(base.copy(), view.refined, view.points, view.image_size_wh)
        return {
            self.ui.view: picture,
            self.ui.regions: region_table(view.matches, view.refined, session.lang),
        }

    # -- handlers ------------------------------------------------------------------------
    def _rerender(
        self,
        session: Session,
        keywords: str,
        exclude: str,
        mode: str,
        threshold: float,
        merge: float,
        alpha: float,
    ) -> dict[Any, Any]:
        """Any control moved: redraw the pad, the large view and the gallery from cache."""
        out: dict[Any, Any] = {self.ui.pad: threshold_pad(float(threshold), float(merge))}
        controls = self.controls(session, keywords, exclude, mode, threshold, merge, alpha)
        if controls is None or not session.results:
            return out
        try:
            if session.view is not None and session.results.get(session.view.image_id, None) is not None:
                self.render_view(session, session.view.image_id, controls)
                out.update(self.view_outputs(session))
            for entry in sorted(session.results.values(), key=lambda e: e.position)[:GALLERY_LIMIT]:
                self.render_entry(session, entry, controls)
            out[self.ui.results] = self.gallery(session)
            out[self.notice] = notice_html("")
        except ApiError as error:
            out[self.notice] = self._fail(session, error)
        return out

    def _select_result(
        self,
        session: Session,
        keywords: str,
        exclude: str,
        mode: str,
        threshold: float,
        merge: float,
        alpha: float,
        evt: gr.SelectData,
    ) -> dict[Any, Any]:
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
        controls = self.controls(session, keywords, exclude, mode, threshold, merge, alpha)
        if controls is None:
            return {self.notice: notice_html(t(session.lang, "no_keywords"))}
        try:
            self.render_view(session, image_id, controls)
        except ApiError as error:
            return {self.notice: self._fail(session, error)}
        return {**self.view_outputs(session), self.notice: notice_html("")}

    def _click_view(self, session: Session, point_mode: str, evt: gr.SelectData) -> dict[Any, Any]:
        """A click on the large view adds a point (1 positive, 0 negative) in image pixels
        and refines a mask through ``POST /images/{id}/prompt``."""
        view = session.view
        if view is None or not isinstance(evt.index, list | tuple) or len(evt.index) < 2:
            return {self.notice: notice_html(t(session.lang, "select_result"))}
        x, y = float(evt.index[0]), float(evt.index[1])
        sx = view.image_size_wh[0] / view.overlay_size_wh[0]
        sy = view.image_size_wh[1] / view.overlay_size_wh[1]
        label = 0 if str(point_mode) == "0" else 1
        points = [*view.points, (round(x * sx, 1), round(y * sy, 1), label)]
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

    # The handlers Gradio calls: one at a time per session.
    def rerender(
        self,
        session: Session,
        keywords: str,
        exclude: str,
        mode: str,
        threshold: float,
        merge: float,
        alpha: float,
    ) -> dict[Any, Any]:
        with session.lock:
            return self._rerender(session, keywords, exclude, mode, threshold, merge, alpha)

    def select_result(
        self,
        session: Session,
        keywords: str,
        exclude: str,
        mode: str,
        threshold: float,
        merge: float,
        alpha: float,
        evt: gr.SelectData,
    ) -> dict[Any, Any]:
        with session.lock:
            return self._select_result(session, keywords, exclude, mode, threshold, merge, alpha, evt)

    def click_view(self, session: Session, point_mode: str, evt: gr.SelectData) -> dict[Any, Any]:
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
