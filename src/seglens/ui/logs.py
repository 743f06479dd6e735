"""The three levels of logs: Image details (level 1), Batch statistics (level 2) and
History (level 3, with filter, reopen, clear and CSV export)."""

from __future__ import annotations

from typing import Any

import gradio as gr

from seglens.ui.client import ApiError
from seglens.ui.context import UiContext
from seglens.ui.i18n import Translator, t
from seglens.ui.jobs import JobHandlers
from seglens.ui.segmentation import SegmentationLayout
from seglens.ui.state import Session
from seglens.ui.views import (
    history_table,
    image_log_table,
    notice_html,
    per_image_frame,
    scores_frame,
    stats_frames,
    timings_frame,
)

__all__ = ["LogHandlers", "translate_charts"]


class LogHandlers:
    def __init__(self, ctx: UiContext, ui: SegmentationLayout, jobs: JobHandlers, notice: Any) -> None:
        self.ctx = ctx
        self.ui = ui
        self.jobs = jobs
        self.notice = notice

    # -- level 1 -------------------------------------------------------------------------
    def details(self, session: Session) -> dict[Any, Any]:
        lang = session.lang
        if not session.job_id or session.view is None:
            why = t(lang, "chart_empty_image")
            return {
                self.ui.details_title: t(lang, "details_pick"),
                self.ui.scores_chart: gr.BarPlot(value=None, label=_why(lang, "scores_chart", why)),
                self.ui.timings_chart: gr.BarPlot(value=None, label=_why(lang, "timings_chart", why)),
            }
        image_id = session.view.image_id
        try:
            log = self.ctx.client.image_log(session.job_id, image_id)
        except ApiError as error:
            return self._warn(session, error)
        status = t(lang, f"item_{log['status']}")
        title = f"### {log.get('filename') or image_id[:12]} · {status}"
        if session.meaningless:
            title += f"\n\n⚠ {t(lang, 'tiny_banner')}"
        timings = timings_frame(log.get("timings_ms", {}), lang)
        return {
            self.ui.details_title: title,
            self.ui.log_table: image_log_table(log, lang),
            # The chart follows what is on screen: the current thresholds' matches.
            self.ui.scores_chart: gr.BarPlot(
                value=scores_frame(session.view.matches, session.view.best_scores, lang),
                label=t(lang, "scores_chart"),
            ),
            # In pipeline order (the server's), not alphabetical.
            self.ui.timings_chart: gr.BarPlot(
                value=timings,
                sort=list(timings["stage"]),
                label=_why(lang, "timings_chart", None if len(timings) else t(lang, "chart_empty_image")),
            ),
        }

    # -- level 2 -------------------------------------------------------------------------
    def stats(self, session: Session) -> dict[Any, Any]:
        lang = session.lang
        if not session.job_id:
            why = t(lang, "chart_empty_job")
            return {
                self.ui.stats_summary: t(lang, "stats_none"),
                **{
                    chart: type(chart)(value=None, label=_why(lang, key, why))
                    for chart, key in (
                        (self.ui.stats_stage_chart, "stats_stage_chart"),
                        (self.ui.stats_keyword_chart, "stats_keyword_chart"),
                        (self.ui.stats_time_chart, "stats_time_chart"),
                    )
                },
            }
        try:
            stats = self.ctx.client.stats(session.job_id)
            results = self.ctx.client.results(session.job_id, status="done")["items"]
        except ApiError as error:
            return self._warn(session, error)
        frames = stats_frames(stats, lang)
        keyword_chart = frames["keyword_chart"]
        # From zero: with one keyword, the plot's own range would collapse onto its bar.
        top = max(1, int(keyword_chart["matches"].max())) if len(keyword_chart) else 1
        stage_chart = frames["stage_chart"]
        per_image = per_image_frame(results)
        why = t(lang, "chart_empty_job")
        return {
            self.ui.stats_summary: frames["summary"],
            self.ui.stats_stages: frames["stages"],
            self.ui.stats_keywords: frames["keywords"],
            # In pipeline order (the server's), not alphabetical.
            self.ui.stats_stage_chart: gr.BarPlot(
                value=stage_chart,
                sort=list(stage_chart["stage"]),
                label=_why(lang, "stats_stage_chart", None if len(stage_chart) else why),
            ),
            self.ui.stats_keyword_chart: gr.BarPlot(
                value=keyword_chart,
                y_lim=[0, top * 1.1],
                label=_why(lang, "stats_keyword_chart", None if len(keyword_chart) else why),
            ),
            self.ui.stats_time_chart: gr.LinePlot(
                value=per_image, label=_why(lang, "stats_time_chart", None if len(per_image) else why)
            ),
        }

    # -- level 3 -------------------------------------------------------------------------
    def history(self, session: Session, keyword: str, kind: str) -> dict[Any, Any]:
        try:
            page = self.ctx.client.history(
                keyword=keyword or None, kind=None if kind in (None, "all") else kind
            )
        except ApiError as error:
            return self._warn(session, error)
        session.history_pick = None
        return {
            self.ui.history_table: history_table(page["items"], session.lang),
            self.notice: notice_html(""),
        }

    def pick_history(self, session: Session, evt: gr.SelectData) -> None:
        row = evt.row_value or []
        # Columns: time, kind (in the session's language), query, status, images, matches,
        # duration, id.
        kinds = {t(session.lang, f"hist_{k}"): k for k in ("job", "query", "prompt", "search")}
        session.history_pick = (kinds.get(str(row[1]), str(row[1])), str(row[7])) if len(row) >= 8 else None

    def reopen(self, session: Session) -> dict[Any, Any]:
        """Make the picked job the session's job again; `JobHandlers.follow` then renders it."""
        pick = session.history_pick
        if not pick or pick[0] != "job":
            return self._text(session, t(session.lang, "history_pick_job"))
        try:
            job = self.ctx.client.job(pick[1])
        except ApiError as error:
            return self._warn(session, error)
        self.jobs._adopt(session, job)
        params = job["params"]
        gr.Info(t(session.lang, "reopened", job=job["id"][:8]))
        return {
            # The whole query (exclusions included) goes back into the keywords box.
            self.ui.keywords: job["query"],
            self.ui.exclude: "",
            self.ui.mode: params.get("mode", "any"),
            self.ui.threshold: params.get("threshold", 0.5),
            self.ui.merge: params.get("merge_threshold", 0.7),
            self.ui.alpha: params.get("alpha", 0.5),
            self.ui.points_per_side: params.get("points_per_side") or 0,
            self.ui.result_tabs: gr.Tabs(selected="results"),
            self.ui.results: [],
            **self.jobs.renderer.view_outputs(session),
            self.notice: notice_html(""),
        }

    def export(self, session: Session, keyword: str, kind: str) -> dict[Any, Any]:
        try:
            data = self.ctx.client.history_csv(keyword=keyword or None, kind=None if kind == "all" else kind)
        except ApiError as error:
            return self._warn(session, error)
        path = self.ctx.save_download("seglens-history.csv", data)
        return {self.ui.history_file: gr.update(value=path, visible=True)}

    def clear(self, session: Session, keyword: str, kind: str) -> dict[Any, Any]:
        try:
            answer = self.ctx.client.clear_history(
                keyword=keyword or None, kind=None if kind in (None, "all") else kind
            )
        except ApiError as error:
            return self._warn(session, error)
        gr.Info(t(session.lang, "history_cleared", n=answer.get("deleted", 0)))
        return self.history(session, keyword, kind)

    def _warn(self, session: Session, error: ApiError) -> dict[Any, Any]:
        return self._text(session, self.ctx.describe(error, session))

    def _text(self, session: Session, text: str) -> dict[Any, Any]:
        gr.Warning(text)
        return {self.notice: notice_html(text)}


def _why(lang: str, key: str, why: str | None) -> str:
    """A chart's label; an empty chart's says why it is empty (Gradio shows no caption
    for an empty plot)."""
    return f"{t(lang, key)} — {why}" if why else t(lang, key)


# Each chart's axes and legend: (x, y, colour) catalogue keys.
_CHART_TITLES = {
    "scores_chart": ("col_region", "col_score", "col_keyword"),
    "timings_chart": ("col_stage", "col_ms", None),
    "stats_stage_chart": ("col_stage", "col_ms", None),
    "stats_keyword_chart": ("col_keyword", "col_matches", None),
    "stats_time_chart": ("col_image", "col_ms", None),
}


def translate_charts(tr: Translator, ui: SegmentationLayout) -> None:
    """Register the charts' axis and legend titles with the language switch."""
    for name, (x, y, color) in _CHART_TITLES.items():

        def build(lang: str, x: str = x, y: str = y, color: str | None = color) -> dict[str, Any]:
            titles = {"x_title": t(lang, x), "y_title": t(lang, y)}
            if color:
                titles["color_title"] = t(lang, color)
            return titles

        tr.add(getattr(ui, name), build)
