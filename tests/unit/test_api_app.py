"""App-wide behaviour: bearer token, CORS, request ids, error shapes, OpenAPI, model
loading states, and the lifespan's recovery of interrupted jobs."""

from __future__ import annotations

import re
import threading
import time

import pytest
from fastapi.testclient import TestClient

from seglens.api.app import create_app
from seglens.settings import Settings
from server_support import API, harness

TOKEN = "s3cret-token-value"


def _api_routes(app):
    """(method, concrete path) for every /api route in the OpenAPI schema, ids filled in."""
    for path, item in app.openapi()["paths"].items():
        if path.startswith(API):
            for method in item:
                yield method.upper(), re.sub(r"\{[^}]+\}", "0" * 64, path)


def test_with_a_token_every_api_route_refuses_requests_without_it(tmp_path):
    """Every route but the liveness check (``GET /health``, open with only `status` and
    `version`: tests/unit/test_security.py)."""
    with harness(tmp_path, api_token=TOKEN) as h:
        routes = [r for r in _api_routes(h.client.app) if r != ("GET", f"{API}/health")]
        answers = {(m, p): h.client.request(m, p) for m, p in routes}
        wrong = h.client.get(f"{API}/health", headers={"Authorization": "Bearer nope"})
        right = h.client.get(f"{API}/health", headers={"Authorization": f"Bearer {TOKEN}"})
        docs = h.client.get("/openapi.json")
    assert len(routes) >= 20
    assert {k: r.status_code for k, r in answers.items()} == {k: 401 for k in answers}
    assert all(r.json()["error"]["code"] == "unauthorized" for r in answers.values())
    assert all(r.headers["www-authenticate"] == "Bearer" for r in answers.values())
    assert set(wrong.json()) == {"status", "version"} and "queue" in right.json()
    assert TOKEN not in wrong.text
    assert docs.status_code == 200  # the schema itself is public


def test_with_a_token_anonymous_requests_are_refused_before_their_body_is_parsed(tmp_path):
    with harness(tmp_path, api_token=TOKEN) as h:
        # Without the early check these would be 422/400 from parsing the body.
        upload = h.client.post(f"{API}/images", data={"not-files": "x"})
        job = h.client.post(f"{API}/jobs", content=b"{broken", headers={"Content-Type": "application/json"})
    assert (upload.status_code, job.status_code) == (401, 401)
    assert upload.json()["error"]["code"] == job.json()["error"]["code"] == "unauthorized"


def test_without_a_token_the_api_is_open(tmp_path):
    with harness(tmp_path) as h:
        assert h.client.get(f"{API}/health").status_code == 200


def test_the_token_never_reaches_the_logs(tmp_path, caplog):
    with caplog.at_level("DEBUG"), harness(tmp_path, api_token=TOKEN) as h:
        h.client.get(f"{API}/health", headers={"Authorization": f"Bearer {TOKEN}"})
        h.client.get(f"{API}/health", headers={"Authorization": "Bearer wrong-guess"})
    assert caplog.records and TOKEN not in caplog.text and "wrong-guess" not in caplog.text


def test_cors_is_off_unless_origins_are_configured(tmp_path):
    origin = {"Origin": "http://ui.example", "Access-Control-Request-Method": "GET"}
    with harness(tmp_path) as h:
        closed = h.client.options(f"{API}/health", headers=origin)
    with harness(tmp_path / "2", cors_origins=["http://ui.example"]) as h:
        opened = h.client.options(f"{API}/health", headers=origin)
        simple = h.client.get(f"{API}/health", headers={"Origin": "http://ui.example"})
    assert "access-control-allow-origin" not in closed.headers
    assert opened.headers["access-control-allow-origin"] == "http://ui.example"
    assert simple.headers["access-control-allow-origin"] == "http://ui.example"


def test_request_ids_are_echoed_or_generated(tmp_path):
    with harness(tmp_path) as h:
        echoed = h.client.get(f"{API}/health", headers={"X-Request-ID": "abc-123"})
        unsafe = h.client.get(f"{API}/health", headers={"X-Request-ID": "bad id\twith spaces"})
        generated = h.client.get(f"{API}/health")
    assert echoed.headers["x-request-id"] == "abc-123"
    assert re.fullmatch(r"[0-9a-f]{16}", unsafe.headers["x-request-id"])
    assert re.fullmatch(r"[0-9a-f]{16}", generated.headers["x-request-id"])


def test_unknown_routes_and_methods_use_the_error_shape(tmp_path):
    with harness(tmp_path) as h:
        missing = h.client.get(f"{API}/nothing-here")
        method = h.client.put(f"{API}/jobs")
        malformed = h.client.post(
            f"{API}/jobs", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        root = h.client.get("/", follow_redirects=False)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert method.status_code == 405 and method.json()["error"]["code"] == "method_not_allowed"
    assert method.headers["allow"] == "GET, POST"
    assert h.client.put(f"{API}/jobs/{'0' * 32}").headers["allow"] == "DELETE, GET"
    assert malformed.status_code == 422 and malformed.json()["error"]["code"] == "validation_error"
    assert root.status_code == 307 and root.headers["location"] == "/docs"


@pytest.mark.parametrize("token", [None, "secret-token-1"])
def test_openapi_documents_every_route_with_its_error_responses(tmp_path, token):
    """The bearer scheme and the 401 answer are declared exactly when a token is set."""
    with harness(tmp_path, api_token=token) as h:
        schema = h.client.get("/openapi.json").json()
    operations = [(path, method, op) for path, item in schema["paths"].items() for method, op in item.items()]
    assert len(operations) >= 20
    for path, method, op in operations:
        # the liveness check is open to everyone and never answers 401
        protected = token is not None and path != f"{API}/health"
        assert ("401" in op["responses"]) == protected, (method, path)
        assert bool(op.get("security")) == protected, (method, path)
        for status, response in op["responses"].items():
            if status.startswith(("4", "5")):
                ref = response["content"]["application/json"]["schema"]["$ref"]
                assert ref.endswith("/ErrorResponse"), (method, path, status)
    assert "HTTPValidationError" not in schema["components"]["schemas"]


def test_health_reports_loading_then_ready_and_requests_wait_for_the_models(tmp_path):
    release = threading.Event()
    from fakes import FakeProposer, OracleEmbedder
    from seglens.services.segment.pipeline import Pipeline

    def slow_factory(settings):
        release.wait(30)
        return Pipeline(FakeProposer([]), OracleEmbedder())

    app = create_app(
        Settings(data_dir=tmp_path, workers=1, models_wait_s=0.05), pipeline_factory=slow_factory
    )
    with TestClient(app) as client:
        loading = client.get(f"{API}/health").json()
        image = client.post(f"{API}/images", files=[("files", ("a.png", _png(), "image/png"))])
        image_id = image.json()["files"][0]["image"]["id"]
        waiting = client.post(f"{API}/query", json={"image_id": image_id, "query": "red"})
        release.set()
        app.state.runtime.provider.wait(30)
        ready = client.get(f"{API}/health").json()
    assert loading["status"] == "loading" and loading["models"] is None
    assert image.status_code == 200  # uploads never wait for the models
    assert waiting.status_code == 503 and waiting.json()["error"]["code"] == "models_loading"
    assert waiting.headers["retry-after"] == "5"
    assert ready["status"] == "ready" and ready["models"] == {
        "proposer": "fake-proposer@1",
        "embedder": "oracle@1",
    }


def test_a_model_that_cannot_load_is_reported_by_health_and_requests(tmp_path):
    def broken(settings):
        raise RuntimeError("model 'sam' is not on this machine; run `seglens models pull sam`")

    app = create_app(Settings(data_dir=tmp_path, workers=1), pipeline_factory=broken)
    with TestClient(app) as client:
        app.state.runtime.provider.wait(30)
        health = client.get(f"{API}/health").json()
        search = client.get(f"{API}/search", params={"query": "dog"})
    assert health["status"] == "error" and "seglens models pull sam" in health["load_error"]
    assert search.status_code == 503 and search.json()["error"]["code"] == "models_unavailable"
    assert "seglens models pull sam" in search.json()["error"]["message"]


def test_startup_marks_jobs_left_running_interrupted_and_resumes_them(tmp_path):
    with harness(tmp_path) as h:
        ids = h.upload(1, 2, 3)
        h.proposer.gated = True
        job_id = h.create_job(ids)["id"]
        h.proposer.wait_inside()
        # What a kill -9 leaves behind: the job and its image still "running".
        h.runtime.scheduler.stop(0.0)
        h.proposer.open()
        h.wait_idle()
        assert h.job(job_id)["status"] == "running"
        h.runtime.stop = lambda: None  # a killed process runs no shutdown
    with harness(tmp_path) as h:
        finished = h.wait_for(job_id)
        timeline = [e["kind"] for e in h.client.get(f"{API}/jobs/{job_id}/timeline").json()]
        results = h.results(job_id)
    assert finished["status"] == "completed" and finished["interruptions"] == 1
    assert timeline == ["created", "started", "interrupted", "resumed", "started", "completed"]
    assert sorted(r["image_id"] for r in results) == sorted(ids)


def test_without_auto_resume_interrupted_jobs_wait_for_the_user(tmp_path):
    with harness(tmp_path) as h:
        ids = h.upload(1, 2)
        h.proposer.gated = True
        job_id = h.create_job(ids)["id"]
        h.proposer.wait_inside()
    # a clean shutdown with the image in flight: the job is interrupted
    with harness(tmp_path, auto_resume=False) as h:
        waiting = h.job(job_id)
        resumed = h.client.post(f"{API}/jobs/{job_id}/resume")
        finished = h.wait_for(job_id)
    assert waiting["status"] == "interrupted"
    assert resumed.status_code == 200 and finished["status"] == "completed"


def _png():
    from server_support import scene_png

    return scene_png(1)


def test_serve_refuses_an_unknown_profile_before_starting(tmp_path):
    from typer.testing import CliRunner

    from seglens.cli import app as cli

    result = CliRunner().invoke(cli, ["serve", "--profile", "nope", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "unknown profile 'nope'" in result.output and "tiny" in result.output
    assert not (tmp_path / "seglens.db").exists()


def test_health_says_which_models_are_loading_and_how_far_their_downloads_are(tmp_path):
    from seglens.models.progress import LOADS

    release = threading.Event()

    def downloading(settings):
        LOADS.begin("sam2.1-hiera-tiny", "downloading", bytes_total=1000)
        LOADS.add_bytes("sam2.1-hiera-tiny", 250)
        release.wait(30)
        LOADS.finish("sam2.1-hiera-tiny")
        raise RuntimeError("stopped by the test")

    app = create_app(Settings(data_dir=tmp_path, workers=1), pipeline_factory=downloading)
    with TestClient(app) as client:
        deadline = time.monotonic() + 30
        health = client.get(f"{API}/health").json()
        while not health["loading"] and time.monotonic() < deadline:
            time.sleep(0.02)
            health = client.get(f"{API}/health").json()
        release.set()
        app.state.runtime.provider.wait(30)
        after = client.get(f"{API}/health").json()
    assert health["status"] == "loading"
    assert health["loading"] == [
        {"name": "sam2.1-hiera-tiny", "phase": "downloading", "bytes_done": 250, "bytes_total": 1000}
    ]
    assert after["status"] == "error" and after["loading"] == []
