"""DELETE /history: what the web UI's "Clear history" button calls."""

from __future__ import annotations

from server_support import API, harness


def test_clear_history_removes_interactions_and_finished_jobs_matching_the_filters(tmp_path):
    with harness(tmp_path) as h:
        image, other = h.upload(1, 2)
        red_job = h.wait_for(h.create_job([image], "red")["id"])
        blue_job = h.wait_for(h.create_job([image], "blue")["id"])
        h.client.post(f"{API}/query", json={"image_id": image, "query": "red"})
        # Another image: queries in a row on one image are one entry.
        h.client.post(f"{API}/query", json={"image_id": other, "query": "green"})

        only_red = h.client.delete(f"{API}/history", params={"keyword": "red"})
        left = h.client.get(f"{API}/history").json()["items"]
        red_gone = h.client.get(f"{API}/jobs/{red_job['id']}").status_code

        queries = h.client.delete(f"{API}/history", params={"kind": "query"})
        everything = h.client.delete(f"{API}/history")
        final = h.client.get(f"{API}/history").json()
    assert only_red.status_code == 200
    assert only_red.json() == {"deleted": 2, "interactions": 1, "jobs": 1}
    assert red_gone == 404
    assert sorted((e["kind"], e["query"]) for e in left) == [("job", "blue"), ("query", "green")]
    assert queries.json() == {"deleted": 1, "interactions": 1, "jobs": 0}
    assert everything.json()["jobs"] == 1 and final["total"] == 0
    assert blue_job["status"] == "completed"


def test_clear_history_keeps_unfinished_jobs(tmp_path):
    with harness(tmp_path) as h:
        h.proposer.gated = True
        image = h.upload(2)[0]
        job = h.create_job([image], "red")
        h.proposer.wait_inside()
        cleared = h.client.delete(f"{API}/history", params={"kind": "job"})
        still = h.client.get(f"{API}/jobs/{job['id']}")
        h.proposer.open()
    assert cleared.json()["jobs"] == 0
    assert still.status_code == 200
