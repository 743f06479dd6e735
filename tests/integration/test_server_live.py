"""A real `seglens serve` process with a bearer token and an LLM (a fake chat-completions
server on 127.0.0.1): the OpenAPI schema fuzzed with schemathesis, the bad-upload corpus,
the token, the structured logs, and the assistant's event stream over real HTTP."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from fake_openai import FakeOpenAI, Reply
from live_server import FINISHED, photos, running_server
from schemathesis_support import fuzz, prepare
from server_support import BAD_UPLOADS

pytestmark = pytest.mark.slow

TOKEN = "integration-token-1234"
LLM_KEY = "sk-live-llm-key-0c9d2e"


@pytest.fixture(scope="module")
def llm():
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(scope="module")
def server(tmp_path_factory, models_dir, llm):
    env = {
        "SEGLENS_API_TOKEN": TOKEN,
        "SEGLENS_MAX_POINTS_PER_SIDE": "8",
        "SEGLENS_LLM_BASE_URL": llm.base_url,
        "SEGLENS_LLM_API_KEY": LLM_KEY,
        "SEGLENS_LLM_TIMEOUT_S": "5",
        "SEGLENS_LLM_MAX_RETRIES": "0",
    }
    with running_server(tmp_path_factory.mktemp("server-live"), models_dir, **env) as live:
        yield live


@pytest.fixture(scope="module")
def finished_job(server):
    ids = server.upload(photos(2, seed=5))
    job = server.create_job(ids, "cat, -grass")
    server.wait(job["id"], lambda j: j["status"] in FINISHED)
    return job["id"], ids


def test_token_is_required_on_every_api_route_and_nowhere_else(server):
    anonymous = httpx.Client(base_url=server.url, timeout=30)
    assert anonymous.get("/api/v1/images").status_code == 401
    assert anonymous.get("/api/v1/images", headers={"Authorization": "Bearer wrong"}).status_code == 401
    # the liveness check is open, with only status and version
    assert set(anonymous.get("/api/v1/health").json()) == {"status", "version"}
    assert (
        anonymous.post("/api/v1/images", files=[("files", ("a.jpg", b"x", "image/jpeg"))]).status_code == 401
    )
    assert anonymous.get("/openapi.json").status_code == 200
    assert anonymous.get("/", follow_redirects=False).headers["location"] == "/ui"
    assert server.client.get("/health").json()["status"] == "ready"
    assert TOKEN not in server.log_path.read_text()


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
def test_each_bad_upload_gets_a_clear_4xx_and_the_server_carries_on(server, case):
    filename, content, status, code = BAD_UPLOADS[case]
    before = server.client.get("/images").json()["total"]
    response = server.client.post("/images", files=[("files", (filename, content, "image/png"))])
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert server.client.get("/images").json()["total"] == before
    assert server.client.get("/health").json()["status"] == "ready"


def test_fifty_megabytes_of_noise_is_refused_and_the_server_carries_on(server):
    noise = bytes(range(256)) * (50_000_000 // 256)
    response = server.client.post("/images", files=[("files", ("noise.jpg", noise, "image/jpeg"))])
    assert response.status_code == 415 and response.json()["error"]["code"] == "not_an_image"
    assert server.client.get("/health").json()["status"] == "ready"


def test_logs_are_json_lines_carrying_request_and_job_ids(server, finished_job):
    job_id, ids = finished_job
    response = server.client.get(f"/jobs/{job_id}", headers={"X-Request-ID": "trace-me-42"})
    assert response.headers["x-request-id"] == "trace-me-42"

    def traced(e: dict) -> bool:
        return e["logger"] == "seglens.access" and e.get("request_id") == "trace-me-42"

    entries = server.log_records(until=lambda records: any(map(traced, records)))  # every line is JSON
    assert all({"ts", "level", "logger", "message"} <= set(e) for e in entries)
    access = [e for e in entries if e["logger"] == "seglens.access"]
    assert any(traced(e) and e["path"] == f"/api/v1/jobs/{job_id}" for e in access)
    assert all(len(e["request_id"]) > 0 and e["status"] for e in access)
    images = [e for e in entries if e["message"] == "image processed" and e.get("job_id") == job_id]
    assert sorted(e["image_id"] for e in images) == sorted(ids)
    assert all({"timings_ms", "regions", "cache_hits", "matches"} <= set(e) for e in images)
    created = next(e for e in entries if e["message"] == "job created" and e.get("job_id") == job_id)
    assert created["request_id"]


def _events(lines):
    """(event, data, seconds since the request) of an event stream, as they arrive."""
    started = time.monotonic()
    name = None
    for line in lines:
        if line.startswith("event: "):
            name = line[len("event: ") :]
        elif line.startswith("data: "):
            yield name, json.loads(line[len("data: ") :]), time.monotonic() - started


def test_chat_streams_events_as_they_happen_over_real_http(server, finished_job, llm):
    job_id, _ = finished_job
    llm.enqueue(Reply.text("The batch ran fine.").stalled(2, 1.5))
    body = {"message": "How did the batch go?", "context": {"job_id": job_id}}
    with server.client.stream("POST", "/assistant/chat", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = list(_events(response.iter_lines()))
    names = [name for name, _, _ in events]
    assert names[0] == "conversation" and names[-1] == "done" and "text" in names
    # the conversation id and the first words arrive before the LLM's stall ends
    assert events[0][2] < 1.0 and events[-1][2] >= 1.4
    conversation_id = events[0][1]["conversation_id"]
    assert events[-1][1]["conversation_id"] == conversation_id and events[-1][1]["source"] == "llm"
    sent = llm.chat_requests[-1]
    assert job_id in sent.system_prompt and TOKEN not in sent.text and LLM_KEY not in sent.text
    stored = server.client.get(f"/assistant/conversations/{conversation_id}").json()
    assert stored["messages"][-1]["content"] == "The batch ran fine."
    assert LLM_KEY not in server.log_path.read_text()


def test_schemathesis_finds_nothing_with_a_token(server, tmp_path):
    """Every default check (docs/api.md): statuses, content types, headers, bodies, that
    schema-valid requests are accepted and invalid ones refused, and the bearer scheme.
    The assistant's chat route is fuzzed like the others (its request bodies, statuses,
    headers and the JSON errors before the stream starts); schemathesis does not parse
    `text/event-stream` bodies, so the events themselves are checked by
    `test_chat_streams_events_as_they_happen_over_real_http` and the unit tests."""
    ids = prepare(server)
    started = server.client.post(
        "/assistant/chat", json={"message": "hello", "context": {"job_id": ids["job"]}}
    )
    conversation_id = started.text.split('"conversation_id": "', 1)[1].split('"', 1)[0]
    failures, output = fuzz(
        server, ids, tmp_path, token=TOKEN, extra_parameters={"conversation_id": conversation_id}
    )
    assert failures == [], output
    assert [line for line in server.log_lines() if '"status": 5' in line] == []
