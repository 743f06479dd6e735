"""Jobs through the API with fake models: lifecycle, results, logs, statistics, exports,
cancel and resume, failures, fairness, priority, queue limits."""

from __future__ import annotations

import csv
import io
import json
import threading
import zipfile

import pytest

from server_support import API, harness


def test_job_runs_every_image_and_reports_matches_per_image(tmp_path):
    with harness(tmp_path) as h:
        ids = h.upload(1, 2, 3)
        created = h.create_job(ids, "red, blue", threshold=0.5)
        assert created["status"] == "queued" and created["progress"]["total"] == 3
        done = h.wait_for(created["id"])
        results = h.results(created["id"])
    assert done["status"] == "completed"
    assert done["progress"] == {"total": 3, "done": 3, "failed": 0, "skipped": 0, "remaining": 0}
    assert done["matches"] == 6 and done["models"]["proposer"] == "fake-proposer@1"
    assert [r["image_id"] for r in results] == ids
    for result in results:
        assert result["status"] == "done" and result["error"] is None
        assert sorted(m["keyword"] for m in result["matches"]) == ["blue", "red"]
        red = next(m for m in result["matches"] if m["keyword"] == "red")
        assert red["bbox_xyxy"] == [10.0, 10.0, 50.0, 50.0] and red["area"] == 1600
        assert red["rle"]["size"] == [120, 160] and red["score"] > 0.9
        assert {"decode", "segment", "match", "total"} <= set(result["timings_ms"])


def test_duplicate_ids_run_once_and_a_one_image_job_has_priority_1(tmp_path):
    with harness(tmp_path) as h:
        ids = h.upload(1, 2)
        batch = h.create_job([ids[0], ids[1], ids[0]])
        single = h.create_job([ids[1]])
        h.wait_for(batch["id"])
        h.wait_for(single["id"])
    assert batch["progress"]["total"] == 2 and batch["priority"] == 0
    assert single["priority"] == 1


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"image_ids": ["f" * 64], "query": "red"}, 404, "image_not_found"),
        ({"image_ids": [], "query": "red"}, 422, "validation_error"),
        ({"image_ids": None, "query": "-red"}, 422, "invalid_query"),
        ({"image_ids": None, "query": "red", "params": {"threshold": 2}}, 422, "validation_error"),
        ({"image_ids": None, "query": "red", "params": {"mode": "some"}}, 422, "validation_error"),
        ({"image_ids": None, "query": "red", "params": {"bogus": 1}}, 422, "validation_error"),
        ({"image_ids": None, "query": "red", "params": {"profile": "fake"}}, 201, None),
        ({"image_ids": None, "query": "red", "params": {"points_per_side": 65}}, 422, "invalid_params"),
        (
            {"image_ids": None, "query": "red", "params": {"profile": "gpu-quality"}},
            409,
            "profile_not_loaded",
        ),
    ],
)
def test_bad_job_requests_get_4xx_with_a_stable_code(tmp_path, body, status, code):
    with harness(tmp_path) as h:
        if body["image_ids"] is None:
            body = {**body, "image_ids": h.upload(1)}
        response = h.client.post(f"{API}/jobs", json=body)
        jobs = h.client.get(f"{API}/jobs").json()["total"]
    assert response.status_code == status, response.text
    if code is None:
        assert jobs == 1
        return
    assert jobs == 0
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]


def test_unknown_job_is_404_on_every_job_route(tmp_path):
    missing = "0123456789abcdef0123456789abcdef"
    with harness(tmp_path) as h:
        image = h.upload(1)[0]
        calls = [
            h.client.get(f"{API}/jobs/{missing}"),
            h.client.post(f"{API}/jobs/{missing}/cancel"),
            h.client.post(f"{API}/jobs/{missing}/resume"),
            h.client.delete(f"{API}/jobs/{missing}"),
            h.client.get(f"{API}/jobs/{missing}/events"),
            h.client.get(f"{API}/jobs/{missing}/timeline"),
            h.client.get(f"{API}/jobs/{missing}/results"),
            h.client.get(f"{API}/jobs/{missing}/stats"),
            h.client.get(f"{API}/jobs/{missing}/images/{image}/log"),
            h.client.get(f"{API}/jobs/{missing}/export"),
        ]
    assert [c.status_code for c in calls] == [404] * len(calls)
    assert {c.json()["error"]["code"] for c in calls} == {"job_not_found"}


def test_jobs_list_is_newest_first_and_paginated(tmp_path):
    with harness(tmp_path) as h:
        image = h.upload(1)
        created = [h.create_job(image, f"red, query {n}")["id"] for n in range(5)]
        first = h.client.get(f"{API}/jobs", params={"limit": 2}).json()
        last = h.client.get(f"{API}/jobs", params={"limit": 2, "offset": 4}).json()
        everything = h.client.get(f"{API}/jobs", params={"limit": 10}).json()
        for job_id in created:
            h.wait_for(job_id)
        completed = h.client.get(f"{API}/jobs", params={"status": "completed"}).json()
        bad = h.client.get(f"{API}/jobs", params={"limit": 0})
    assert (first["total"], first["limit"], first["offset"]) == (5, 2, 0)
    assert [j["id"] for j in everything["items"]] == created[::-1]
    assert [j["id"] for j in first["items"]] == created[::-1][:2]
    assert [j["id"] for j in last["items"]] == created[:1]
    assert completed["total"] == 5
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "validation_error"


def test_a_failing_image_is_recorded_and_the_batch_goes_on(tmp_path):
    with harness(tmp_path) as h:
        h.proposer.fail_markers = {2}
        ids = h.upload(1, 2, 3)
        job = h.wait_for(h.create_job(ids)["id"])
        results = h.results(job["id"])
        log = h.client.get(f"{API}/jobs/{job['id']}/images/{ids[1]}/log").json()
        stats = h.client.get(f"{API}/jobs/{job['id']}/stats").json()
    assert job["status"] == "completed"
    assert job["progress"] == {"total": 3, "done": 2, "failed": 1, "skipped": 0, "remaining": 0}
    assert [r["status"] for r in results] == ["done", "failed", "done"]
    assert results[1]["error"] == {
        "code": "processing_failed",
        "message": "RuntimeError: simulated model failure",
        "details": None,
    }
    assert log["status"] == "failed" and log["error"]["code"] == "processing_failed"
    assert stats["errors"] == {"processing_failed": 1}


def test_a_job_whose_every_image_fails_is_failed(tmp_path):
    with harness(tmp_path) as h:
        h.proposer.fail_markers = {1, 2}
        job = h.wait_for(h.create_job(h.upload(1, 2))["id"])
    assert job["status"] == "failed" and job["progress"]["failed"] == 2


def test_a_corrupted_stored_file_fails_that_image_only(tmp_path):
    with harness(tmp_path) as h:
        ids = h.upload(1, 2)
    (tmp_path / "images" / ids[0][:2] / ids[0]).write_bytes(b"rotten bits")
    with harness(tmp_path) as h:  # a fresh process: nothing decoded in memory
        job = h.wait_for(h.create_job(ids)["id"])
        results = h.results(job["id"])
    assert [r["status"] for r in results] == ["failed", "done"]
    assert results[0]["error"]["code"] == "not_an_image"


def test_cancel_skips_the_rest_and_discards_the_image_in_flight(tmp_path):
    with harness(tmp_path) as h:
        ids = h.upload(1, 2, 3)
        h.proposer.gated = True
        job_id = h.create_job(ids)["id"]
        h.proposer.wait_inside()  # the worker is in the middle of image 1
        cancelled = h.client.post(f"{API}/jobs/{job_id}/cancel")
        h.proposer.open()
        h.wait_idle()
        after = h.job(job_id)
        results = h.results(job_id)
        again = h.client.post(f"{API}/jobs/{job_id}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["progress"] == {"total": 3, "done": 0, "failed": 0, "skipped": 3, "remaining": 0}
    assert after["progress"] == cancelled.json()["progress"]  # the late result was discarded
    assert [r["status"] for r in results] == ["skipped"] * 3 and all(not r["matches"] for r in results)
    assert again.status_code == 200 and again.json()["status"] == "cancelled"


def test_resume_runs_only_what_is_not_done_and_every_image_appears_once(tmp_path):
    with harness(tmp_path) as h:
        ids = h.upload(1, 2, 3, 4)
        h.proposer.gated = True
        job_id = h.create_job(ids)["id"]
        h.proposer.wait_inside()
        h.proposer.release()  # image 1 completes
        h.proposer.wait_inside()  # image 2 in flight
        h.client.post(f"{API}/jobs/{job_id}/cancel")
        h.proposer.open()
        h.wait_idle()
        seen_before_resume = list(h.proposer.seen)
        resumed = h.client.post(f"{API}/jobs/{job_id}/resume")
        finished = h.wait_for(job_id)
        results = h.results(job_id)
        timeline = [e["kind"] for e in h.client.get(f"{API}/jobs/{job_id}/timeline").json()]
        conflict = h.client.post(f"{API}/jobs/{job_id}/resume")
    assert seen_before_resume == [1, 2]
    assert resumed.status_code == 200 and resumed.json()["status"] == "queued"
    assert resumed.json()["progress"] == {"total": 4, "done": 1, "failed": 0, "skipped": 0, "remaining": 3}
    assert finished["status"] == "completed" and finished["progress"]["done"] == 4
    assert sorted(r["image_id"] for r in results) == sorted(ids)
    assert [r["attempts"] for r in results] == [1, 2, 1, 1]
    # Image 1 was never run again; image 2's cut-off run left its regions cached.
    assert h.proposer.seen == [1, 2, 3, 4]
    assert timeline == ["created", "started", "cancelled", "resumed", "started", "completed"]
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "nothing_to_resume"


def test_resume_of_a_running_job_and_cancel_of_a_completed_job_are_409(tmp_path):
    with harness(tmp_path) as h:
        ids = h.upload(1, 2)
        h.proposer.gated = True
        job_id = h.create_job(ids)["id"]
        h.proposer.wait_inside()
        running = h.client.post(f"{API}/jobs/{job_id}/resume")
        h.proposer.open()
        h.wait_for(job_id)
        finished = h.client.post(f"{API}/jobs/{job_id}/cancel")
    assert running.status_code == 409 and running.json()["error"]["code"] == "job_active"
    assert finished.status_code == 409 and finished.json()["error"]["code"] == "job_finished"


def test_delete_removes_a_running_job_and_its_late_result(tmp_path):
    with harness(tmp_path) as h:
        ids = h.upload(1, 2)
        h.proposer.gated = True
        job_id = h.create_job(ids)["id"]
        h.proposer.wait_inside()
        deleted = h.client.delete(f"{API}/jobs/{job_id}")
        h.proposer.open()
        h.wait_idle()
        gone = h.client.get(f"{API}/jobs/{job_id}")
        listed = h.client.get(f"{API}/jobs").json()
    assert deleted.status_code == 204 and deleted.content == b""
    assert gone.status_code == 404 and listed["total"] == 0


def test_concurrent_jobs_advance_round_robin_one_image_each(tmp_path):
    with harness(tmp_path) as h:
        a, b = h.upload(1, 2, 3), h.upload(11, 12, 13)
        h.proposer.gated = True
        first = h.create_job(a)["id"]
        h.proposer.wait_inside()
        second = h.create_job(b)["id"]
        h.proposer.open()
        h.wait_for(first)
        h.wait_for(second)
    assert h.proposer.seen == [1, 11, 2, 12, 3, 13]


def test_a_one_image_job_goes_ahead_of_a_waiting_batch(tmp_path):
    with harness(tmp_path) as h:
        batch, single = h.upload(1, 2, 3), h.upload(9)
        h.proposer.gated = True
        batch_id = h.create_job(batch)["id"]
        h.proposer.wait_inside()
        single_id = h.create_job(single)["id"]
        h.proposer.open()
        h.wait_for(batch_id)
        h.wait_for(single_id)
    assert h.proposer.seen == [1, 9, 2, 3]


def test_a_full_queue_answers_429_with_retry_after(tmp_path):
    with harness(tmp_path, max_queue=3) as h:
        ids = h.upload(1, 2, 3, 4)
        h.proposer.gated = True
        accepted = h.create_job(ids[:3])
        h.proposer.wait_inside()
        refused = h.client.post(f"{API}/jobs", json={"image_ids": ids[3:], "query": "red"})
        h.proposer.open()
        h.wait_for(accepted["id"])
        later = h.client.post(f"{API}/jobs", json={"image_ids": ids[3:], "query": "red"})
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "queue_full"
    assert int(refused.headers["retry-after"]) >= 1
    assert later.status_code == 201


def test_progress_events_stream_until_the_job_ends(tmp_path):
    with harness(tmp_path, sse_interval_s=0.02) as h:
        ids = h.upload(1, 2, 3)
        job_id = h.create_job(ids)["id"]
        with h.client.stream("GET", f"{API}/jobs/{job_id}/events") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            text = stream.read().decode()
    events = [block for block in text.split("\n\n") if block.strip()]
    kinds = [block.split("\n")[0] for block in events]
    assert kinds[-1] == "event: end" and set(kinds[:-1]) == {"event: progress"}
    final = json.loads(events[-1].split("data: ", 1)[1])
    assert final["status"] == "completed" and final["progress"]["done"] == 3
    done_counts = [json.loads(e.split("data: ", 1)[1])["progress"]["done"] for e in events[:-1]]
    assert done_counts == sorted(done_counts)


def test_image_log_and_batch_stats(tmp_path):
    with harness(tmp_path) as h:
        ids = h.upload(1, 2, 3)
        job_id = h.wait_for(h.create_job(ids, "red, blue, yellow")["id"])["id"]
        log = h.client.get(f"{API}/jobs/{job_id}/images/{ids[0]}/log").json()
        stats = h.client.get(f"{API}/jobs/{job_id}/stats").json()
        outsider = h.upload(50)[0]
        not_in_job = h.client.get(f"{API}/jobs/{job_id}/images/{outsider}/log")
    assert log["status"] == "done" and log["num_regions"] == 3 and (log["width"], log["height"]) == (160, 120)
    assert log["matches_per_keyword"] == {"red": 1, "blue": 1}
    assert set(log["best_scores"]) == {"red", "blue", "yellow"} and log["best_scores"]["yellow"] < 0.5
    assert log["cache_hits"] == {"regions": False, "region_embeddings": False}
    assert "rle" not in log["matches"][0]
    assert stats["progress"]["done"] == 3 and stats["images_per_minute"] > 0
    assert stats["keywords"] == {
        "red": {"matches": 3, "images": 3, "best_score": pytest.approx(1.0, abs=1e-3)},
        "blue": {"matches": 3, "images": 3, "best_score": pytest.approx(1.0, abs=1e-3)},
    }
    total = stats["stages"]["total"]
    assert total["count"] == 3 and total["p50_ms"] <= total["p95_ms"] <= total["max_ms"]
    assert len(stats["slowest"]) == 3 and stats["slowest"][0]["total_ms"] == total["max_ms"]
    assert not_in_job.status_code == 404 and not_in_job.json()["error"]["code"] == "image_not_in_job"


def test_exports_coco_csv_masks_and_overlays(tmp_path):
    with harness(tmp_path, meaningless=True) as h:
        h.proposer.fail_markers = {3}
        ids = h.upload(1, 2, 3)
        job_id = h.wait_for(h.create_job(ids, "red, blue")["id"])["id"]
        coco = h.client.get(f"{API}/jobs/{job_id}/export", params={"format": "coco"})
        table = h.client.get(f"{API}/jobs/{job_id}/export", params={"format": "csv"})
        masks = h.client.get(f"{API}/jobs/{job_id}/export", params={"format": "masks"})
        overlays = h.client.get(f"{API}/jobs/{job_id}/export", params={"format": "overlays"})
        bad = h.client.get(f"{API}/jobs/{job_id}/export", params={"format": "tiff"})
    document = coco.json()
    assert document["info"]["query"] == "red, blue" and document["info"]["meaningless"] is True
    assert (
        "meaningless" in document["info"]["warning"] and document["info"]["models"]["embedder"] == "oracle@1"
    )
    assert [c["name"] for c in document["categories"]] == ["red", "blue"]
    assert [i["seglens_image_id"] for i in document["images"]] == ids[:2]
    assert len(document["annotations"]) == 4 and document["annotations"][0]["segmentation"]["size"] == [
        120,
        160,
    ]
    rows = list(csv.DictReader(io.StringIO(table.text)))
    assert table.headers["content-type"].startswith("text/csv")
    assert [r["image_id"] for r in rows] == [ids[0], ids[0], ids[1], ids[1], ids[2]]
    assert rows[-1]["error"] and rows[0]["keyword"] in ("red", "blue")
    names = zipfile.ZipFile(io.BytesIO(masks.content)).namelist()
    assert sum(n.endswith(".png") for n in names) == 4 and "masks.csv" in names and "provenance.json" in names
    overlay_names = zipfile.ZipFile(io.BytesIO(overlays.content)).namelist()
    assert sorted(n for n in overlay_names if n.startswith("overlays/")) == [
        "overlays/00000-scene-1.png",
        "overlays/00001-scene-2.png",
    ]
    assert "attachment" in overlays.headers["content-disposition"]
    assert bad.status_code == 422
    assert not list((tmp_path / "tmp").glob("*.zip"))  # temporary archives are removed after sending


def test_jobs_and_results_carry_the_meaningless_flag_for_tiny_models(tmp_path):
    with harness(tmp_path, meaningless=True) as h:
        job = h.wait_for(h.create_job(h.upload(1))["id"])
        results = h.client.get(f"{API}/jobs/{job['id']}/results").json()
        health = h.client.get(f"{API}/health").json()
    assert job["meaningless"] is True and "meaningless" in job["warning"]
    assert results["meaningless"] is True and "meaningless" in results["warning"]
    assert "meaningless" in results["items"][0]["warnings"][0]
    assert health["meaningless"] is True and "meaningless" in health["warning"]


def test_results_filter_by_status_and_paginate(tmp_path):
    with harness(tmp_path) as h:
        h.proposer.fail_markers = {2}
        ids = h.upload(1, 2, 3)
        job_id = h.wait_for(h.create_job(ids)["id"])["id"]
        failed = h.client.get(f"{API}/jobs/{job_id}/results", params={"status": "failed"}).json()
        page = h.client.get(f"{API}/jobs/{job_id}/results", params={"limit": 1, "offset": 2}).json()
    assert failed["total"] == 1 and failed["items"][0]["image_id"] == ids[1]
    assert page["total"] == 3 and [r["image_id"] for r in page["items"]] == [ids[2]]


def test_workers_stay_alive_after_an_unexpected_error(tmp_path):
    """A failure outside the per-image guard (the database, say) must not kill the worker."""
    with harness(tmp_path) as h:
        repo = h.runtime.jobs.jobs
        original = repo.finish_item
        calls = threading.Semaphore(0)

        def broken_once(*args, **kwargs):
            repo.finish_item = original
            calls.release()
            raise RuntimeError("database hiccup")

        repo.finish_item = broken_once
        first = h.create_job(h.upload(1))
        assert calls.acquire(timeout=30)
        h.client.post(f"{API}/jobs/{first['id']}/cancel")
        second = h.wait_for(h.create_job(h.upload(2))["id"])
    assert second["status"] == "completed"


def test_two_submissions_racing_at_the_queue_limit_cannot_both_pass():
    """The depth check and the insert are one step (fakes make the race window wide)."""
    import threading
    import time
    from types import SimpleNamespace

    from seglens.services.errors import QueueFull
    from seglens.services.jobs.service import JobService
    from seglens.services.jobs.types import JobParams

    class SlowJobs:
        def __init__(self):
            self.waiting = 0

        def queue_depth(self):
            depth = self.waiting
            time.sleep(0.05)  # the other submission checks meanwhile
            return depth

        def create(self, new):
            self.waiting += len(new.image_ids)
            return SimpleNamespace(id=new.id, total=len(new.image_ids))

    jobs = SlowJobs()
    images = SimpleNamespace(get_many=lambda ids: {i: object() for i in ids})
    scheduler = SimpleNamespace(estimate_wait_s=lambda n: 1.0, wake=lambda: None)
    service = JobService(
        jobs, images, scheduler, profile=None, meaningless=lambda: False, max_queue=3, max_job_images=10
    )
    outcomes = []

    def submit(ids):
        try:
            service.create(ids, "cat", JobParams())
            outcomes.append("created")
        except QueueFull:
            outcomes.append("queue_full")

    threads = [threading.Thread(target=submit, args=([f"{n}a", f"{n}b"],)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["created", "queue_full"] and jobs.waiting == 2


@pytest.mark.parametrize(
    ("refusals", "status", "error_code"),
    [(2, "done", None), (4, "done", None), (99, "failed", "result_not_saved")],
)
def test_a_database_that_refuses_a_result_is_retried_then_the_image_is_computed_again(
    tmp_path, monkeypatch, refusals, status, error_code
):
    """Nothing stays `running` until a restart: a refused result write is retried, the
    image is then put back to pending (computed again from the cache), and after three
    claims recorded as failed."""
    from sqlalchemy.exc import OperationalError

    from seglens.services.jobs import worker as jobs_worker
    from seglens.storage.jobs_repo import JobRepository

    monkeypatch.setattr(jobs_worker, "SAVE_RETRY_DELAYS_S", (0.01, 0.01, 0.01))
    real = JobRepository.finish_item
    refused = []

    def flaky(self, job_id, image_id, **kwargs):
        if kwargs.get("ok") and len(refused) < refusals:
            refused.append(image_id)
            raise OperationalError("UPDATE job_items", {}, Exception("database is locked"))
        return real(self, job_id, image_id, **kwargs)

    monkeypatch.setattr(JobRepository, "finish_item", flaky)
    with harness(tmp_path) as h:
        h.proposer.open()
        job = h.create_job(h.upload(1))
        finished = h.wait_for(job["id"])
        (result,) = h.results(job["id"])
    assert result["status"] == status and (result["error"] or {}).get("code") == error_code
    assert finished["progress"]["done"] + finished["progress"]["failed"] == 1


def _query_union(h, ids, query, **params):
    """Every match `POST /query` answers for `ids`, as comparable tuples."""
    found = []
    for image_id in ids:
        answer = h.client.post(f"{API}/query", json={"image_id": image_id, "query": query, **params}).json()
        found += [
            (image_id, m["keyword"], tuple(m["rle"]["size"]), m["rle"]["counts"], round(m["score"], 6))
            for m in answer["matches"]
        ]
    return sorted(found)


def _coco_union(document):
    names = {c["id"]: c["name"] for c in document["categories"]}
    images = {i["id"]: i["seglens_image_id"] for i in document["images"]}
    return sorted(
        (
            images[a["image_id"]],
            names[a["category_id"]],
            tuple(a["segmentation"]["size"]),
            a["segmentation"]["counts"],
            a["score"],
        )
        for a in document["annotations"]
    )


def test_export_with_the_settings_on_screen_equals_the_query_answers_and_records_them(tmp_path):
    with harness(tmp_path) as h:
        ids = h.upload(1, 2)
        job_id = h.wait_for(h.create_job(ids, "red, blue", threshold=0.5)["id"])["id"]
        own = h.client.get(f"{API}/jobs/{job_id}/export").json()
        screen = {"threshold": 0.5, "merge_threshold": 0.3, "mode": "all", "merge_strategy": "union"}
        shown = h.client.get(
            f"{API}/jobs/{job_id}/export", params={"format": "coco", "query": "red, yellow", **screen}
        ).json()
        expected = _query_union(h, ids, "red, yellow", **screen)
        table = h.client.get(f"{API}/jobs/{job_id}/export", params={"format": "csv", "query": "green"})
    assert _coco_union(own) == _query_union(h, ids, "red, blue", threshold=0.5)
    assert [c["name"] for c in shown["categories"]] == ["red", "yellow"]
    assert _coco_union(shown) == expected and {k for _, k, *_ in expected} == {"red"}
    assert shown["info"]["query"] == "red, yellow" and shown["info"]["job_query"] == "red, blue"
    assert {k: shown["info"]["params"][k] for k in screen} == screen
    assert own["info"]["params"]["threshold"] == 0.5 and own["info"]["query"] == "red, blue"
    assert {r["keyword"] for r in csv.DictReader(io.StringIO(table.text))} == {"green"}


@pytest.mark.parametrize(
    ("params", "code", "words"),
    [
        ({"threshold": "2"}, "validation_error", "threshold"),
        ({"merge_threshold": "-0.1"}, "validation_error", "merge_threshold"),
        ({"threshold": "nan"}, "validation_error", "threshold"),
        ({"alpha": "1.5"}, "validation_error", "alpha"),
        ({"mode": "some"}, "validation_error", "mode"),
        ({"merge_strategy": "max"}, "validation_error", "merge_strategy"),
        ({"threshold": "high"}, "validation_error", "threshold"),
        ({"query": "-red"}, "invalid_query", "keyword"),
        ({"query": ""}, "validation_error", "query"),
    ],
)
def test_export_refuses_bad_settings_with_422_and_says_which(tmp_path, params, code, words):
    with harness(tmp_path) as h:
        job_id = h.wait_for(h.create_job(h.upload(1), "red")["id"])["id"]
        response = h.client.get(f"{API}/jobs/{job_id}/export", params=params)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == code and words in error["message"].lower(), error
