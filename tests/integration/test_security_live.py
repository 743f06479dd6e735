"""Issue 9's attacks against a real ``seglens serve`` (web UI mounted, a bearer token, an
LLM behind a base URL with credentials in it), over real HTTP on 127.0.0.1:

- the web UI reads only files that were uploaded through it (absolute paths, ``..``,
  symlinks, the data dir, a file Gradio cached for display: all refused alike);
- every /ui route needs a login; the liveness check is open with status and version;
- the LLM's credentials never reach the log file the server writes;
- a 2 MB request line gets a short 414, not a reset connection;
- SIGTERM with an open heartbeat stream stops the server promptly and without a traceback.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from fake_openai import FakeOpenAI, Reply
from live_server import LiveServer, photos, running_server

pytestmark = pytest.mark.slow

TOKEN = "security-live-token-4d2a"
URL_USER = "proxyuser"
URL_PASS = "url-password-71c3"
QUERY_KEY = "query-key-90ab"
BASIC = base64.b64encode(f"{URL_USER}:{URL_PASS}".encode()).decode()
NOT_UPLOADED = "only files uploaded through this page can be added"


@pytest.fixture(scope="module")
def llm():
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(scope="module")
def outside(tmp_path_factory) -> dict[str, Path]:
    """A picture outside every upload folder, a symlink to it, and a missing path."""
    root = tmp_path_factory.mktemp("outside")
    secret = root / "secret.png"
    Image.new("RGB", (64, 48), (200, 10, 10)).save(secret)
    link = root / "link.png"
    link.symlink_to(secret)
    return {"secret": secret, "link": link, "missing": root / "missing.png", "root": root}


@pytest.fixture(scope="module")
def server(tmp_path_factory, models_dir, llm):
    gradio_dir = tmp_path_factory.mktemp("gradio-uploads")
    base = llm.base_url.replace("http://", f"http://{URL_USER}:{URL_PASS}@") + f"?api_key={QUERY_KEY}"
    env = {
        "SEGLENS_API_TOKEN": TOKEN,
        "SEGLENS_LLM_BASE_URL": base,
        "SEGLENS_LLM_TIMEOUT_S": "5",
        "SEGLENS_LLM_MAX_RETRIES": "0",
        "SEGLENS_SHUTDOWN_GRACE_S": "60",
        "GRADIO_TEMP_DIR": str(gradio_dir),
    }
    with running_server(tmp_path_factory.mktemp("security-live"), models_dir, **env) as live:
        live.gradio_dir = gradio_dir  # type: ignore[attr-defined]
        yield live


@pytest.fixture(scope="module")
def ui(server):
    """An HTTP client logged in to the web UI with the token (as a browser would be)."""
    client = httpx.Client(base_url=server.url, timeout=120)
    response = client.post("/ui/login", data={"username": "someone", "password": TOKEN})
    assert response.status_code == 200, response.text
    yield client
    client.close()


def _call(ui: httpx.Client, api_name: str, data: list) -> tuple[str, object]:
    """Call a UI event through Gradio's HTTP API; (last event name, its decoded data)."""
    started = ui.post(f"/ui/gradio_api/call/{api_name}", json={"data": data})
    assert started.status_code == 200, started.text
    event_id = started.json()["event_id"]
    name, payload = "", None
    with ui.stream("GET", f"/ui/gradio_api/call/{api_name}/{event_id}") as response:
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                payload = json.loads(line[len("data: ") :])
    return name, payload


def _file(path: object) -> dict:
    return {"path": str(path), "meta": {"_type": "gradio.FileData"}}


def _image_count(server: LiveServer) -> int:
    return int(server.client.get("/images").json()["total"])


def _refusal(name: str, payload: object, path: object) -> str:
    """The refusal an upload got, with the path itself taken out (it must say nothing
    else about the path). Fails when the file was read."""
    text = json.dumps(payload)
    assert NOT_UPLOADED in text or (name == "error" and "not uploaded by a user" in text), text[:500]
    for form in (str(path), os.path.abspath(str(path))):
        text = text.replace(form, "<path>")
    return text


def test_the_upload_event_reads_no_file_that_was_not_uploaded(server, ui, outside):
    data_dir = server.data_dir
    stored = next((data_dir / "images").rglob("*.*"), None) if (data_dir / "images").exists() else None
    planted = server.gradio_dir / "planted"  # type: ignore[attr-defined]
    planted.mkdir(exist_ok=True)
    (planted / "link.png").symlink_to(outside["secret"])
    attempts = [
        outside["secret"],  # an image anywhere on the disk
        outside["link"],  # a symlink to it
        outside["missing"],  # a path that does not exist
        "/etc/hostname",
        f"{server.gradio_dir}/../{outside['root'].name}/secret.png",  # ..
        f"{outside['root']}/../{outside['root'].name}/secret.png",
        planted / "link.png",  # a symlink inside Gradio's upload folder
        data_dir,  # the data dir itself
        data_dir / "seglens.db",
        *([stored] if stored else []),
    ]
    before = _image_count(server)
    refusals = set()
    for path in attempts:
        name, payload = _call(ui, "upload", [[_file(path)]])
        refusals.add(_refusal(name, payload, path))
    assert _image_count(server) == before
    # one answer for a file that exists, one that does not, and a directory
    gradio_refusals = {r for r in refusals if "not uploaded by a user" in r}
    assert len(gradio_refusals) == 1, gradio_refusals


def test_a_real_upload_works_and_a_cached_display_file_is_still_refused(server, ui):
    name, content = photos(1, seed=11)[0]
    uploaded = ui.post("/ui/gradio_api/upload", files=[("files", (name, content, "image/jpeg"))])
    assert uploaded.status_code == 200, uploaded.text
    path = uploaded.json()[0]
    before = _image_count(server)
    event, payload = _call(ui, "upload", [[_file(path)]])
    assert event == "complete" and NOT_UPLOADED not in json.dumps(payload)
    assert _image_count(server) == before + 1
    # the thumbnail Gradio cached to show it is in its folder, but was not uploaded
    thumbnail = payload[0][0]["image"]["path"]  # type: ignore[index]
    event, payload = _call(ui, "upload", [[_file(thumbnail)]])
    assert NOT_UPLOADED in json.dumps(payload)
    assert _image_count(server) == before + 1


def _event_data(ui: httpx.Client, api_name: str, values: dict[str, object]) -> list:
    """The `data` list of a UI event, in the order of its inputs (from Gradio's config):
    `values` by component elem_id, every other input at its component's initial value."""
    config = ui.get("/ui/config").json()
    components = {c["id"]: c for c in config["components"]}
    dependency = next(d for d in config["dependencies"] if d.get("api_name") == api_name)
    data = []
    for component_id in dependency["inputs"]:
        props = components[component_id].get("props", {})
        elem_id = props.get("elem_id")
        data.append(values[elem_id] if elem_id in values else props.get("value"))
    return data


def test_the_camera_stream_reads_no_file_either(server, ui, outside):
    before = _image_count(server)
    for path in (outside["secret"], outside["missing"]):
        data = _event_data(ui, "on_frame", {"camera": _file(path), "live": True, "keywords": "cat"})
        name, payload = _call(ui, "on_frame", data)
        _refusal(name, payload, path)
    assert _image_count(server) == before


def test_every_ui_route_needs_the_login_and_health_is_open(server):
    anonymous = httpx.Client(base_url=server.url, timeout=30)
    for method, path in [
        ("GET", "/ui/gradio_api/heartbeat/abc"),
        ("POST", "/ui/gradio_api/reset"),
        ("POST", "/ui/gradio_api/cancel"),
        ("POST", "/ui/gradio_api/call/upload"),
        ("GET", "/ui/gradio_api/info"),
    ]:
        # streamed: an open heartbeat never ends, only its status is read
        with anonymous.stream(method, path, json={"data": [[_file("/etc/hostname")]]}) as response:
            assert response.status_code == 401, (method, path)
    assert anonymous.get("/ui/").status_code == 200  # the login page
    health = anonymous.get("/api/v1/health")
    assert health.status_code == 200 and set(health.json()) == {"status", "version"}
    assert "queue" in server.client.get("/health").json()


def test_the_llm_credentials_in_its_base_url_never_reach_the_log(server, llm):
    llm.enqueue(Reply.http_error(401, "bad credentials", echo_auth=True))
    body = {"message": "How do I find cats?"}
    with server.client.stream("POST", "/assistant/chat", json=body) as response:
        assert response.status_code == 200
        text = "".join(response.iter_text())
    sent = llm.chat_requests[-1]
    assert sent.path == f"/v1/chat/completions?api_key={QUERY_KEY}"
    assert sent.headers["authorization"] == f"Basic {BASIC}"
    # (Gradio prints a plain-text traceback for each refused path: not every line is JSON.)
    deadline = time.monotonic() + 30
    while not any("LLM request failed" in line for line in server.log_lines()):
        assert time.monotonic() < deadline, server.tail()
        time.sleep(0.05)
    log = server.log_path.read_text()
    for secret in (URL_PASS, QUERY_KEY, BASIC):
        assert secret not in log, secret
        assert secret not in text, secret


def _raw_request(server: LiveServer, head: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_a_two_megabyte_request_line_gets_a_short_414(server):
    answer = _raw_request(
        server, b"GET /api/v1/health?q=" + b"a" * 2_000_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 414"), answer[:200]
    assert json.loads(body)["error"]["code"] == "uri_too_long" and len(body) < 300
    headers = b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 100_000 + b"\r\n\r\n"
    assert _raw_request(server, headers).startswith(b"HTTP/1.1 431")
    assert server.client.get("/health").json()["status"] == "ready"


def test_sigterm_with_an_open_heartbeat_stream_stops_promptly_and_cleanly(server, ui):
    """Last in this module: it stops the server."""
    opened = threading.Event()
    ended = threading.Event()

    def listen() -> None:
        try:
            with ui.stream("GET", "/ui/gradio_api/heartbeat/sec-test", timeout=None) as response:
                for _ in response.iter_lines():
                    opened.set()
        except httpx.HTTPError:
            pass
        ended.set()

    threading.Thread(target=listen, daemon=True).start()
    assert opened.wait(30)
    written = len(server.log_lines())
    # The grace period is 60 s: the heartbeat must end long before it runs out.
    server.signal(signal.SIGTERM)  # uvicorn re-raises the signal once it has stopped: -15
    assert ended.wait(5)
    after = "\n".join(server.log_lines()[written:])
    assert "timeout graceful shutdown exceeded" not in after
    assert not re.search(r"Traceback|CancelledError|Exception in ASGI", after), after
