"""The UI's session kept in the browser (untrusted input, restore from the back end), the
download panel, and the text that must follow the language switch."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from seglens.ui.client import ApiClient, ApiError
from seglens.ui.context import UiContext
from seglens.ui.i18n import EN
from seglens.ui.persist import SNAPSHOT_VERSION, browser_state, parse_snapshot, restore_session, snapshot
from seglens.ui.state import ImageEntry, Session, ViewState
from seglens.ui.views import (
    history_table,
    image_log_table,
    progress_html,
    suggestion_html,
    timings_frame,
)

_ENGLISH = re.compile(r"[A-Za-z]{3,}")


def _client(handler) -> ApiClient:
    return ApiClient("http://backend", transport=httpx.MockTransport(handler))


def test_a_snapshot_round_trips_and_names_the_open_view(tmp_path):
    session = Session(lang="zh", job_id="job-1")
    session.images = [
        ImageEntry("a1", "a.jpg", 4, 3, "JPEG", 10, ""),
        ImageEntry("b2", "b.jpg", 4, 3, "JPEG", 10, ""),
    ]
    session.view = ViewState("b2", "", (4, 3), (4, 3))
    saved = snapshot(session, "zh", "cat", "grass", "all", 0.25, 0.4, 0.6, 8)
    back = parse_snapshot(json.loads(json.dumps(saved)))
    assert (back.lang, back.keywords, back.exclude, back.mode) == ("zh", "cat", "grass", "all")
    assert (back.threshold, back.merge, back.alpha, back.points_per_side) == (0.25, 0.4, 0.6, 8)
    assert back.images == ["a1", "b2"] and back.job_id == "job-1" and back.selected == "b2"


@pytest.mark.parametrize(
    "bad",
    [
        None,
        "text",
        [],
        {"v": 99, "keywords": "cat"},
        {"v": SNAPSHOT_VERSION, "lang": "fr", "mode": "some", "threshold": 2, "merge": float("nan")},
        {"v": SNAPSHOT_VERSION, "alpha": True, "points_per_side": 999, "keywords": "x" * 5000},
        {"v": SNAPSHOT_VERSION, "images": ["../../etc/passwd", 5, "ok-1"], "job_id": "a/b", "selected": {}},
    ],
)
def test_a_snapshot_from_the_browser_keeps_only_well_formed_values(bad):
    parsed = parse_snapshot(bad)
    assert parsed.lang is None and parsed.mode is None and parsed.keywords is None
    assert parsed.threshold is None and parsed.merge is None and parsed.alpha is None
    assert parsed.points_per_side is None and parsed.job_id is None and parsed.selected is None
    assert parsed.images in ([], ["ok-1"])


def test_the_browser_state_key_is_stable_across_restarts_and_differs_per_back_end():
    first, again, other = (
        browser_state("http://a:1"),
        browser_state("http://a:1/"),
        browser_state("http://b:1"),
    )
    assert (first.storage_key, first.secret) == (again.storage_key, again.secret)
    assert first.storage_key != other.storage_key


def test_restore_fetches_images_by_id_drops_deleted_ones_and_returns_the_job(tmp_path):
    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/thumbnail"):
            return httpx.Response(200, content=b"jpeg")
        if path == "/api/v1/images/gone":
            return httpx.Response(404, json={"error": {"code": "image_not_found", "message": "no"}})
        if path.startswith("/api/v1/images/"):
            image_id = path.rsplit("/", 1)[1]
            return httpx.Response(
                200,
                json={
                    "id": image_id,
                    "filename": f"{image_id}.jpg",
                    "width": 4,
                    "height": 3,
                    "format": "JPEG",
                    "bytes": 9,
                },
            )
        if path == "/api/v1/jobs/job-1":
            return httpx.Response(200, json={"id": "job-1", "status": "completed", "params": {}})
        return httpx.Response(500)

    ctx = UiContext.create(_client(handler), tmp_path)
    session = Session()
    saved = parse_snapshot({"v": SNAPSHOT_VERSION, "images": ["a1", "gone", "b2"], "job_id": "job-1"})
    missing, job = restore_session(ctx, session, saved)
    assert [e.filename for e in session.images] == ["a1.jpg", "b2.jpg"] and missing == ["gone"]
    assert job is not None and job["id"] == "job-1"


def test_restore_with_the_back_end_away_keeps_the_ids_for_the_next_snapshot(tmp_path):
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    ctx = UiContext.create(_client(handler), tmp_path)
    session = Session()
    saved = parse_snapshot({"v": SNAPSHOT_VERSION, "images": ["a1", "b2"]})
    with pytest.raises(ApiError):
        restore_session(ctx, session, saved)
    assert snapshot(session, "en", "", "", "any", 0.5, 0.7, 0.5, 0)["images"] == ["a1", "b2"]


def test_after_stop_at_one_of_four_the_bar_shows_a_quarter():
    job = {"id": "j", "status": "cancelled", "progress": {"total": 4, "done": 1, "failed": 0, "skipped": 3}}
    bar = progress_html(job, "en")
    assert "width:25.0%" in bar and 'data-finished="4"' in bar


def test_the_chinese_progress_line_says_completed_once():
    job = {"id": "j", "status": "completed", "progress": {"total": 4, "done": 4, "failed": 0, "skipped": 0}}
    assert progress_html(job, "zh").count("已完成") == 1


def test_chinese_logs_history_suggestions_and_advice_have_no_english_words():
    log = {
        "image_id": "i",
        "filename": "cat.jpg",
        "status": "done",
        "width": 4,
        "height": 3,
        "num_regions": 2,
        "attempts": 1,
        "matches_per_keyword": {"猫": 1},
        "best_scores": {"猫": 0.9},
        "timings_ms": {"decode": 1.0, "mask_decoder": 2.0, "match": 0.5},
        "cache_hits": {"regions": True, "region_embeddings": False},
        "warnings": ["TINY MODEL: random weights - results are meaningless"],
    }
    table = image_log_table(log, "zh").to_string().replace("cat.jpg", "")
    history = history_table(
        [
            {
                "created_at": "2026",
                "kind": "job",
                "query": "猫",
                "status": "completed",
                "image_count": 1,
                "match_count": 1,
                "duration_ms": 5,
                "ref": "0f",
            }
        ],
        "zh",
    ).to_string()
    cards = suggestion_html(
        [
            {
                "threshold": 0.3,
                "reason": "Too many regions",
                "source": "advisor",
                "rule": "raise_threshold",
                "confidence": 0.8,
            }
        ],
        "zh",
        "chat",
    )
    for text in (
        table,
        history,
        re.sub(r"<[^>]+>|data-\w+=\"[^\"]*\"|id=\"[^\"]*\"|class=\"[^\"]*\"", "", cards),
    ):
        assert not _ENGLISH.findall(text), text


def test_stage_timings_keep_pipeline_order():
    frame = timings_frame({"decode": 1, "preprocess": 2, "image_encoder": 3, "mask_decoder": 4, "total": 10})
    assert list(frame["stage"]) == ["decode", "preprocess", "image_encoder", "mask_decoder"]
    assert EN["export_uses"]
