"""The session the browser keeps: a reload, a second tab and a server restart bring back
the batch, the keywords, the sliders, the language, the open job and the selected image.

The browser holds a small snapshot in ``localStorage`` (a `gr.BrowserState`): ids, the
query and the knobs, never pictures or results. Everything else is what the server already
stores (images, jobs, their results), fetched again by id on load. The snapshot comes from
the browser, so it is untrusted: `parse_snapshot` keeps only well-typed, bounded values and
drops the rest.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from seglens.ui.client import ApiError, Json
from seglens.ui.context import UiContext
from seglens.ui.i18n import LANGUAGES, t
from seglens.ui.jobs import JobHandlers
from seglens.ui.segmentation import SegmentationLayout
from seglens.ui.state import Session
from seglens.ui.views import notice_html, progress_html

__all__ = [
    "SNAPSHOT_VERSION",
    "SessionKeeper",
    "Snapshot",
    "browser_state",
    "parse_snapshot",
    "restore_session",
    "snapshot",
]

SNAPSHOT_VERSION = 1
MAX_IMAGES = 500
_MAX_ID = 128
_MAX_TEXT = 4000
_MAX_SIDE = 128


@dataclass
class Snapshot:
    """What the browser keeps of a session (all optional: None means "not saved")."""

    lang: str | None = None
    keywords: str | None = None
    exclude: str | None = None
    mode: str | None = None
    threshold: float | None = None
    merge: float | None = None
    alpha: float | None = None
    points_per_side: int | None = None
    images: list[str] = field(default_factory=list)
    job_id: str | None = None
    selected: str | None = None


def browser_state(api_url: str) -> gr.BrowserState:
    """The `gr.BrowserState` for the back end at `api_url`. Its storage key and key are
    derived from the URL, so they stay the same across server restarts (a random one, the
    Gradio default, would make the saved session unreadable after a restart) and two back
    ends never read each other's session. The key only scrambles ids and keywords in the
    browser's own storage; it is sent to the browser and protects nothing secret."""
    digest = hashlib.sha256(f"seglens-session:{api_url.rstrip('/')}".encode()).hexdigest()
    return gr.BrowserState({}, storage_key=f"seglens-session-{digest[:12]}", secret=digest[12:44])


def _text(value: Any, limit: int = _MAX_TEXT) -> str | None:
    return value if isinstance(value, str) and len(value) <= limit else None


def _unit(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) and 0.0 <= number <= 1.0 else None


def _identifier(value: Any) -> str | None:
    text = _text(value, _MAX_ID)
    return text if text and text.isascii() and text.replace("-", "").replace("_", "").isalnum() else None


def parse_snapshot(data: Any) -> Snapshot:
    """The well-formed part of what the browser sent (anything else is ignored)."""
    if not isinstance(data, dict) or data.get("v") != SNAPSHOT_VERSION:
        return Snapshot()
    lang = data.get("lang")
    mode = data.get("mode")
    side = data.get("points_per_side")
    images = data.get("images")
    ids = [i for i in (_identifier(x) for x in images[:MAX_IMAGES]) if i] if isinstance(images, list) else []
    return Snapshot(
        lang=lang if lang in LANGUAGES else None,
        keywords=_text(data.get("keywords")),
        exclude=_text(data.get("exclude")),
        mode=mode if mode in ("any", "all") else None,
        threshold=_unit(data.get("threshold")),
        merge=_unit(data.get("merge")),
        alpha=_unit(data.get("alpha")),
        points_per_side=side
        if isinstance(side, int) and not isinstance(side, bool) and 0 <= side <= _MAX_SIDE
        else None,
        images=list(dict.fromkeys(ids)),
        job_id=_identifier(data.get("job_id")),
        selected=_identifier(data.get("selected")),
    )


def snapshot(
    session: Session,
    lang: str,
    keywords: str,
    exclude: str,
    mode: str,
    threshold: float,
    merge: float,
    alpha: float,
    points_per_side: float,
) -> dict[str, Any]:
    """The browser's copy of the session now. Images that could not be fetched back yet
    (the back end was away at load) stay in it, so a later reload still finds them."""
    restored = [e.id for e in session.images]
    images = list(dict.fromkeys([*restored, *session.unrestored_images]))[:MAX_IMAGES]
    view = session.view.image_id if session.view is not None else None
    return {
        "v": SNAPSHOT_VERSION,
        "lang": lang if lang in LANGUAGES else session.lang,
        "keywords": keywords or "",
        "exclude": exclude or "",
        "mode": mode or "any",
        "threshold": float(threshold),
        "merge": float(merge),
        "alpha": float(alpha),
        "points_per_side": int(points_per_side or 0),
        "images": images,
        "job_id": session.job_id,
        "selected": view or session.pending_view,
    }


def restore_session(ctx: UiContext, session: Session, saved: Snapshot) -> tuple[list[str], Json | None]:
    """Fetch the saved images back into `session`; returns the ids of images the back end
    no longer has, and the saved job (None when there is none or it was deleted). When the
    back end cannot be reached, the ids are kept in `session.unrestored_images` (and so in
    the next snapshot) and `ApiError` is raised."""
    missing: list[str] = []
    known = {e.id for e in session.images}
    pending = [i for i in saved.images if i not in known]
    for n, image_id in enumerate(pending):
        try:
            session.images.append(ctx.image_entry(ctx.client.image(image_id)))
        except ApiError as error:
            if error.status == 404:
                missing.append(image_id)
                continue
            session.unrestored_images = pending[n:]
            raise
    session.unrestored_images = []
    job = None
    if saved.job_id and saved.job_id != session.job_id:
        try:
            job = ctx.client.job(saved.job_id)
        except ApiError as error:
            if error.status != 404:
                raise
    return missing, job


class SessionKeeper:
    """The handlers that save the session into the browser and bring it back on load."""

    def __init__(self, ctx: UiContext, ui: SegmentationLayout, jobs: JobHandlers, notice: Any) -> None:
        self.ctx = ctx
        self.ui = ui
        self.jobs = jobs
        self.notice = notice

    @property
    def restore_outputs(self) -> list[Any]:
        ui = self.ui
        return [
            *ui.kept_controls,
            ui.batch,
            ui.batch_table,
            ui.start,
            ui.stop,
            ui.resume,
            ui.progress,
            self.notice,
        ]

    def restore(self, session: Session, saved: Snapshot) -> dict[Any, Any]:
        """Controls, batch and job as saved; the job's results then arrive through
        `JobHandlers.follow` (the selected image opens when its result does)."""
        ui = self.ui
        out: dict[Any, Any] = {}
        values = (
            (ui.keywords, saved.keywords),
            (ui.exclude, saved.exclude),
            (ui.mode, saved.mode),
            (ui.threshold, saved.threshold),
            (ui.merge, saved.merge),
            (ui.alpha, saved.alpha),
            (ui.points_per_side, saved.points_per_side),
        )
        out.update({component: value for component, value in values if value is not None})
        try:
            missing, job = restore_session(self.ctx, session, saved)
        except ApiError as error:
            out.update(self.jobs.batch_outputs(session))
            out[self.notice] = notice_html(self.ctx.describe(error, session))
            return out
        if job is not None:
            self.jobs._adopt(session, job)
            session.pending_view = saved.selected
            out[ui.progress] = progress_html(job, session.lang)
        out.update(self.jobs.batch_outputs(session))
        if missing:
            out[self.notice] = notice_html(t(session.lang, "images_gone", n=len(missing)), "info")
        return out

    # The handler that saves: the snapshot of the session and the controls (its inputs).
    remember = staticmethod(snapshot)
