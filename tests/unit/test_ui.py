"""The web UI's pieces that need no browser: the HTTP client, presentation helpers,
translations, error notices and a handler against a scripted back end."""

from __future__ import annotations

import copy
import io
import json
import re
import string
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from seglens.core.masks import encode_mask
from seglens.ui.camera import fps_of
from seglens.ui.client import ApiClient, ApiError, iter_sse
from seglens.ui.context import UiContext
from seglens.ui.i18n import TEXT, pick_language, t
from seglens.ui.results import compose_query
from seglens.ui.state import ImageEntry, Session
from seglens.ui.views import (
    draw_refinement,
    human_bytes,
    pad_values,
    progress_html,
    region_table,
    scores_frame,
    stats_frames,
    threshold_pad,
)

JOB = {
    "id": "job1",
    "status": "running",
    "query": "cat",
    "params": {"points_per_side": None},
    "progress": {"total": 4, "done": 1, "failed": 1, "skipped": 0, "remaining": 2},
}


def _client(handler) -> ApiClient:
    return ApiClient("http://backend.test", transport=httpx.MockTransport(handler))


def _error(status: int, code: str, message: str, **headers: str) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": message}}, headers=headers)


# -- client --------------------------------------------------------------------------------
def test_iter_sse_reads_named_events_skips_heartbeats_and_keeps_non_json():
    lines = [
        ": keep-alive",
        "event: progress",
        'data: {"done": 1}',
        "",
        "event: text",
        "data: first line",
        "data: second line",
        "",
        'data: {"unnamed": true}',
    ]
    events = list(iter_sse(iter(lines)))
    assert [(e.event, e.data) for e in events] == [
        ("progress", {"done": 1}),
        ("text", "first line\nsecond line"),
        ("message", {"unnamed": True}),
    ]


def test_client_turns_api_errors_into_codes_messages_and_retry_after():
    client = _client(lambda request: _error(429, "queue_full", "the queue is full", **{"Retry-After": "12"}))
    with pytest.raises(ApiError) as caught:
        client.create_job(["a"], "cat", {})
    assert (caught.value.status, caught.value.code, caught.value.retry_after_s) == (429, "queue_full", 12.0)
    assert caught.value.message == "the queue is full" and not caught.value.unreachable


def test_client_reports_an_unreachable_back_end_as_backend_unavailable():
    from live_server import free_port

    client = ApiClient(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ApiError) as caught:
        client.health()
    assert caught.value.unreachable and caught.value.status == 0
    assert "cannot be reached" in caught.value.message


def test_upload_gives_one_shape_when_every_file_is_rejected():
    details = [{"index": 0, "filename": "bad.jpg", "code": "corrupt_image", "message": "bad.jpg: corrupt"}]

    def handler(request: httpx.Request) -> httpx.Response:
        body = {"error": {"code": "corrupt_image", "message": "bad.jpg: corrupt", "details": details}}
        return httpx.Response(400, json=body)

    answer = _client(handler).upload([("bad.jpg", b"xx")])
    assert answer["accepted"] == 0 and answer["rejected"] == 1
    assert answer["files"][0]["status"] == "rejected"
    assert answer["files"][0]["error"] == {"code": "corrupt_image", "message": "bad.jpg: corrupt"}


def test_job_events_and_exports_over_http():
    stream = 'event: progress\ndata: {"status": "running"}\n\nevent: end\ndata: {"status": "completed"}\n\n'

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/events"):
            return httpx.Response(200, text=stream, headers={"Content-Type": "text/event-stream"})
        assert request.url.params["format"] == "csv"
        return httpx.Response(
            200, content=b"a,b\n", headers={"Content-Disposition": 'attachment; filename="job.csv"'}
        )

    client = _client(handler)
    assert [(e.event, e.data["status"]) for e in client.job_events("j")] == [
        ("progress", "running"),
        ("end", "completed"),
    ]
    assert client.export("j", "csv") == ("job.csv", b"a,b\n")


def test_the_bearer_token_is_sent_on_every_request():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Authorization"))
        return httpx.Response(200, json={"status": "ready"})

    ApiClient("http://backend.test", token="s3cret", transport=httpx.MockTransport(handler)).health()
    assert seen == ["Bearer s3cret"]


# -- notices -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("error", "lang", "expected"),
    [
        (ApiError(429, "queue_full", "x", retry_after_s=12.4), "en", "try again in about 12 s"),
        (ApiError(429, "queue_full", "x", retry_after_s=12.4), "zh", "约 12 秒后再试"),
        (ApiError(429, "too_many_requests", "x"), "en", "busy"),
        (ApiError(0, "backend_unavailable", "x"), "en", "http://backend.test cannot be reached"),
        (ApiError(404, "job_not_found", "no job with id 'x'"), "en", "no job with id 'x'"),
    ],
)
def test_errors_become_readable_notices(tmp_path, error, lang, expected):
    ctx = UiContext.create(_client(lambda r: httpx.Response(200)), tmp_path)
    assert expected in ctx.describe(error, Session(lang=lang))


def test_start_with_a_full_queue_keeps_the_batch_and_says_when_to_retry(tmp_path):
    from seglens.ui.jobs import JobHandlers
    from seglens.ui.results import Renderer

    def handler(request: httpx.Request) -> httpx.Response:
        return _error(429, "queue_full", "the queue is full", **{"Retry-After": "30"})

    ctx = UiContext.create(_client(handler), tmp_path)
    ui, notice = _Stub(), "notice"
    jobs = JobHandlers(ctx, ui, Renderer(ctx, ui, notice), notice)  # type: ignore[arg-type]
    session = Session(images=[ImageEntry("i1", "cat.jpg", 4, 3, "JPEG", 10, "")])
    with pytest.warns(UserWarning, match="queue is full"):  # the toast, outside a request
        out = jobs.start({"session": session, "keywords": "cat", "threshold": 0.5, "points_per_side": 0})
    assert "queue is full" in out[notice] and "30 s" in out[notice]
    assert session.job_id is None and [e.id for e in session.images] == ["i1"]


class _Stub:
    """Stands in for the layout: every component is its attribute name."""

    def __getattr__(self, name: str) -> str:
        return name

    def read(self, values: dict) -> Any:
        from seglens.ui.segmentation import SegmentationLayout

        return SegmentationLayout.read(self, values)  # type: ignore[arg-type]


# -- presentation ----------------------------------------------------------------------------
def test_compose_query_joins_keywords_and_exclusions():
    assert compose_query("cat, dog", "grass; -sky") == "cat, dog, -grass, -sky"
    assert compose_query(" 猫，狗 ", "") == "猫, 狗"
    assert compose_query("", "") == ""


def test_human_bytes_and_progress_bar_attributes():
    assert [human_bytes(n) for n in (999, 35042, 2_500_000)] == ["999 B", "35.0 KB", "2.5 MB"]
    bar = progress_html(JOB, "en")
    assert 'data-status="running"' in bar and 'data-finished="2"' in bar and 'data-total="4"' in bar
    assert "width:50.0%" in bar and "1 of 4 done" in bar
    assert "运行中" in progress_html(JOB, "zh")


def test_threshold_pad_clicks_map_back_to_the_two_thresholds():
    assert pad_values(0, 159) == (0.0, 0.0)
    assert pad_values(159, 0) == (1.0, 1.0)
    assert pad_values(0.4 * 159, 0.3 * 159) == (0.4, 0.7)
    assert threshold_pad(0.4, 0.7).size == (160, 160)


def test_region_table_puts_refined_masks_first_and_scores_show_unmatched_keywords():
    matches = [{"keyword": "cat", "score": 0.91, "area": 10, "bbox_xyxy": [0, 0, 5, 2]}]
    refined = [{"score": 0.8, "area": 4, "bbox_xyxy": [1, 1, 3, 3]}]
    table = region_table(matches, refined, "en")
    assert list(table.iloc[:, 0]) == ["refined (click)", "cat"]
    frame = scores_frame(matches, {"cat": 0.91, "dog": 0.31}, "en")
    assert list(frame["region"]) == ["cat #1", "dog (best, below threshold)"]


def test_stats_frames_summarise_level_two():
    stats = {
        "status": "completed",
        "progress": {"total": 2, "done": 1, "failed": 1, "skipped": 0},
        "images_per_minute": 12.0,
        "busy_s": 3.5,
        "retried": 0,
        "errors": {"corrupt_image": 1},
        "stages": {
            name: {"count": 1, "mean_ms": 5, "p50_ms": 5, "p95_ms": 5, "max_ms": 5}
            for name in ("mask_decoder", "segment", "total")
        },
        "keywords": {"cat": {"matches": 2, "images": 1, "best_score": 0.9}},
        "warning": "TINY MODEL",
    }
    frames = stats_frames(stats, "en")
    assert "1/2 done" in frames["summary"] and "corrupt_image × 1" in frames["summary"]
    assert list(frames["keyword_chart"]["keyword"]) == ["cat"]
    assert list(frames["stage_chart"]["stage"]) == ["mask_decoder"]  # totals are not parts
    assert list(frames["stages"].iloc[:, 0]) == ["mask_decoder", "segment", "total"]


def test_refinement_draws_masks_and_points_in_overlay_coordinates():
    mask = np.zeros((40, 60), bool)
    mask[10:30, 20:50] = True
    overlay = Image.new("RGB", (30, 20), (0, 0, 0))  # half the image's size
    buffer = io.BytesIO()
    overlay.save(buffer, "PNG")
    picture = np.asarray(
        draw_refinement(buffer.getvalue(), [{"rle": encode_mask(mask)}], [(10, 4, 1), (50, 36, 0)], (60, 40))
    )
    assert picture.shape == (20, 30, 3)
    assert picture[10, 17].tolist() != [0, 0, 0]  # inside the mask
    assert picture[1, 19].tolist() == [0, 0, 0]  # outside, away from the points


def test_fps_counts_processed_frames_over_their_span():
    assert fps_of([]) == 0.0 and fps_of([1.0]) == 0.0
    assert fps_of([0.0, 0.5, 1.0]) == pytest.approx(2.0)


# -- translations -----------------------------------------------------------------------------
def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_english_and_chinese_have_the_same_keys_and_fields():
    en, zh = TEXT["en"], TEXT["zh"]
    assert set(en) == set(zh)
    for key in en:
        assert _fields(en[key]) == _fields(zh[key]), key
    assert all(re.search(r"[\u4e00-\u9fff]", zh[k]) for k in ("start", "nav_seg", "threshold"))


def test_language_comes_from_the_query_then_the_browser():
    assert pick_language("zh", "en-US,en;q=0.9") == "zh"
    assert pick_language(None, "zh-CN,zh;q=0.9,en;q=0.8") == "zh"
    assert pick_language("fr", "de-DE") == "en"
    assert t("zh", "no_such_key") == "no_such_key"


# -- state and app ------------------------------------------------------------------------------
def test_a_session_copy_gets_its_own_lock():
    session = Session()
    copied = copy.deepcopy(session)
    assert copied.lock is not session.lock
    with copied.lock, session.lock:
        pass


def test_merge_updates_joins_a_new_label_and_a_new_value():
    import gradio as gr

    from seglens.ui.app import merge_updates

    merged = merge_updates({"a": gr.update(label="Batch"), "b": 1}, {"a": ["pic"], "c": 2})
    assert merged["a"]["label"] == "Batch" and merged["a"]["value"] == ["pic"]
    assert merged["b"] == 1 and merged["c"] == 2


def test_the_ui_builds_and_mounts_without_a_back_end(tmp_path):
    from fastapi.testclient import TestClient

    from live_server import free_port
    from seglens.ui import create_ui_app

    app = create_ui_app(f"http://127.0.0.1:{free_port()}", scratch=tmp_path)
    with TestClient(app) as client:
        home = client.get("/", follow_redirects=False)
        page = client.get("/ui/")
        config = client.get("/ui/config").json()
    assert home.status_code == 307 and home.headers["location"] == "/ui"
    assert page.status_code == 200
    ids = {c.get("props", {}).get("elem_id") for c in config["components"]}
    assert {"upload", "keywords", "threshold", "results-gallery", "chat", "panel-chat"} <= ids
    assert json.dumps(config).count("TINY") == 0  # nothing claimed before the back end answers


def test_with_a_token_the_ui_asks_for_it_as_its_password(tmp_path):
    from fastapi.testclient import TestClient

    from live_server import free_port
    from seglens.ui import create_ui_app

    app = create_ui_app(f"http://127.0.0.1:{free_port()}", token="s3cret", scratch=tmp_path)
    with TestClient(app) as client:
        locked = client.get("/ui/config")
        wrong = client.post("/ui/login", data={"username": "me", "password": "nope"})
        right = client.post("/ui/login", data={"username": "me", "password": "s3cret"})
        unlocked = client.get("/ui/config")
    assert locked.status_code == 401 and wrong.status_code == 400
    assert right.status_code == 200 and unlocked.status_code == 200


def test_suggestion_cards_are_numbered_like_their_apply_buttons():
    from seglens.ui.views import suggestion_html

    suggestions = [
        {
            "threshold": 0.41,
            "reason": "the dogs scored 0.42 <b>",
            "source": "advisor",
            "rule": "r",
            "confidence": 0.8,
        },
        {"keywords": ["dog", "-grass"], "points_per_side": 16, "reason": "x", "source": "llm", "rule": "llm"},
    ]
    cards = suggestion_html(suggestions, "en", "chat")
    assert 'data-count="2"' in cards and 'data-index="1"' in cards and 'data-index="2"' in cards
    assert "threshold → 0.41" in cards and "keywords → dog, -grass; points per side → 16" not in cards
    assert "points per side → 16; keywords → dog, -grass" in cards
    assert "&lt;b&gt;" in cards  # reasons are escaped
    assert 'data-count="0"' in suggestion_html([], "zh", "panel") and "暂无建议" in suggestion_html(
        [], "zh", "panel"
    )


def test_status_line_shows_models_loading_and_download_progress():
    from seglens.ui.app import loading_line

    health = {
        "status": "loading",
        "loading": [
            {
                "name": "sam2.1-hiera-tiny",
                "phase": "downloading",
                "bytes_done": 12_000_000,
                "bytes_total": 38_900_000,
            },
            {"name": "clip-vit-b32", "phase": "checking", "bytes_done": 0, "bytes_total": None},
        ],
    }
    line = loading_line("en", health)
    assert "downloading sam2.1-hiera-tiny 12.0/38.9 MB" in line and "checking clip-vit-b32" in line
    assert "正在下载 sam2.1-hiera-tiny" in loading_line("zh", health)
    failed = loading_line("en", {"status": "error", "load_error": "model 'x' is not on this machine"})
    assert "could not be loaded: model 'x' is not on this machine" in failed
    assert loading_line("en", {"status": "ready", "loading": []}) == ""


# -- the client-side viewer's server functions --------------------------------------------
def test_viewer_functions_proxy_the_regions_route_and_check_what_the_page_sends():
    from seglens.ui.results import compose_query
    from seglens.ui.viewer import ViewerData, viewer_js

    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"num_regions": 0})

    view_regions, view_scores = ViewerData(_client(handler), compose_query).functions()
    assert view_regions(["not", "an", "object"]) == {"error": "expected an object"}
    assert view_regions({"image_id": "abc", "max_side": "huge"}) == {"error": "max_side must be a number"}
    assert view_scores({"image_id": "abc", "keywords": "", "exclude": "grass"}) == {"error": "no keywords"}
    assert seen == []
    assert view_scores({"image_id": "abc", "keywords": "cat", "exclude": "grass", "points_per_side": 8}) == {
        "num_regions": 0
    }
    params = dict(seen[-1].url.params)
    assert seen[-1].url.path == "/api/v1/images/abc/regions"
    assert params == {"query": "cat, -grass", "masks": "false", "max_side_px": "1024", "points_per_side": "8"}
    assert view_regions({"image_id": "abc", "query": "cat"})["num_regions"] == 0
    assert dict(seen[-1].url.params)["masks"] == "true"
    assert "function matchRegions" in viewer_js()  # shipped as package data
