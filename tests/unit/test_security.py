"""Security of the web UI and the logs without a live server: which files the UI reads,
which ids it forwards, which /ui routes need the token, the open health check, history
dates, and credentials in log lines."""

from __future__ import annotations

import base64
import io
import json
import logging
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from seglens.services.logcontext import configure_logging
from seglens.services.redaction import redact, secrets_of_url
from seglens.ui.client import ApiClient, ApiError
from seglens.ui.uploads import NotUploadedError, UploadedFiles
from server_support import API, harness

TOKEN = "ui-token-9c1f2e"


# -- files the UI reads --------------------------------------------------------------------
@pytest.fixture
def cache(tmp_path):
    """A Gradio-like upload folder with one real upload, and a secret picture outside it."""
    folder = tmp_path / "gradio"
    (folder / "ab12").mkdir(parents=True)
    upload = folder / "ab12" / "cat.png"
    upload.write_bytes(b"uploaded bytes")
    secret = tmp_path / "data" / "images" / "secret.png"
    secret.parent.mkdir(parents=True)
    secret.write_bytes(b"secret bytes")
    return folder, upload, secret


def _gate(folder: Path, received: set[str]) -> UploadedFiles:
    return UploadedFiles(lambda: received, lambda: str(folder))


def test_uploaded_files_reads_only_what_the_upload_route_received(cache):
    folder, upload, _ = cache
    assert _gate(folder, {str(upload)}).read(str(upload)) == b"uploaded bytes"


def test_uploaded_files_refuses_every_other_path_with_one_message(cache, tmp_path):
    folder, upload, secret = cache
    inside_link = folder / "ab12" / "link.png"
    inside_link.symlink_to(secret)
    dir_link = folder / "cd34"
    dir_link.symlink_to(secret.parent, target_is_directory=True)
    attempts = [
        str(secret),  # an absolute path anywhere
        "/etc/hostname",
        str(folder / "ab12" / ".." / ".." / "data" / "images" / "secret.png"),  # ..
        f"{folder}/../data/images/secret.png",
        str(inside_link),  # a symlink inside the upload folder, even if it were "received"
        str(dir_link / "secret.png"),  # through a symlinked directory
        str(tmp_path / "data"),  # the data dir itself
        str(folder),  # the upload folder itself
        str(folder / "ab12"),
        str(tmp_path / "missing.png"),
        "",
        "relative/cat.png",
        "cat.png\0.jpg",
        None,
        ["/etc/hostname"],
    ]
    received = {
        str(upload),
        str(inside_link),
        str(dir_link / "secret.png"),
        str(folder / "ab12"),
        str(folder),
    }
    gate = _gate(folder, received)
    messages = set()
    for path in attempts:
        with pytest.raises(NotUploadedError) as caught:
            gate.read(path)
        messages.add(str(caught.value))
    assert messages == {"only files uploaded through this page can be added"}


def test_uploaded_files_fails_closed_without_a_record_of_uploads(cache):
    _, upload, _ = cache

    class OldBlocks:  # a Gradio that keeps no upload_file_set
        pass

    with pytest.raises(NotUploadedError):
        UploadedFiles.of(OldBlocks()).read(str(upload))
    with pytest.raises(NotUploadedError):
        UploadedFiles().read(str(upload))


def test_the_upload_handler_refuses_a_path_the_browser_made_up(tmp_path):
    """`JobHandlers.upload` asks the gate; the notice is the same for a file that exists
    and one that does not, and the back end never sees either."""
    from seglens.ui.context import UiContext
    from seglens.ui.jobs import JobHandlers
    from seglens.ui.state import Session

    sent: list[httpx.Request] = []

    def backend(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(500)

    ctx = UiContext.create(ApiClient("http://backend.test", transport=httpx.MockTransport(backend)), tmp_path)
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG secret")

    class Layout:
        def __getattr__(self, name: str) -> str:
            return name

    jobs = JobHandlers(ctx, Layout(), renderer=None, notice="notice")  # type: ignore[arg-type]
    notices = []
    for path in (str(secret), str(tmp_path / "missing.png"), "/etc"):
        updates = list(jobs.upload(Session(), [path]))
        notices.append(updates[-1]["notice"])
    assert sent == []
    assert len(set(notices)) == 1 and "only files uploaded through this page" in notices[0]
    assert "secret" not in notices[0] and "No such file" not in notices[0]


# -- ids the UI forwards -------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["..", ".", "", "../images/abc", "a/b", "a%2Fb", "x?y=1", "a b", "é"])
def test_the_client_refuses_ids_that_are_not_plain_ids(bad):
    sent: list[str] = []

    def backend(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        return httpx.Response(200, json={})

    client = ApiClient("http://backend.test", transport=httpx.MockTransport(backend))
    for call in (client.job, client.delete_image, client.conversation, client.delete_conversation):
        with pytest.raises(ApiError) as caught:
            call(bad)
        assert caught.value.status == 404
    assert sent == []
    client.job("0123abcdef")
    assert sent == ["/api/v1/jobs/0123abcdef"]


# -- the token on every /ui route ----------------------------------------------------------
@pytest.fixture
def ui_client(tmp_path):
    from live_server import free_port
    from seglens.ui import create_ui_app

    app = create_ui_app(f"http://127.0.0.1:{free_port()}", token=TOKEN, scratch=tmp_path)
    with TestClient(app) as client:
        yield client


LOCKED = [
    ("GET", "/ui/gradio_api/heartbeat/abc"),
    ("POST", "/ui/gradio_api/reset"),
    ("POST", "/ui/gradio_api/cancel"),
    ("GET", "/ui/gradio_api/info"),
    ("POST", "/ui/gradio_api/upload"),
    ("POST", "/ui/gradio_api/call/upload"),
    ("POST", "/ui/gradio_api/queue/join"),
    ("GET", "/ui/gradio_api/queue/data?session_hash=abc"),
    ("GET", "/ui/gradio_api/file=/etc/hostname"),
    ("GET", "/ui/config"),
    ("GET", "/ui/gradio_api/some-route-a-later-gradio-adds"),
    ("POST", "/ui/"),
]


def test_with_a_token_every_ui_route_but_the_login_page_needs_it(ui_client):
    answers = {(m, p): ui_client.request(m, p, json={}) for m, p in LOCKED}
    assert {k: r.status_code for k, r in answers.items()} == {k: 401 for k in answers}
    assert all(r.json()["error"]["code"] == "unauthorized" for r in answers.values())
    assert ui_client.get("/ui/").status_code == 200  # the login page
    assert ui_client.get("/ui/theme.css").status_code == 200


def test_a_login_with_the_token_opens_the_ui_routes(ui_client):
    assert ui_client.post("/ui/login", data={"username": "me", "password": "nope"}).status_code == 400
    assert ui_client.get("/ui/gradio_api/heartbeat/abc").status_code == 401
    assert ui_client.post("/ui/login", data={"username": "me", "password": TOKEN}).status_code == 200
    assert ui_client.get("/ui/gradio_api/info").status_code == 200  # the session cookie
    ui_client.cookies.clear()
    assert ui_client.get("/ui/gradio_api/info").status_code == 401


def test_without_a_token_the_ui_stays_open(tmp_path):
    from live_server import free_port
    from seglens.ui import create_ui_app

    app = create_ui_app(f"http://127.0.0.1:{free_port()}", scratch=tmp_path)
    with TestClient(app) as client:
        assert client.get("/ui/gradio_api/info").status_code == 200


# -- the open health check -----------------------------------------------------------------
def test_with_a_token_health_tells_anyone_only_status_and_version(tmp_path):
    with harness(tmp_path, api_token=TOKEN) as h:
        anonymous = h.client.get(f"{API}/health")
        wrong = h.client.get(f"{API}/health", headers={"Authorization": "Bearer nope"})
        head = h.client.head(f"{API}/health")
        full = h.client.get(f"{API}/health", headers={"Authorization": f"Bearer {TOKEN}"})
        other = h.client.get(f"{API}/images")
    assert anonymous.status_code == wrong.status_code == 200
    assert set(anonymous.json()) == set(wrong.json()) == {"status", "version"}
    assert head.status_code in (200, 405)
    assert {"profile", "models", "device", "queue"} <= set(full.json())
    assert other.status_code == 401


# -- history dates -------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["1700000000", "1700000000.5", " 1700000000", "-5", "2026"])
@pytest.mark.parametrize("name", ["since", "until"])
def test_a_number_is_not_taken_as_a_date_in_history_export(tmp_path, name, value):
    with harness(tmp_path) as h:
        response = h.client.get(f"{API}/history/export", params={name: value})
    assert response.status_code == 422
    assert "ISO 8601" in response.json()["error"]["message"]


# -- credentials in log lines --------------------------------------------------------------
@pytest.fixture
def log_stream():
    """`configure_logging` into a StringIO; the root logger and httpx are restored after."""
    root, httpx_logger = logging.getLogger(), logging.getLogger("httpx")
    saved = (root.handlers[:], root.level, httpx_logger.level)
    stream = io.StringIO()
    try:
        yield stream
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        httpx_logger.setLevel(saved[2])


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ("POST http://user:pa55word@llm.local/v1/chat/completions", "pa55word"),
        ("GET https://tok3n@llm.local/v1", "tok3n"),
        ("POST http://llm.local/v1/chat/completions?api_key=QK-123&x=1", "QK-123"),
        ("GET /x?access_token=abc123def", "abc123def"),
        ("echo: Authorization: Bearer abc.def-123", "abc.def-123"),
        ('{"headers": {"authorization": "Basic dXNlcjpwYXNz"}}', "dXNlcjpwYXNz"),
        (json.dumps({"message": 'said {"Authorization": "Token zz9-zz9"}'}), "zz9-zz9"),
        ("upstream said Basic dXNlcjpLRVk=", "dXNlcjpLRVk="),
        ("key sk-abcdefghijk in text", "sk-abcdefghijk"),
    ],
)
def test_redact_removes_credentials(line, secret):
    assert secret not in redact(line)
    assert "***" in redact(line)


def test_redact_leaves_ordinary_text_alone():
    text = "basic settings loaded; GET /api/v1/history?keyword=cat&limit=5; user admin@example.org"
    assert redact(text) == text


def test_secrets_of_url_names_the_password_and_key_like_query_values():
    found = secrets_of_url("http://bob:p%40ss@h/v1?api_key=QK1&model=m&token=T2")
    assert {"p%40ss", "p@ss", "QK1", "T2"} <= set(found) and "bob" not in found and "m" not in found


def test_every_logger_is_redacted_on_the_root_handler(log_stream):
    configure_logging("info", "json", secrets=["literal-secret-42"], stream=log_stream)
    for name in ("httpx", "uvicorn.error", "gradio", "seglens.llm.client"):
        logger = logging.getLogger(name)
        level = logger.level
        logger.setLevel(logging.INFO)
        logger.info('HTTP Request: POST http://u:pw-9x@h/v1?api_key=KEY-77 "HTTP/1.1 401"')
        logger.warning("failed: %s", {"authorization": "Basic dXNlcjpwdy05eA=="})
        logger.info("the literal-secret-42 leaked")
        logger.setLevel(level)
    try:
        raise RuntimeError("boom with Bearer tok-in-trace-1")
    except RuntimeError:
        logging.getLogger("x").exception("trace")
    stream = log_stream
    text = stream.getvalue()
    assert text.count("\n") >= 13
    for secret in ("pw-9x", "KEY-77", "dXNlcjpwdy05eA==", "literal-secret-42", "tok-in-trace-1"):
        assert secret not in text, secret


# -- the LLM's base URL, over real HTTP ------------------------------------------------------
def _llm(base_url: str, key: str | None):
    from pydantic import SecretStr

    from seglens.llm import LLMClient, LLMConfig

    return LLMClient(
        LLMConfig(
            base_url=base_url,
            api_key=SecretStr(key) if key else None,
            timeout_s=5,
            connect_timeout_s=5,
            max_retries=0,
        )
    )


def test_a_query_string_in_the_base_url_goes_after_the_path():
    from fake_openai import FakeOpenAI, Reply
    from seglens.llm import LLMMessage

    with FakeOpenAI() as fake:
        fake.enqueue(Reply.completion("ok"))
        base = fake.base_url.replace("http://", "http://proxyuser:url-pass-5@") + "?api_key=query-key-5"
        assert _llm(base, "bearer-key-55").complete([LLMMessage("user", "hi")]) == "ok"
        sent = fake.chat_requests[-1]
    assert sent.path == "/v1/chat/completions?api_key=query-key-5"
    # the configured key is the credential; the URL's user-info does not replace it
    assert sent.headers["authorization"] == "Bearer bearer-key-55"


def test_user_info_without_a_key_is_sent_as_basic_and_never_logged(log_stream):
    from fake_openai import FakeOpenAI, Reply
    from seglens.llm import LLMError, LLMMessage

    configure_logging("info", "json", stream=log_stream)
    logging.getLogger("httpx").setLevel(logging.INFO)  # the UI's client turns it down
    with FakeOpenAI() as fake:
        fake.enqueue(Reply.http_error(401, "bad credentials", echo_auth=True))
        base = fake.base_url.replace("http://", "http://proxyuser:url-pass-6@") + "?api_key=query-key-6"
        with pytest.raises(LLMError):
            _llm(base, None).complete([LLMMessage("user", "hi")])
        sent = fake.chat_requests[-1]
    stream = log_stream
    basic = base64.b64encode(b"proxyuser:url-pass-6").decode()
    assert sent.headers["authorization"] == f"Basic {basic}"
    assert sent.path == "/v1/chat/completions?api_key=query-key-6"
    text = stream.getvalue()
    assert "HTTP Request" in text and "LLM request failed" in text
    for secret in ("url-pass-6", "query-key-6", basic):
        assert secret not in text, secret


def test_the_ui_says_a_token_is_needed_when_health_gives_no_details(tmp_path):
    """A UI started without the token gets the open health answer (status and version):
    it says what is missing instead of showing an empty status line."""
    import gradio as gr
    from fastapi import FastAPI

    from seglens.ui.app import build_ui

    def backend(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"status": "ready", "version": "0.1.0"})

    client = ApiClient("http://backend.test", transport=httpx.MockTransport(backend))
    app = gr.mount_gradio_app(
        FastAPI(), build_ui("http://backend.test", client=client, scratch=tmp_path), "/ui"
    )
    with TestClient(app) as http:
        event = http.post("/ui/gradio_api/call/check_health", json={"data": []}).json()["event_id"]
        answer = http.get(f"/ui/gradio_api/call/check_health/{event}").text
    assert "needs a token" in answer and "None" not in answer
