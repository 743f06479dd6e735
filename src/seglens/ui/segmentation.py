"""The Image Segmentation module: its layout. Handlers live in `jobs`, `results`, `logs`
and `camera`; they refer to the components through this object.

Element ids (``elem_id``) are stable: the browser tests and docs/ui.md use them.
"""

from __future__ import annotations

import gradio as gr

from seglens.ui.i18n import Translator, t
from seglens.ui.views import batch_table, history_table, progress_html, region_table, threshold_pad

__all__ = ["EXAMPLES", "SegmentationLayout"]

EXAMPLES = ["cat", "cup, plate", "person, -sky", "dog, cat, -grass", "rocket, cloud"]
MAX_POINTS_PER_SIDE = 64


class SegmentationLayout:
    """Builds the components inside the current Blocks context."""

    def __init__(self, tr: Translator, profile_choices: list[str] | None = None) -> None:
        self.tr = tr
        en = "en"
        L = tr.label

        with gr.Row(equal_height=False):
            # ---- left: sources, query, controls -----------------------------------------
            with gr.Column(scale=4, min_width=320):
                with gr.Tabs(elem_id="sources") as self.source_tabs:
                    self.tab_upload = tr.label(gr.Tab(t(en, "src_upload"), id="upload"), "src_upload")
                    with self.tab_upload:
                        self.upload = L(
                            gr.File(
                                label=t(en, "upload_files"),
                                file_count="multiple",
                                type="filepath",
                                elem_id="upload",
                                height=120,
                            ),
                            "upload_files",
                        )
                        self.retry_upload = tr.value(
                            gr.Button(
                                t(en, "retry_upload"), size="sm", elem_id="retry-upload", visible=False
                            ),
                            "retry_upload",
                        )
                    self.tab_camera = tr.label(gr.Tab(t(en, "src_camera"), id="camera"), "src_camera")
                    with self.tab_camera:
                        self.camera = L(
                            gr.Image(
                                label=t(en, "camera"),
                                sources=["webcam"],
                                streaming=True,
                                type="numpy",
                                elem_id="camera",
                                height=240,
                            ),
                            "camera",
                        )
                        # The capture button's front-end step puts the preview's current frame
                        # here (a JPEG data URL), so capturing needs no streaming.
                        self.frame_data = gr.Textbox(visible=False, elem_id="frame-data")
                        with gr.Row():
                            self.capture = tr.value(
                                gr.Button(t(en, "capture"), elem_id="capture", size="sm"), "capture"
                            )
                            self.live = L(
                                gr.Checkbox(label=t(en, "live"), value=False, elem_id="live"), "live"
                            )
                        self.live_view = L(
                            gr.Image(
                                label=t(en, "live_view"), interactive=False, elem_id="live-view", height=240
                            ),
                            "live_view",
                        )
                        self.fps = gr.Markdown(t(en, "fps_idle"), elem_id="fps")
                self.batch = L(
                    gr.Gallery(
                        label=t(en, "batch"),
                        columns=4,
                        height=230,
                        allow_preview=False,
                        object_fit="cover",
                        elem_id="batch-gallery",
                        format="jpeg",
                    ),
                    "batch",
                )
                self.batch_table = L(
                    gr.Dataframe(
                        value=batch_table([], en),
                        label=t(en, "batch_table"),
                        interactive=False,
                        elem_id="batch-table",
                        max_height=180,
                        wrap=True,
                    ),
                    "batch_table",
                )
                with gr.Row():
                    self.remove = tr.value(
                        gr.Button(t(en, "remove_image"), size="sm", elem_id="remove-image"), "remove_image"
                    )
                    self.clear_images = tr.value(
                        gr.Button(t(en, "clear_images"), size="sm", elem_id="clear-images"), "clear_images"
                    )

                with gr.Group():
                    self.keywords = tr.placeholder(
                        gr.Textbox(
                            label=t(en, "keywords"),
                            placeholder=t(en, "keywords_ph"),
                            elem_id="keywords",
                            max_lines=1,
                        ),
                        "keywords",
                        "keywords_ph",
                    )
                    with gr.Row():
                        self.mode = tr.choices(
                            gr.Radio(
                                [(t(en, "mode_any"), "any"), (t(en, "mode_all"), "all")],
                                value="any",
                                label=t(en, "mode"),
                                elem_id="mode",
                            ),
                            "mode",
                            [("mode_any", "any"), ("mode_all", "all")],
                        )
                        self.exclude = tr.placeholder(
                            gr.Textbox(
                                label=t(en, "exclude"),
                                placeholder=t(en, "exclude_ph"),
                                elem_id="exclude",
                                max_lines=1,
                            ),
                            "exclude",
                            "exclude_ph",
                        )
                self.translate = tr.value(
                    gr.Button(t(en, "translate"), size="sm", elem_id="translate"), "translate"
                )
                self.examples = gr.Examples(
                    examples=[[e] for e in EXAMPLES],
                    inputs=[self.keywords],
                    label=t(en, "examples"),
                    examples_per_page=len(EXAMPLES),
                    elem_id="keyword-examples",
                )
                tr.label(self.examples.dataset, "examples")

                with gr.Group(elem_id="controls"):
                    self.controls_title = tr.value(gr.Markdown(t(en, "controls")), "controls")
                    with gr.Row(equal_height=False):
                        with gr.Column(scale=3, min_width=200):
                            self.threshold = self._unit_slider("threshold", 0.5, 0.01)
                            self.merge = self._unit_slider("merge", 0.7, 0.01)
                            self.alpha = self._unit_slider("alpha", 0.5, 0.05)
                        with gr.Column(scale=2, min_width=170):
                            self.pad = gr.Image(
                                value=threshold_pad(0.5, 0.7),
                                show_label=False,
                                container=False,
                                interactive=False,
                                elem_id="pad",
                                height=180,
                                width=180,
                                buttons=[],
                                format="png",
                            )
                            self.pad_caption = tr.value(
                                gr.Markdown(t(en, "pad"), elem_id="pad-caption"), "pad"
                            )
                    with tr.label(
                        gr.Accordion(t(en, "advanced"), open=False, elem_id="advanced"), "advanced"
                    ):
                        choices = profile_choices or []
                        self.profile = L(
                            gr.Dropdown(
                                choices=choices,
                                value=choices[0] if choices else None,
                                label=t(en, "profile"),
                                elem_id="profile",
                                allow_custom_value=True,
                            ),
                            "profile",
                        )
                        self.points_per_side = L(
                            gr.Slider(
                                0,
                                MAX_POINTS_PER_SIDE,
                                value=0,
                                step=1,
                                label=t(en, "pps"),
                                elem_id="points-per-side",
                            ),
                            "pps",
                        )
                with gr.Row():
                    self.start = tr.value(
                        gr.Button(t(en, "start"), variant="primary", elem_id="start", interactive=False),
                        "start",
                    )
                    self.stop = tr.value(
                        gr.Button(t(en, "stop"), variant="stop", elem_id="stop", interactive=False), "stop"
                    )
                    self.resume = tr.value(
                        gr.Button(t(en, "resume"), elem_id="resume", interactive=False), "resume"
                    )
                self.progress = gr.HTML(progress_html(None, en), elem_id="progress")

            # ---- right: results and logs -------------------------------------------------
            with gr.Column(scale=7, min_width=480), gr.Tabs(elem_id="result-tabs") as self.result_tabs:
                self.tab_results = tr.label(gr.Tab(t(en, "tab_results"), id="results"), "tab_results")
                with self.tab_results, gr.Row(equal_height=False):
                    with gr.Column(scale=3):
                        self.results = L(
                            gr.Gallery(
                                label=t(en, "results_gallery"),
                                columns=4,
                                height=250,
                                allow_preview=False,
                                object_fit="contain",
                                elem_id="results-gallery",
                                format="jpeg",
                            ),
                            "results_gallery",
                        )
                        self.view = L(
                            gr.Image(
                                label=t(en, "result_view"),
                                interactive=False,
                                elem_id="result-view",
                                height=420,
                                format="png",
                                buttons=["download", "fullscreen"],
                            ),
                            "result_view",
                        )
                        with gr.Row():
                            self.point_mode = tr.choices(
                                gr.Radio(
                                    [(t(en, "point_pos"), "1"), (t(en, "point_neg"), "0")],
                                    value="1",
                                    label=t(en, "point_mode"),
                                    elem_id="point-mode",
                                    scale=3,
                                ),
                                "point_mode",
                                [("point_pos", "1"), ("point_neg", "0")],
                            )
                            self.clear_points = tr.value(
                                gr.Button(t(en, "clear_points"), size="sm", elem_id="clear-points", scale=1),
                                "clear_points",
                            )
                        self.point_hint = tr.value(gr.Markdown(t(en, "point_hint")), "point_hint")
                        self.regions = L(
                            gr.Dataframe(
                                value=region_table([], [], en),
                                label=t(en, "regions"),
                                interactive=False,
                                elem_id="regions",
                                max_height=240,
                            ),
                            "regions",
                        )
                        with (
                            tr.label(gr.Accordion(t(en, "downloads"), open=True), "downloads"),
                            gr.Row(),
                        ):
                            self.export_format = tr.choices(
                                gr.Radio(
                                    [
                                        (t(en, "fmt_coco"), "coco"),
                                        (t(en, "fmt_masks"), "masks"),
                                        (t(en, "fmt_overlays"), "overlays"),
                                        (t(en, "fmt_csv"), "csv"),
                                    ],
                                    value="coco",
                                    label=t(en, "export_format"),
                                    elem_id="export-format",
                                    scale=3,
                                ),
                                "export_format",
                                [
                                    ("fmt_coco", "coco"),
                                    ("fmt_masks", "masks"),
                                    ("fmt_overlays", "overlays"),
                                    ("fmt_csv", "csv"),
                                ],
                            )
                            self.export = tr.value(
                                gr.Button(t(en, "export"), elem_id="export", scale=1), "export"
                            )
                            self.export_file = L(
                                gr.File(
                                    label=t(en, "export_file"),
                                    interactive=False,
                                    elem_id="export-file",
                                    scale=2,
                                    visible=False,
                                ),
                                "export_file",
                            )
                    # The compact assistant panel is placed here by the assistant module.
                    self.side = gr.Column(scale=2, min_width=260, elem_id="assistant-panel")

                self.tab_details = tr.label(gr.Tab(t(en, "tab_details"), id="details"), "tab_details")
                with self.tab_details:
                    self.details_title = gr.Markdown(t(en, "details_pick"), elem_id="details-title")
                    with gr.Row():
                        self.scores_chart = L(
                            gr.BarPlot(
                                x="region",
                                y="score",
                                color="keyword",
                                label=t(en, "scores_chart"),
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
                                label=t(en, "timings_chart"),
                                x_label_angle=-30,
                                elem_id="timings-chart",
                                height=260,
                            ),
                            "timings_chart",
                        )
                    self.log_table = L(
                        gr.Dataframe(
                            label=t(en, "log_table"),
                            interactive=False,
                            elem_id="log-table",
                            max_height=420,
                        ),
                        "log_table",
                    )

                self.tab_stats = tr.label(gr.Tab(t(en, "tab_stats"), id="stats"), "tab_stats")
                with self.tab_stats:
                    self.stats_summary = gr.Markdown(t(en, "stats_none"), elem_id="stats-summary")
                    with gr.Row():
                        self.stats_stage_chart = L(
                            gr.BarPlot(
                                x="stage",
                                y="ms",
                                label=t(en, "stats_stage_chart"),
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
                                label=t(en, "stats_keyword_chart"),
                                elem_id="stats-keyword-chart",
                                height=240,
                            ),
                            "stats_keyword_chart",
                        )
                        self.stats_time_chart = L(
                            gr.LinePlot(
                                x="image",
                                y="ms",
                                label=t(en, "stats_time_chart"),
                                elem_id="stats-time-chart",
                                height=240,
                            ),
                            "stats_time_chart",
                        )
                    with gr.Row():
                        self.stats_stages = L(
                            gr.Dataframe(
                                label=t(en, "stats_stages"), interactive=False, elem_id="stats-stages"
                            ),
                            "stats_stages",
                        )
                        self.stats_keywords = L(
                            gr.Dataframe(
                                label=t(en, "stats_keywords"), interactive=False, elem_id="stats-keywords"
                            ),
                            "stats_keywords",
                        )

                self.tab_history = tr.label(gr.Tab(t(en, "tab_history"), id="history"), "tab_history")
                with self.tab_history:
                    with gr.Row():
                        self.history_keyword = L(
                            gr.Textbox(
                                label=t(en, "history_keyword"), elem_id="history-keyword", max_lines=1
                            ),
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
                                [(t(en, k), v) for k, v in kinds],
                                value="job",
                                label=t(en, "history_kind"),
                                elem_id="history-kind",
                            ),
                            "history_kind",
                            kinds,
                        )
                        self.history_refresh = tr.value(
                            gr.Button(t(en, "history_refresh"), elem_id="history-refresh", size="sm"),
                            "history_refresh",
                        )
                    self.history_table = L(
                        gr.Dataframe(
                            value=history_table([], en),
                            label=t(en, "history_table"),
                            interactive=False,
                            elem_id="history-table",
                            max_height=380,
                            wrap=True,
                        ),
                        "history_table",
                    )
                    with gr.Row():
                        self.history_reopen = tr.value(
                            gr.Button(t(en, "history_reopen"), elem_id="history-reopen", size="sm"),
                            "history_reopen",
                        )
                        self.history_export = tr.value(
                            gr.Button(t(en, "history_export"), elem_id="history-export", size="sm"),
                            "history_export",
                        )
                        self.history_clear = tr.value(
                            gr.Button(
                                t(en, "history_clear"), elem_id="history-clear", size="sm", variant="stop"
                            ),
                            "history_clear",
                        )
                    self.history_file = gr.File(interactive=False, elem_id="history-file", visible=False)

    def _unit_slider(self, key: str, value: float, step: float) -> gr.Slider:
        """A 0-1 control-panel slider whose label and help follow the language switch."""
        slider = gr.Slider(
            0, 1, value=value, step=step, label=t("en", key), info=t("en", f"{key}_info"), elem_id=key
        )
        return self.tr.label(slider, key, info=f"{key}_info")
