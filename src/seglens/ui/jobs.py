"""The batch and its job: uploads with thumbnails, removing images, start / stop / resume,
progress from the job's server-sent events (polling when the stream is not available),
the results gallery filling in, downloads."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import gradio as gr

from seglens.core.query import parse_query
from seglens.ui.client import ApiError
from seglens.ui.context import UiContext
from seglens.ui.controls import PanelControls
from seglens.ui.i18n import t
from seglens.ui.results import Renderer, compose_query
from seglens.ui.segmentation import SegmentationLayout
from seglens.ui.state import QueryControls, ResultEntry, Session
from seglens.ui.uploads import NotUploadedError
from seglens.ui.views import batch_caption, batch_table, notice_html, progress_html

__all__ = ["JobHandlers"]

ACTIVE = ("queued", "running")
FINISHED = ("completed", "failed", "cancelled")
POLL_S = 0.5
# The results on screen come from `POST /query` without a merge strategy, i.e. its default.


class JobHandlers:
    def __init__(self, ctx: UiContext, ui: SegmentationLayout, renderer: Renderer, notice: Any) -> None:
        self.ctx = ctx
        self.ui = ui
        self.renderer = renderer
        self.notice = notice

    # -- batch -----------------------------------------------------------------------------
    def batch_outputs(self, session: Session) -> dict[Any, Any]:
        items = [(e.thumb_path, batch_caption(e)) for e in session.images]
        return {
            self.ui.batch: items,
            self.ui.batch_table: batch_table(session.images, session.lang),
            **self.buttons(session),
        }

    def add_files(self, session: Session, files: list[tuple[str, bytes]]) -> list[str]:
        """Upload; returns one readable problem per rejected file."""
        problems: list[str] = []
        answer = self.ctx.client.upload(files)
        known = {e.id for e in session.images}
        for item in answer["files"]:
            if item["status"] == "rejected":
                error = item.get("error") or {}
                problems.append(
                    t(
                        session.lang,
                        "rejected",
                        name=item.get("filename", "?"),
                        message=error.get("message", "?"),
                    )
                )
                continue
            image = item["image"]
            if image["id"] not in known:
                session.images.append(self.ctx.image_entry(image))
                known.add(image["id"])
        return problems

    def upload(self, session: Session, paths: list[str] | None) -> Iterator[dict[Any, Any]]:
        """One request per file, so thumbnails and info appear as each file arrives. Only
        files Gradio's upload route received are read (`UploadedFiles`)."""
        problems: list[str] = []
        unreachable = False
        for path in paths or []:
            data: bytes | None = None
            try:
                data = self.ctx.uploads.read(path)
            except NotUploadedError:
                # One message for every refused path: it must not tell what is on the disk.
                problems.append(t(session.lang, "not_uploaded"))
            try:
                if data is not None:
                    problems += self.add_files(session, [(Path(path).name, data)])
            except ApiError as error:
                problems.append(self.ctx.describe(error, session))
                if error.unreachable or error.code == "backend_timeout":
                    unreachable = True
                    break
            yield {**self.batch_outputs(session), self.notice: self._notice(problems)}
        for problem in problems:
            gr.Warning(problem)
        # With the back end away the files stay in the box, for "Upload again".
        yield {
            **self.batch_outputs(session),
            self.notice: self._notice(problems),
            self.ui.upload: gr.skip() if unreachable else None,
            self.ui.retry_upload: gr.update(visible=unreachable),
        }

    def select_upload(self, session: Session, evt: gr.SelectData) -> None:
        session.selected_upload = evt.index if isinstance(evt.index, int) else None

    def remove(self, session: Session) -> dict[Any, Any]:
        index = session.selected_upload
        if index is None or not 0 <= index < len(session.images):
            return {self.notice: notice_html(t(session.lang, "nothing_selected"), "info")}
        del session.images[index]
        session.selected_upload = None
        return {**self.batch_outputs(session), self.notice: notice_html("")}

    def clear(self, session: Session) -> dict[Any, Any]:
        session.images.clear()
        session.selected_upload = None
        return {**self.batch_outputs(session), self.notice: notice_html("")}

    # -- job control -------------------------------------------------------------------------
    def buttons(self, session: Session) -> dict[Any, Any]:
        job = session.job
        status = job["status"] if job else None
        progress = job["progress"] if job else {}
        resumable = status in ("cancelled", "interrupted", "failed") or (
            status == "completed" and (progress.get("failed", 0) + progress.get("skipped", 0)) > 0
        )
        return {
            self.ui.start: gr.update(interactive=status not in ACTIVE and bool(session.images)),
            self.ui.stop: gr.update(interactive=status in ACTIVE or status == "interrupted"),
            self.ui.resume: gr.update(interactive=resumable),
        }

    def start(self, values: Mapping[Any, Any]) -> dict[Any, Any]:
        """Start a job over the batch with the control panel's query and knobs
        (inputs: `SegmentationLayout.inputs()`)."""
        session, panel = self.ui.read(values)
        session.follow = False
        lang = session.lang
        if not session.images:
            return self._warn(session, t(lang, "no_images"))
        query = compose_query(panel.keywords, panel.exclude)
        if not query:
            return self._warn(session, t(lang, "no_keywords"))
        try:
            parse_query(query)
        except ValueError as error:
            return self._warn(session, t(lang, "bad_keywords", message=str(error)))
        params: dict[str, Any] = {
            **asdict(panel.params),
            "alpha": panel.alpha,
            "points_per_side": panel.points_per_side,
            "profile": panel.profile,
        }
        try:
            job = self.ctx.client.create_job([e.id for e in session.images], query, params)
        except ApiError as error:
            return self._warn(session, self.ctx.describe(error, session))
        self._adopt(session, job)
        return {
            self.ui.progress: progress_html(job, lang),
            self.ui.results: [],
            **self.renderer.view_outputs(session),
            **self.buttons(session),
            self.notice: notice_html(""),
        }

    def _adopt(self, session: Session, job: dict[str, Any]) -> None:
        """Make `job` the session's job: entries for its images, nothing rendered yet."""
        session.job_id = job["id"]
        session.job = job
        session.job_points_per_side = job["params"].get("points_per_side")
        session.results = {}
        session.shown_results = []
        session.view = None
        session.pending_view = None
        session.follow = True

    def stop(self, session: Session) -> dict[Any, Any]:
        if not session.job_id:
            return self._warn(session, t(session.lang, "no_job"))
        try:
            session.job = self.ctx.client.cancel_job(session.job_id)
        except ApiError as error:
            return self._warn(session, self.ctx.describe(error, session))
        return {self.ui.progress: progress_html(session.job, session.lang), **self.buttons(session)}

    def resume(self, session: Session) -> dict[Any, Any]:
        session.follow = False
        if not session.job_id:
            return self._warn(session, t(session.lang, "no_job"))
        try:
            session.job = self.ctx.client.resume_job(session.job_id)
        except ApiError as error:
            return self._warn(session, self.ctx.describe(error, session))
        session.follow = True
        return {
            self.ui.progress: progress_html(session.job, session.lang),
            **self.buttons(session),
            self.notice: notice_html(""),
        }

    def follow(self, values: Mapping[Any, Any]) -> Iterator[dict[Any, Any]]:
        """Follow the session's job until it finishes (or is stopped), refreshing the
        progress bar and the results gallery at every change."""
        session, panel = self.ui.read(values)
        if not session.follow or not session.job_id:
            # Nothing to follow (an empty dict would read as "no outputs" and fail).
            yield {self.ui.progress: gr.skip()}
            return
        session.follow = False
        job_id = session.job_id
        try:
            for job in self._job_updates(job_id):
                if session.job_id != job_id:  # another job was started or reopened meanwhile
                    return
                with session.lock:
                    session.job = job
                    update = self._refresh(session, panel)
                yield update
                if job["status"] in FINISHED:
                    return
        except ApiError as error:
            yield {**self._warn(session, self.ctx.describe(error, session)), **self.buttons(session)}

    def _job_updates(self, job_id: str) -> Iterator[dict[Any, Any]]:
        """The job after each change: from ``/jobs/{id}/events``, or by polling when the
        stream cannot be opened (a proxy that buffers, an older back end)."""
        try:
            for event in self.ctx.client.job_events(job_id):
                if event.event in ("progress", "end") and isinstance(event.data, dict):
                    yield event.data
                    if event.event == "end":
                        return
            return
        except ApiError as error:
            if error.unreachable or error.status == 404:
                raise
        last = None
        while True:
            job = self.ctx.client.job(job_id)
            if job != last:
                yield job
                last = job
            if job["status"] in FINISHED:
                return
            time.sleep(POLL_S)

    def _refresh(self, session: Session, panel: PanelControls) -> dict[Any, Any]:
        """Fetch the job's results and render what finished since the last refresh."""
        assert session.job_id is not None and session.job is not None
        out: dict[Any, Any] = {
            self.ui.progress: progress_html(session.job, session.lang),
            **self.buttons(session),
        }
        progress = session.job["progress"]
        finished = progress["done"] + progress["failed"] + progress["skipped"]
        seen = sum(1 for e in session.results.values() if e.status in ("done", "failed", "skipped"))
        if finished == seen and session.results:
            return out
        controls = self.renderer.controls(session, panel)
        try:
            items = self.ctx.client.results(session.job_id)["items"]
            for item in items:
                entry = session.results.get(item["image_id"])
                if entry is None:
                    entry = ResultEntry(
                        image_id=item["image_id"],
                        filename=item.get("filename") or item["image_id"][:12],
                        position=int(item["position"]),
                        status=item["status"],
                    )
                    session.results[entry.image_id] = entry
                if entry.status != item["status"]:
                    entry.status = item["status"]
                    entry.overlay_path, entry.rendered_for = None, None
                error = item.get("error")
                entry.error = error["message"] if error else None
                entry.matches = len(item.get("matches", []))
                if entry.status in ("done", "failed", "skipped"):
                    self.renderer.render_entry(session, entry, controls)
            out.update(self._open_pending_view(session, controls))
        except ApiError as error:
            out[self.notice] = notice_html(self.ctx.describe(error, session))
            return out
        out[self.ui.results] = self.renderer.gallery(session)
        done = sorted((e for e in session.results.values() if e.status == "done"), key=lambda e: e.position)
        if session.view is None and done and controls is not None:
            # The first result comes into view by itself.
            try:
                self.renderer.render_view(session, done[0].image_id, controls)
            except ApiError as error:
                out[self.notice] = notice_html(self.ctx.describe(error, session))
                return out
            out.update(self.renderer.view_outputs(session))
        return out

    def _open_pending_view(self, session: Session, controls: QueryControls | None) -> dict[Any, Any]:
        """Open the restored session's selected image large once its result is done."""
        entry = session.results.get(session.pending_view or "")
        if entry is None or entry.status != "done" or controls is None or session.view is not None:
            return {}
        session.pending_view = None
        self.renderer.render_view(session, entry.image_id, controls)
        return self.renderer.view_outputs(session)

    # -- downloads ---------------------------------------------------------------------------
    def export_inputs(self) -> set[Any]:
        """Event inputs of the download handlers: the control panel and the format."""
        return {*self.ui.inputs(), self.ui.export_format}

    def _export_controls(self, values: Mapping[Any, Any]) -> tuple[Session, str, QueryControls | None]:
        session, panel = self.ui.read(values)
        fmt = values.get(self.ui.export_format)
        return (
            session,
            fmt if fmt in ("coco", "csv", "masks", "overlays") else "coco",
            self.renderer.controls(session, panel),
        )

    def export_summary(self, values: Mapping[Any, Any]) -> dict[Any, Any]:
        """Say which query and settings a download would use; a link prepared for other
        settings (or another job, or format) goes. A change event that changes nothing (a
        number box losing focus) keeps it."""
        session, fmt, controls = self._export_controls(values)
        key = (session.job_id, fmt, controls.key() if controls else None)
        if not session.job_id or controls is None:
            text = ""
        else:
            params = controls.params
            text = t(
                session.lang,
                "export_uses",
                query=controls.query,
                threshold=params.threshold,
                merge=params.merge_threshold,
                mode=t(session.lang, f"mode_{params.mode}"),
                alpha=controls.alpha,
            )
        if key == session.export_key:
            return {self.ui.export_settings: text}
        session.export_key = None
        return {self.ui.export_settings: text, self.ui.export_file: gr.update(value=None, visible=False)}

    def export(self, values: Mapping[Any, Any]) -> dict[Any, Any]:
        """Download the job's results as the screen shows them: the keywords, sliders and
        merge strategy on screen."""
        session, fmt, controls = self._export_controls(values)
        if not session.job_id:
            return self._warn(session, t(session.lang, "no_job"))
        settings: dict[str, Any] = {}
        if controls is not None:
            params = controls.params
            settings = {
                "query": controls.query,
                "threshold": params.threshold,
                "merge_threshold": params.merge_threshold,
                "mode": params.mode,
                "merge_strategy": params.merge_strategy,
                "alpha": controls.alpha,
            }
        try:
            name, data = self.ctx.client.export(session.job_id, fmt, **settings)
        except ApiError as error:
            return self._warn(session, self.ctx.describe(error, session))
        path = self.ctx.save_download(name, data)
        session.export_key = (session.job_id, fmt, controls.key() if controls else None)
        return {
            self.ui.export_file: gr.update(
                value=path, visible=True, label=t(session.lang, "export_file_named", name=name)
            ),
            self.notice: notice_html(""),
        }

    def _warn(self, session: Session, text: str) -> dict[Any, Any]:
        gr.Warning(text)
        return {self.notice: notice_html(text)}

    @staticmethod
    def _notice(problems: list[str]) -> str:
        return notice_html(" · ".join(problems)) if problems else notice_html("")
