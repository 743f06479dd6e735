"""/query, /prompt, /search and /history with fake models."""

from __future__ import annotations

import base64
import csv
import io
import threading
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from PIL import Image

from server_support import API, harness


def _overlay(body):
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(body["overlay_png_base64"]))).convert("RGB"))


def test_query_segments_once_then_answers_every_change_from_the_cache(tmp_path):
    with harness(tmp_path) as h:
        image = h.upload(1)[0]
        first = h.client.post(f"{API}/query", json={"image_id": image, "query": "red", "alpha": 0.5})
        calls = (list(h.proposer.calls), h.embedder.image_calls)
        changed = [
            h.client.post(f"{API}/query", json={"image_id": image, "query": q, **extra})
            for q, extra in [
                ("red", {"alpha": 0.9}),
                ("blue, green", {"threshold": 0.2, "merge_threshold": 0.3}),
                ("red, -blue", {"mode": "all", "merge_strategy": "union"}),
            ]
        ]
        after = (list(h.proposer.calls), h.embedder.image_calls)
    assert first.status_code == 200
    body = first.json()
    assert body["keywords"] == ["red"] and body["num_regions"] == 3 and body["image_matched"] is True
    assert [m["keyword"] for m in body["matches"]] == ["red"]
    assert body["cache_hits"] == {"regions": False, "region_embeddings": False}
    assert calls == (["propose"], 1) and after == calls
    assert all(r.status_code == 200 for r in changed)
    assert changed[0].json()["cache_hits"] == {"regions": True, "region_embeddings": True}
    assert changed[0].json()["matches"] == body["matches"]
    # alpha changes the pixels inside the mask only: 0.9 is redder than 0.5
    red_before, red_after = _overlay(body)[30, 30], _overlay(changed[0].json())[30, 30]
    assert red_after[0] >= red_before[0] and red_after[1] < red_before[1]
    assert (body["overlay_width"], body["overlay_height"]) == (160, 120)
    assert sorted(m["keyword"] for m in changed[1].json()["matches"]) == ["blue", "green"]


def test_query_can_skip_or_shrink_the_overlay(tmp_path):
    with harness(tmp_path) as h:
        image = h.upload(1)[0]
        none = h.client.post(
            f"{API}/query", json={"image_id": image, "query": "red", "overlay": False}
        ).json()
        small = h.client.post(
            f"{API}/query", json={"image_id": image, "query": "red", "overlay_max_side_px": 80}
        ).json()
    assert none["overlay_png_base64"] is None and "render" not in none["timings_ms"]
    assert (small["overlay_width"], small["overlay_height"]) == (80, 60)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"image_id": "0" * 64, "query": "red"}, 404, "image_not_found"),
        ({"query": "-red"}, 422, "invalid_query"),
        ({"query": "red", "alpha": 1.5}, 422, "validation_error"),
        ({"query": "red", "threshold": -0.1}, 422, "validation_error"),
        ({"query": "red", "mode": "most"}, 422, "validation_error"),
        ({"query": ""}, 422, "validation_error"),
        ({"query": "red", "unknown": True}, 422, "validation_error"),
        ({"query": "red", "points_per_side": 33}, 422, "invalid_params"),
    ],
)
def test_bad_queries_get_4xx(tmp_path, body, status, code):
    with harness(tmp_path, max_points_per_side=32) as h:
        if "image_id" not in body:
            body = {**body, "image_id": h.upload(1)[0]}
        response = h.client.post(f"{API}/query", json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def test_query_goes_ahead_of_the_next_batch_image(tmp_path):
    with harness(tmp_path) as h:
        batch, lone = h.upload(1, 2, 3), h.upload(40)[0]
        h.proposer.gated = True
        job_id = h.create_job(batch)["id"]
        h.proposer.wait_inside()  # image 1 in flight
        answers = []
        thread = threading.Thread(
            target=lambda: answers.append(
                h.client.post(f"{API}/query", json={"image_id": lone, "query": "red"})
            )
        )
        thread.start()
        while h.runtime.scheduler.interactive_in_flight == 0:
            threading.Event().wait(0.01)
        h.proposer.open()
        thread.join(30)
        h.wait_for(job_id)
    assert answers[0].status_code == 200
    assert h.proposer.seen == [1, 40, 2, 3]


def test_too_many_interactive_requests_get_429(tmp_path):
    with harness(tmp_path, max_interactive=1) as h:
        first, second = h.upload(1, 2)
        h.proposer.gated = True
        answers = []
        thread = threading.Thread(
            target=lambda: answers.append(
                h.client.post(f"{API}/query", json={"image_id": first, "query": "red"})
            )
        )
        thread.start()
        h.proposer.wait_inside()
        refused = h.client.post(f"{API}/query", json={"image_id": second, "query": "red"})
        h.proposer.open()
        thread.join(30)
    assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
    assert refused.json()["error"]["code"] == "too_many_requests"
    assert answers[0].status_code == 200


def test_prompt_with_points_and_boxes_returns_one_mask_per_box(tmp_path):
    with harness(tmp_path) as h:
        image = h.upload(1)[0]
        points = h.client.post(f"{API}/images/{image}/prompt", json={"points": [[30, 30, 1]]})
        boxes = h.client.post(
            f"{API}/images/{image}/prompt",
            json={"points": [[30, 30, 1], [5, 5, 0]], "boxes": [[10, 10, 50, 50], [60, 10, 110, 60]]},
        )
        encodes = h.proposer.calls.count("encode")
    assert points.status_code == 200 and len(points.json()["masks"]) == 1
    assert points.json()["masks"][0]["rle"]["size"] == [120, 160]
    masks = boxes.json()["masks"]
    assert [m["bbox_xyxy"] for m in masks] == [[10.0, 10.0, 50.0, 50.0], [60.0, 10.0, 110.0, 60.0]]
    assert [m["area"] for m in masks] == [1600, 2500]
    assert encodes == 1  # the image was encoded once for all three prompts


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "invalid_prompt"),
        ({"points": [[1, 2]]}, "validation_error"),
        ({"points": [[1, 2, 5]]}, "validation_error"),
        ({"boxes": [[1, 2, 3]]}, "validation_error"),
        ({"points": [[1, 2, 1]], "extra": 1}, "validation_error"),
    ],
)
def test_bad_prompts_get_422(tmp_path, body, code):
    with harness(tmp_path) as h:
        response = h.client.post(f"{API}/images/{h.upload(1)[0]}/prompt", json=body)
    assert response.status_code == 422 and response.json()["error"]["code"] == code


def test_search_finds_regions_across_every_processed_image_best_first(tmp_path):
    with harness(tmp_path) as h:
        ids = h.upload(1, 2)
        h.wait_for(h.create_job(ids, "green")["id"])
        h.upload(3)  # never segmented: not searched
        found = h.client.get(f"{API}/search", params={"query": "blue"}).json()
        top = h.client.get(f"{API}/search", params={"query": "blue", "limit": 1}).json()
        excluded = h.client.get(f"{API}/search", params={"query": "blue, -red", "threshold": 0.5}).json()
        bad = h.client.get(f"{API}/search", params={"query": "-blue"})
    assert (found["scanned_images"], found["scanned_regions"]) == (2, 6)
    scores = [hit["score"] for hit in found["hits"]]
    assert scores == sorted(scores, reverse=True) and len(scores) == 6
    best = found["hits"][:2]
    assert {hit["image_id"] for hit in best} == set(ids)
    assert all(hit["keyword"] == "blue" and hit["bbox_xyxy"] == [60.0, 10.0, 110.0, 60.0] for hit in best)
    assert best[0]["thumbnail_url"].endswith("/thumbnail") and best[0]["rle"]["size"] == [120, 160]
    assert len(top["hits"]) == 1 and top["hits"][0]["score"] == scores[0]
    assert len(excluded["hits"]) == 2
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_query"


def test_history_lists_jobs_and_interactive_requests_with_filters_and_csv(tmp_path):
    with harness(tmp_path) as h:
        image = h.upload(1)[0]
        job = h.wait_for(h.create_job([image], "Red, blue")["id"])
        h.client.post(f"{API}/query", json={"image_id": image, "query": "green"})
        h.client.post(f"{API}/images/{image}/prompt", json={"points": [[3, 3, 1]]})
        h.client.get(f"{API}/search", params={"query": "red dog"})
        everything = h.client.get(f"{API}/history").json()
        red = h.client.get(f"{API}/history", params={"keyword": "RED"}).json()
        jobs = h.client.get(f"{API}/history", params={"kind": "job"}).json()
        page = h.client.get(f"{API}/history", params={"limit": 2, "offset": 1}).json()
        tomorrow = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
        future = h.client.get(f"{API}/history", params={"since": tomorrow}).json()
        past = h.client.get(f"{API}/history", params={"until": tomorrow}).json()
        wildcard = h.client.get(f"{API}/history", params={"keyword": "%"}).json()
        exported = h.client.get(f"{API}/history/export", params={"kind": "query"})
    assert [e["kind"] for e in everything["items"]] == ["search", "prompt", "query", "job"]
    job_entry = everything["items"][-1]
    assert job_entry["ref"] == job["id"] and job_entry["status"] == "completed"
    assert job_entry["image_count"] == 1 and job_entry["match_count"] == 2 and job_entry["duration_ms"] >= 0
    assert [e["kind"] for e in red["items"]] == ["job"]  # "red dog" is one keyword, not "red"
    assert jobs["total"] == 1
    assert page["total"] == 4 and [e["kind"] for e in page["items"]] == ["prompt", "query"]
    assert future["total"] == 0 and past["total"] == 4 and wildcard["total"] == 0
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert exported.headers["content-type"].startswith("text/csv")
    assert [(r["kind"], r["query"], r["match_count"]) for r in rows] == [("query", "green", "1")]


def test_queries_in_a_row_on_one_image_are_one_history_entry_with_the_last_settings(tmp_path):
    with harness(tmp_path) as h:
        first, second = h.upload(1, 2)
        for threshold in (0.3, 0.4, 0.5, 0.6):  # a slider being dragged
            h.client.post(f"{API}/query", json={"image_id": first, "query": "red", "threshold": threshold})
        h.client.post(f"{API}/query", json={"image_id": first, "query": "red, blue", "threshold": 0.6})
        h.client.post(f"{API}/query", json={"image_id": second, "query": "red"})
        h.client.post(f"{API}/images/{second}/prompt", json={"points": [[3, 3, 1]]})
        h.client.post(f"{API}/query", json={"image_id": second, "query": "red", "threshold": 0.2})
        items = h.client.get(f"{API}/history", params={"kind": "query"}).json()["items"]
    assert [(e["image_id"], e["query"]) for e in items] == [
        (second, "red"),
        (second, "red"),
        (first, "red, blue"),
    ]
    assert items[2]["params"]["threshold"] == 0.6 and items[2]["match_count"] == 2
    assert items[0]["params"]["threshold"] == 0.2  # the click in between started a new entry
