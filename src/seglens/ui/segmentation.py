"""The Image Segmentation module: its layout, one builder per panel. Handlers live in
`jobs`, `results`, `logs` and `camera`; they refer to the components through this object
and read the control panel as one `PanelControls` value (`read`).

Element ids (``elem_id``) are stable: the browser tests and docs/ui.md use them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gradio as gr

from seglens.core.types import QueryParams
from seglens.ui.controls import PanelControls
from seglens.ui.i18n import Translator, t
from seglens.ui.log_tabs import EN, LogTabs
from seglens.ui.state import Session
from seglens.ui.viewer import ViewerData, build_viewer
from seglens.ui.views import batch_table, progress_html, region_table, threshold_pad

__all__ = ["EXAMPLES", "SegmentationLayout"]

EXAMPLES = ["cat", "cup, plate", "person, -sky", "dog, cat, -grass", "rocket, cloud"]
MAX_POINTS_PER_SIDE = 64


class SegmentationLayout(LogTabs):
    """Builds the components inside the current Blocks context: sources, batch, query,
    controls and run buttons on the left; results (the client-side viewer), details,
    statistics and history tabs on the right."""

    def __init__(
        self,
        tr: Translator,
        profile_choices: list[str] | None = None,
        *,
        session: gr.State | None = None,
        viewer_data: ViewerData | None = None,
    ) -> None:
        self.tr = tr
        self.session = session if session is not None else gr.State(Session())
        with gr.Row(equal_height=False, elem_id="seg-row"):
            with gr.Column(scale=4, min_width=320, elem_id="seg-left"):
                self._build_sources()
                self._build_batch()
                self._build_query()
                self._build_controls(profile_choices or [])
                self._build_run()
            with (
                gr.Column(scale=7, min_width=480, elem_id="seg-right"),
                gr.Tabs(elem_id="result-tabs") as self.result_tabs,
            ):
                self._build_results_tab(viewer_data)
                self._build_details_tab()
                self._build_stats_tab()
                self._build_history_tab()

    # -- the control panel as one value ------------------------------------------------------
    @property
    def panel_components(self) -> list[Any]:
        return [
            self.keywords,
            self.exclude,
            self.mode,
            self.threshold,
            self.merge,
            self.alpha,
            self.merge_strategy,
            self.points_per_side,
            self.profile,
        ]

    @property
    def kept_controls(self) -> list[Any]:
        """The controls a session keeps (`ui/persist.py`) and a reopened job sets, in this
        order: keywords, exclude, mode, threshold, merging, transparency, points per side."""
        return [
            self.keywords,
            self.exclude,
            self.mode,
            self.threshold,
            self.merge,
            self.alpha,
            self.points_per_side,
        ]

    def inputs(self) -> set[Any]:
        """Event inputs giving a handler one dict: the session and the control panel."""
        return {self.session, *self.panel_components}

    def read(self, values: Mapping[Any, Any]) -> tuple[Session, PanelControls]:
        """The session and the panel's values from an `inputs()` dict. Values a client sent
        outside the controls' ranges are clamped; unknown modes fall back to the defaults."""

        def unit(component: Any, default: float) -> float:
            try:
                return min(1.0, max(0.0, float(values.get(component, default))))
            except (TypeError, ValueError):
                return default

        mode = values.get(self.mode)
        strategy = values.get(self.merge_strategy)
        params = QueryParams(
            threshold=unit(self.threshold, 0.5),
            merge_threshold=unit(self.merge, 0.7),
            mode="all" if mode == "all" else "any",
            merge_strategy="union" if strategy == "union" else "nms",
        )
        try:
            pps = int(values.get(self.points_per_side) or 0) or None
        except (TypeError, ValueError):
            pps = None
        panel = PanelControls(
            keywords=str(values.get(self.keywords) or ""),
            exclude=str(values.get(self.exclude) or ""),
            params=params,
            alpha=unit(self.alpha, 0.5),
            points_per_side=pps,
            profile=str(values.get(self.profile) or "") or None,
        )
        return values[self.session], panel

    # -- left column -------------------------------------------------------------------------
    def _build_sources(self) -> None:
        tr, L = self.tr, self.tr.label
        with gr.Tabs(elem_id="sources") as self.source_tabs:
            self.tab_upload = tr.label(gr.Tab(t(EN, "src_upload"), id="upload"), "src_upload")
            with self.tab_upload:
                self.upload = L(
                    gr.File(
                        label=t(EN, "upload_files"),
                        file_count="multiple",
                        type="filepath",
                        elem_id="upload",
                        height=120,
                    ),
                    "upload_files",
                )
                self.retry_upload = tr.value(
                    gr.Button(t(EN, "retry_upload"), size="sm", elem_id="retry-upload", visible=False),
                    "retry_upload",
                )
            self.tab_camera = tr.label(gr.Tab(t(EN, "src_camera"), id="camera"), "src_camera")
            with self.tab_camera:
                self._build_camera()

    def _build_camera(self) -> None:
        tr, L = self.tr, self.tr.label
        self.camera = L(
            gr.Image(
                label=t(EN, "camera"),
                sources=["webcam"],
                streaming=True,
                type="numpy",
                elem_id="camera",
                height=240,
            ),
            "camera",
        )
        # The capture button's front-end step puts the preview's current frame here (a
        # JPEG data URL), so capturing needs no streaming.
        self.frame_data = gr.Textbox(visible=False, elem_id="frame-data")
        with gr.Row():
            self.capture = tr.value(gr.Button(t(EN, "capture"), elem_id="capture", size="sm"), "capture")
            self.live = L(gr.Checkbox(label=t(EN, "live"), value=False, elem_id="live"), "live")
        self.live_view = L(
            gr.Image(label=t(EN, "live_view"), interactive=False, elem_id="live-view", height=240),
            "live_view",
        )
        self.fps = gr.Markdown(t(EN, "fps_idle"), elem_id="fps")

    def _build_batch(self) -> None:
        tr, L = self.tr, self.tr.label
        self.batch = L(
            gr.Gallery(
                label=t(EN, "batch"),
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
                value=batch_table([], EN),
                label=t(EN, "batch_table"),
                interactive=False,
                elem_id="batch-table",
                max_height=180,
                wrap=True,
            ),
            "batch_table",
        )
        with gr.Row():
            self.remove = tr.value(
                gr.Button(t(EN, "remove_image"), size="sm", elem_id="remove-image"), "remove_image"
            )
            self.clear_images = tr.value(
                gr.Button(t(EN, "clear_images"), size="sm", elem_id="clear-images"), "clear_images"
            )

    def _build_query(self) -> None:
        tr = self.tr
        with gr.Group():
            self.keywords = tr.placeholder(
                gr.Textbox(
                    label=t(EN, "keywords"),
                    placeholder=t(EN, "keywords_ph"),
                    elem_id="keywords",
                    max_lines=1,
                ),
                "keywords",
                "keywords_ph",
            )
            with gr.Row():
                self.mode = tr.choices(
                    gr.Radio(
                        [(t(EN, "mode_any"), "any"), (t(EN, "mode_all"), "all")],
                        value="any",
                        label=t(EN, "mode"),
                        elem_id="mode",
                    ),
                    "mode",
                    [("mode_any", "any"), ("mode_all", "all")],
                )
                self.exclude = tr.placeholder(
                    gr.Textbox(
                        label=t(EN, "exclude"),
                        placeholder=t(EN, "exclude_ph"),
                        elem_id="exclude",
                        max_lines=1,
                    ),
                    "exclude",
                    "exclude_ph",
                )
        self.translate = tr.value(gr.Button(t(EN, "translate"), size="sm", elem_id="translate"), "translate")
        self.examples = gr.Examples(
            examples=[[e] for e in EXAMPLES],
            inputs=[self.keywords],
            label=t(EN, "examples"),
            examples_per_page=len(EXAMPLES),
            elem_id="keyword-examples",
        )
        tr.label(self.examples.dataset, "examples")

    def _build_controls(self, profile_choices: list[str]) -> None:
        tr = self.tr
        with gr.Group(elem_id="controls"):
            self.controls_title = tr.value(gr.Markdown(t(EN, "controls")), "controls")
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
                    self.pad_caption = tr.value(gr.Markdown(t(EN, "pad"), elem_id="pad-caption"), "pad")
            strategies = [("strategy_nms", "nms"), ("strategy_union", "union")]
            self.merge_strategy = tr.choices(
                gr.Radio(
                    [(t(EN, k), v) for k, v in strategies],
                    value="nms",
                    label=t(EN, "merge_strategy"),
                    info=t(EN, "merge_strategy_info"),
                    elem_id="merge-strategy",
                ),
                "merge_strategy",
                strategies,
                info="merge_strategy_info",
            )
            self._build_advanced(profile_choices)

    def _build_advanced(self, choices: list[str]) -> None:
        L = self.tr.label
        with L(gr.Accordion(t(EN, "advanced"), open=False, elem_id="advanced"), "advanced"):
            self.profile = L(
                gr.Dropdown(
                    choices=choices,
                    value=choices[0] if choices else None,
                    label=t(EN, "profile"),
                    elem_id="profile",
                    allow_custom_value=True,
                ),
                "profile",
            )
            self.points_per_side = L(
                gr.Slider(
                    0, MAX_POINTS_PER_SIDE, value=0, step=1, label=t(EN, "pps"), elem_id="points-per-side"
                ),
                "pps",
            )

    def _build_run(self) -> None:
        tr = self.tr
        with gr.Row():
            self.start = tr.value(
                gr.Button(t(EN, "start"), variant="primary", elem_id="start", interactive=False), "start"
            )
            self.stop = tr.value(
                gr.Button(t(EN, "stop"), variant="stop", elem_id="stop", interactive=False), "stop"
            )
            self.resume = tr.value(gr.Button(t(EN, "resume"), elem_id="resume", interactive=False), "resume")
        self.progress = gr.HTML(progress_html(None, EN), elem_id="progress")

    def _unit_slider(self, key: str, value: float, step: float) -> gr.Slider:
        """A 0-1 control-panel slider whose label and help follow the language switch."""
        slider = gr.Slider(
            0, 1, value=value, step=step, label=t(EN, key), info=t(EN, f"{key}_info"), elem_id=key
        )
        return self.tr.label(slider, key, info=f"{key}_info")

    # -- right column ------------------------------------------------------------------------
    def _build_results_tab(self, viewer_data: ViewerData | None) -> None:
        tr, L = self.tr, self.tr.label
        self.tab_results = L(gr.Tab(t(EN, "tab_results"), id="results"), "tab_results")
        with self.tab_results, gr.Row(equal_height=False):
            with gr.Column(scale=3):
                # The large view: repainted in the page on every control change.
                self.view = build_viewer(viewer_data)
                with gr.Row():
                    self.point_mode = tr.choices(
                        gr.Radio(
                            [(t(EN, "point_pos"), "1"), (t(EN, "point_neg"), "0")],
                            value="1",
                            label=t(EN, "point_mode"),
                            elem_id="point-mode",
                            scale=3,
                        ),
                        "point_mode",
                        [("point_pos", "1"), ("point_neg", "0")],
                    )
                    self.clear_points = tr.value(
                        gr.Button(t(EN, "clear_points"), size="sm", elem_id="clear-points", scale=1),
                        "clear_points",
                    )
                self.point_hint = tr.value(gr.Markdown(t(EN, "point_hint")), "point_hint")
                self.results = L(
                    gr.Gallery(
                        label=t(EN, "results_gallery"),
                        columns=4,
                        height=250,
                        allow_preview=False,
                        object_fit="contain",
                        elem_id="results-gallery",
                        format="jpeg",
                    ),
                    "results_gallery",
                )
                self.regions = L(
                    gr.Dataframe(
                        value=region_table([], [], EN),
                        label=t(EN, "regions"),
                        interactive=False,
                        elem_id="regions",
                        max_height=240,
                    ),
                    "regions",
                )
                self._build_downloads()
            # The compact assistant panel is placed here by the assistant module.
            self.side = gr.Column(scale=2, min_width=260, elem_id="assistant-panel")

    def _build_downloads(self) -> None:
        tr, L = self.tr, self.tr.label
        formats = [
            ("fmt_coco", "coco"),
            ("fmt_masks", "masks"),
            ("fmt_overlays", "overlays"),
            ("fmt_csv", "csv"),
        ]
        # Which query and settings the downloads use (JobHandlers.export_summary).
        self.export_settings = gr.Markdown("", elem_id="export-settings")
        with L(gr.Accordion(t(EN, "downloads"), open=True), "downloads"), gr.Row():
            self.export_format = tr.choices(
                gr.Radio(
                    [(t(EN, k), v) for k, v in formats],
                    value="coco",
                    label=t(EN, "export_format"),
                    elem_id="export-format",
                    scale=3,
                ),
                "export_format",
                formats,
            )
            self.export = tr.value(gr.Button(t(EN, "export"), elem_id="export", scale=1), "export")
            self.export_file = L(
                gr.File(
                    label=t(EN, "export_file"),
                    interactive=False,
                    elem_id="export-file",
                    scale=2,
                    visible=False,
                ),
                "export_file",
            )
