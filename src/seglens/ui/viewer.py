"""The client-side result viewer (``#seg-viewer``): a `gr.HTML` whose `js_on_load` is
``static/viewer.js``.

Python tells the viewer *what* to show through its value (a JSON `ViewerSpec`: image,
query, grid, clicked points and refined masks, texts in the session's language); the page
then asks for the image's regions once through the server functions below, which proxy
``GET /images/{id}/regions`` with the UI's own API client, so a bearer token never reaches
the page. Slider moves are repainted in the page without any request.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from importlib.resources import files
from typing import Any

import gradio as gr

from seglens.core.viewdata import display_runs, display_size
from seglens.ui.client import ApiClient, ApiError
from seglens.ui.i18n import t
from seglens.ui.state import Session

__all__ = ["VIEW_SIDE_PX", "ViewerData", "build_viewer", "viewer_js", "viewer_spec"]

VIEW_SIDE_PX = 1024

TEMPLATE = """
<div class="slv">
  <div class="slv-stage"><canvas class="slv-canvas" width="0" height="0"></canvas></div>
  <div class="slv-bar">
    <span class="slv-status"></span>
    <label><input type="checkbox" data-toggle="legend" checked> <span data-text="legend">legend</span></label>
    <label><input type="checkbox" data-toggle="labels" checked> <span data-text="labels">labels</span></label>
    <label><input type="checkbox" data-toggle="contours" checked> <span data-text="contours">contours</span></label>
  </div>
</div>
"""

CSS_TEMPLATE = """
.slv-stage {display: flex; justify-content: center; align-items: center; background: #111827;
  border-radius: 8px; min-height: 160px; max-height: calc(100vh - 190px); overflow: hidden;}
.slv-canvas {max-width: 100%; max-height: calc(100vh - 190px); object-fit: contain; cursor: crosshair;}
.slv-bar {display: flex; gap: 14px; align-items: center; font-size: .85rem; padding: 4px 2px; flex-wrap: wrap;}
.slv-status {flex-grow: 1;}
.slv-bar label {display: inline-flex; gap: 4px; align-items: center; cursor: pointer;}
.slv-bar input[type=checkbox] {appearance: auto; -webkit-appearance: checkbox; width: 14px; height: 14px;
  margin: 0; accent-color: #2563eb;}
"""

_TEXT_KEYS = ("legend", "labels", "contours", "matches", "image_matched", "image_unmatched")


@cache
def viewer_js() -> str:
    """The viewer's script (package data ``seglens/ui/static/viewer.js``)."""
    return files("seglens.ui").joinpath("static/viewer.js").read_text(encoding="utf-8")


class ViewerData:
    """The server functions the page calls (plain functions: Gradio marks them)."""

    def __init__(self, client: ApiClient, compose: Callable[[str, str], str]) -> None:
        self.client = client
        self.compose = compose

    def functions(self) -> list[Callable[..., Any]]:
        """`view_regions({image_id, query, points_per_side, max_side, masks})` and
        `view_scores({image_id, keywords, exclude, points_per_side})`: Gradio passes the
        page's one argument as is, so every field is checked here."""
        client, compose = self.client, self.compose

        def regions(
            payload: Mapping[str, Any], query: str | None, max_side: int, masks: bool
        ) -> dict[str, Any]:
            try:
                pps = payload.get("points_per_side")
                return client.regions(
                    str(payload["image_id"]),
                    query=query,
                    masks=masks,
                    max_side_px=max_side,
                    points_per_side=int(pps) if pps else None,
                )
            except (ApiError, KeyError, ValueError, TypeError) as error:
                return {"error": str(error)}

        def view_regions(payload: Any) -> dict[str, Any]:
            if not isinstance(payload, Mapping):
                return {"error": "expected an object"}
            try:
                max_side = int(payload.get("max_side") or VIEW_SIDE_PX)
            except (TypeError, ValueError):
                return {"error": "max_side must be a number"}
            query = str(payload.get("query") or "") or None
            return regions(payload, query, max_side, bool(payload.get("masks", True)))

        def view_scores(payload: Any) -> dict[str, Any]:
            if not isinstance(payload, Mapping):
                return {"error": "expected an object"}
            query = compose(str(payload.get("keywords") or ""), str(payload.get("exclude") or ""))
            if not any(not p.startswith("-") for p in query.split(", ") if p):
                return {"error": "no keywords"}
            return regions(payload, query, VIEW_SIDE_PX, False)

        return [view_regions, view_scores]


def build_viewer(data: ViewerData | None) -> gr.HTML:
    """The ``#seg-viewer`` component, in the current Blocks context."""
    return gr.HTML(
        value=json.dumps(None),
        html_template=TEMPLATE,
        css_template=CSS_TEMPLATE,
        js_on_load=viewer_js(),
        elem_id="seg-viewer",
        server_functions=data.functions() if data else None,
        apply_default_css=False,
    )


def viewer_spec(
    session: Session,
    *,
    image_id: str | None,
    query: str,
    image_size_wh: tuple[int, int] | None,
    points: Sequence[Sequence[float]] = (),
    refined: Sequence[Mapping[str, Any]] = (),
) -> str:
    """The viewer's value: what to show (see viewer.js `applyValue`). Refined masks travel
    as row-major runs at the viewer's display size."""
    text = {key: t(session.lang, f"viewer_{key}") for key in _TEXT_KEYS}
    masks = []
    if image_size_wh is not None:
        size_hw = display_size((image_size_wh[1], image_size_wh[0]), VIEW_SIDE_PX)
        for mask in refined:
            runs = display_runs([mask["rle"]], size_hw) if mask.get("rle") else None
            if runs is not None:
                masks.append({"width": size_hw[1], "height": size_hw[0], "runs": runs.runs.tolist()})
    spec = {
        "image_id": image_id,
        "query": query,
        "points_per_side": session.job_points_per_side,
        "max_side": VIEW_SIDE_PX,
        "points": [[float(x), float(y), int(label)] for x, y, label in points],
        "refined": masks,
        "banner": session.warning if session.meaningless else None,
        "text": text,
        # Every answer repaints (a result picked again shows again).
        "sent_ns": time.monotonic_ns(),
    }
    return json.dumps(spec)
