"""A real `seglens serve` process on 127.0.0.1 with the tiny profile, for integration tests."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

API = "/api/v1"
FINISHED = ("completed", "failed", "cancelled")
_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field")


def photos(count: int, *, seed: int = 0, size_hw: tuple[int, int] = (192, 256)) -> list[tuple[str, bytes]]:
    """`count` distinct JPEGs cut from scikit-image's bundled photographs."""
    import skimage.data

    rng = np.random.default_rng(seed)
    out = []
    for n in range(count):
        name = _PHOTOS[n % len(_PHOTOS)]
        source = getattr(skimage.data, name)()
        h, w = size_hw
        y = int(rng.integers(0, source.shape[0] - h))
        x = int(rng.integers(0, source.shape[1] - w))
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(source[y : y + h, x : x + w])).save(buffer, "JPEG", quality=90)
        out.append((f"{name}-{n}.jpg", buffer.getvalue()))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    process: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    log_path: Path
    client: httpx.Client

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_lines(self) -> list[str]:
        """The complete lines written so far (a line still being written is left out)."""
        text = self.log_path.read_text(errors="replace")
        return text[: text.rfind("\n") + 1].splitlines()

    def log_records(
        self, until: Callable[[list[dict[str, Any]]], bool], timeout_s: float = 10
    ) -> list[dict[str, Any]]:
        """The JSON log records once `until(records)` holds. The access line of a request is
        written after its response has gone out, so a test that has just had its answer
        polls for the line instead of reading the file once."""
        deadline = time.monotonic() + timeout_s
        while True:
            records = [json.loads(line) for line in self.log_lines()]
            if until(records) or time.monotonic() > deadline:
                return records
            time.sleep(0.05)

    def upload(self, files: list[tuple[str, bytes]]) -> list[str]:
        response = self.client.post("/images", files=[("files", (n, b, "image/jpeg")) for n, b in files])
        assert response.status_code == 200, response.text
        return [f["image"]["id"] for f in response.json()["files"]]

    def create_job(self, image_ids: list[str], query: str = "cat, cup") -> dict[str, Any]:
        response = self.client.post("/jobs", json={"image_ids": image_ids, "query": query})
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    def job(self, job_id: str) -> dict[str, Any]:
        return self.client.get(f"/jobs/{job_id}").json()  # type: ignore[no-any-return]

    def wait(self, job_id: str, until: Any, timeout_s: float = 120) -> dict[str, Any]:
        """Poll the job until `until(job)` holds."""
        deadline = time.monotonic() + timeout_s
        while True:
            job = self.job(job_id)
            if until(job):
                return job
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise AssertionError(f"job {job_id} never got there: {job}\n{self.tail()}")
            time.sleep(0.02)

    def results(self, job_id: str) -> list[dict[str, Any]]:
        return self.client.get(f"/jobs/{job_id}/results", params={"limit": 1000}).json()["items"]  # type: ignore[no-any-return]

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_lines()[-lines:])

    def signal(self, signum: int) -> int:
        """Send `signum` and wait for the process to exit; returns its exit code."""
        self.process.send_signal(signum)
        try:
            return self.process.wait(timeout=60)
        finally:
            self.client.close()


def start_server(data_dir: Path, models_dir: Path, *, port: int | None = None, **env: str) -> LiveServer:
    """Start ``python -m seglens.cli serve`` and wait until its models are loaded (on
    `port`, e.g. a restarted server's, which a browser's storage is tied to)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    if not (data_dir / "models").exists():
        (data_dir / "models").symlink_to(models_dir, target_is_directory=True)
    port = port or free_port()
    log_path = data_dir / f"server-{port}.log"
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SEGLENS_")},
        "HF_HUB_OFFLINE": "1",
        "SEGLENS_PROFILE": "tiny",
        "SEGLENS_DATA_DIR": str(data_dir),
        "SEGLENS_DEVICE": "cpu",
        "SEGLENS_WORKERS": "1",
        "SEGLENS_SHUTDOWN_GRACE_S": "20",
        **env,
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "seglens.cli", "serve", "--port", str(port)],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    token = env.get("SEGLENS_API_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}{API}", headers=headers, timeout=60)
    server = LiveServer(process, port, data_dir, log_path, client)
    deadline = time.monotonic() + 120
    while True:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}:\n{server.tail()}")
        try:
            if client.get("/health").json().get("status") == "ready":
                return server
        except (httpx.HTTPError, ValueError):
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"server never became ready:\n{server.tail()}")
        time.sleep(0.1)


@contextmanager
def running_server(
    data_dir: Path, models_dir: Path, *, port: int | None = None, **env: str
) -> Iterator[LiveServer]:
    server = start_server(data_dir, models_dir, port=port, **env)
    try:
        yield server
    finally:
        if server.process.poll() is None:
            server.signal(signal.SIGTERM)
