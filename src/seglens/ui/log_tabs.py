"""The log tabs of the Image Segmentation module (image details, batch statistics,
history): their builders, mixed into `SegmentationLayout`."""

from __future__ import annotations

import gradio as gr

from seglens.ui.i18n import Translator, t
from seglens.ui.views import history_table

__all__ = ["EN", "LogTabs"]

EN = "en"


class LogTabs:
    """Builds the three log tabs inside the current Blocks context."""

    tr: Translator

    def _build_details_tab(self) -> None:
        L = self.tr.label
        self.tab_details = L(gr.Tab(t(EN, "tab_details"), id="details"), "tab_details")
        with self.tab_details:
            self.details_title = gr.Markdown(t(EN, "details_pick"), elem_id="details-title")
            with gr.Row():
                self.scores_chart = L(
                    gr.BarPlot(
                        x="region",
                        y="score",
                        color="keyword",
                        label=t(EN, "scores_chart"),
                        y_lim=[0, 1],
                        x_label_angle=-30,
                        elem_id="scores-chart",
                        height=260,
                    ),
                    "scores_chart",
                )
                self.timings_chart = L(
                    gr.BarPlot(
                        x="stage",
                        y="ms",
                        label=t(EN, "timings_chart"),
                        x_label_angle=-30,
                        elem_id="timings-chart",
                        height=260,
                    ),
                    "timings_chart",
                )
            self.log_table = L(
                gr.Dataframe(
                    label=t(EN, "log_table"), interactive=False, elem_id="log-table", max_height=420
                ),
                "log_table",
            )

    def _build_stats_tab(self) -> None:
        L = self.tr.label
        self.tab_stats = L(gr.Tab(t(EN, "tab_stats"), id="stats"), "tab_stats")
        with self.tab_stats:
            self.stats_summary = gr.Markdown(t(EN, "stats_none"), elem_id="stats-summary")
            with gr.Row():
                self.stats_stage_chart = L(
                    gr.BarPlot(
                        x="stage",
                        y="ms",
                        label=t(EN, "stats_stage_chart"),
                        x_label_angle=-30,
                        elem_id="stats-stage-chart",
                        height=240,
                    ),
                    "stats_stage_chart",
                )
                self.stats_keyword_chart = L(
                    gr.BarPlot(
                        x="keyword",
                        y="matches",
                        label=t(EN, "stats_keyword_chart"),
                        elem_id="stats-keyword-chart",
                        height=240,
                    ),
                    "stats_keyword_chart",
                )
                self.stats_time_chart = L(
                    gr.LinePlot(
                        x="image",
                        y="ms",
                        label=t(EN, "stats_time_chart"),
                        elem_id="stats-time-chart",
                        height=240,
                    ),
                    "stats_time_chart",
                )
            with gr.Row():
                self.stats_stages = L(
                    gr.Dataframe(label=t(EN, "stats_stages"), interactive=False, elem_id="stats-stages"),
                    "stats_stages",
                )
                self.stats_keywords = L(
                    gr.Dataframe(label=t(EN, "stats_keywords"), interactive=False, elem_id="stats-keywords"),
                    "stats_keywords",
                )

    def _build_history_tab(self) -> None:
        tr, L = self.tr, self.tr.label
        self.tab_history = L(gr.Tab(t(EN, "tab_history"), id="history"), "tab_history")
        with self.tab_history:
            with gr.Row():
                self.history_keyword = L(
                    gr.Textbox(label=t(EN, "history_keyword"), elem_id="history-keyword", max_lines=1),
                    "history_keyword",
                )
                kinds = [
                    ("kind_job", "job"),
                    ("kind_all", "all"),
                    ("kind_query", "query"),
                    ("kind_prompt", "prompt"),
                    ("kind_search", "search"),
                ]
                self.history_kind = tr.choices(
                    gr.Dropdown(
                        [(t(EN, k), v) for k, v in kinds],
                        value="job",
                        label=t(EN, "history_kind"),
                        elem_id="history-kind",
                    ),
                    "history_kind",
                    kinds,
                )
                self.history_refresh = tr.value(
                    gr.Button(t(EN, "history_refresh"), elem_id="history-refresh", size="sm"),
                    "history_refresh",
                )
            self.history_table = L(
                gr.Dataframe(
                    value=history_table([], EN),
                    label=t(EN, "history_table"),
                    interactive=False,
                    elem_id="history-table",
                    max_height=380,
                    wrap=True,
                ),
                "history_table",
            )
            with gr.Row():
                self.history_reopen = tr.value(
                    gr.Button(t(EN, "history_reopen"), elem_id="history-reopen", size="sm"), "history_reopen"
                )
                self.history_export = tr.value(
                    gr.Button(t(EN, "history_export"), elem_id="history-export", size="sm"), "history_export"
                )
                self.history_clear = tr.value(
                    gr.Button(t(EN, "history_clear"), elem_id="history-clear", size="sm", variant="stop"),
                    "history_clear",
                )
            self.history_file = gr.File(interactive=False, elem_id="history-file", visible=False)
