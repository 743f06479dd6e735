"""Helpers for the server tests: a fake-model app in-process, and image bytes."""

from __future__ import annotations

import io
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image

from fakes import FakeProposer, OracleEmbedder, shapes_scene
from seglens.api.app import create_app
from seglens.core.types import GenerationParams
from seglens.models.protocols import Proposal
from seglens.services.segment.pipeline import Pipeline
from seglens.settings import Settings
from seglens.storage.cache import ArtifactCache

API = "/api/v1"
FINISHED = ("completed", "failed", "cancelled")


def marker(image: np.ndarray) -> int:
    """The number `scene_png(n)` hides in the top-left pixel."""
    return int(image[0, 0, 0])


def scene_png(n: int = 0, fmt: str = "PNG") -> bytes:
    """The fake proposer's 120x160 scene (red square, green disc, blue rectangle) with `n`
    in the top-left pixel, so each `n` is a different image."""
    image, _ = shapes_scene()
    image[0, 0] = (n, n, n)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, fmt)
    return buffer.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A well-formed PNG header whose IHDR claims `width` x `height`, with a tiny IDAT."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 16))
        + chunk(b"IEND", b"")
    )


def jpeg_bytes(size: tuple[int, int] = (320, 240)) -> bytes:
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


# A corpus of bad uploads: name → (filename, content, expected status, expected code).
BAD_UPLOADS = {
    "truncated JPEG": ("cut.jpg", jpeg_bytes()[:3000], 400, "corrupt_image"),
    "PNG declaring 100000 x 100000": ("bomb.png", png_declaring(100_000, 100_000), 413, "too_many_pixels"),
    "zero bytes": ("empty.png", b"", 400, "empty_file"),
    "text renamed .jpg": ("notes.jpg", b"these are my notes, not a photo\n" * 20, 415, "not_an_image"),
    "path-traversal filename": ("../../etc/passwd.png", scene_png(1), 400, "invalid_filename"),
    "windows path filename": ("..\\..\\boot.png", scene_png(1), 400, "invalid_filename"),
}


@dataclass
class GatedProposer(FakeProposer):
    """A FakeProposer that records which images it saw and, while `gated`, stops inside
    `propose` until the test lets it go: tests hold a worker in the middle of an image."""

    gated: bool = False
    fail_markers: set[int] = field(default_factory=set)
    seen: list[int] = field(default_factory=list)
    entered: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))
    gate: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))

    def propose(self, image: np.ndarray, params: GenerationParams) -> Proposal:
        self.seen.append(marker(image))
        if self.gated:
            self.entered.release()
            if not self.gate.acquire(timeout=30):
                raise RuntimeError("test gate never opened")
        if marker(image) in self.fail_markers:
            raise RuntimeError("simulated model failure")
        return super().propose(image, params)

    def wait_inside(self, count: int = 1) -> None:
        for _ in range(count):
            assert self.entered.acquire(timeout=30), "no image reached the proposer"

    def release(self, count: int = 1) -> None:
        for _ in range(count):
            self.gate.release()

    def open(self) -> None:
        self.gated = False
        self.release(64)


@dataclass
class Harness:
    client: TestClient
    proposer: GatedProposer
    embedder: OracleEmbedder
    settings: Settings

    @property
    def runtime(self) -> Any:
        return self.client.app.state.runtime  # type: ignore[attr-defined]

    def upload(self, *numbers: int) -> list[str]:
        files = [("files", (f"scene-{n}.png", scene_png(n), "image/png")) for n in numbers]
        response = self.client.post(f"{API}/images", files=files)
        assert response.status_code == 200, response.text
        return [f["image"]["id"] for f in response.json()["files"]]

    def create_job(self, image_ids: list[str], query: str = "red, blue", **params: Any) -> dict[str, Any]:
        response = self.client.post(
            f"{API}/jobs", json={"image_ids": image_ids, "query": query, "params": params}
        )
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    def job(self, job_id: str) -> dict[str, Any]:
        return self.client.get(f"{API}/jobs/{job_id}").json()  # type: ignore[no-any-return]

    def wait_for(
        self, job_id: str, states: tuple[str, ...] = FINISHED, timeout_s: float = 30
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            job = self.job(job_id)
            if job["status"] in states:
                return job
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} stuck in {job['status']}: {job['progress']}")
            time.sleep(0.02)

    def wait_idle(self, timeout_s: float = 30) -> None:
        """Until no worker holds an image."""
        deadline = time.monotonic() + timeout_s
        while self.runtime.scheduler.in_flight:
            if time.monotonic() > deadline:
                raise AssertionError("a worker is still busy")
            time.sleep(0.01)

    def results(self, job_id: str) -> list[dict[str, Any]]:
        response = self.client.get(f"{API}/jobs/{job_id}/results", params={"limit": 1000})
        assert response.status_code == 200, response.text
        return response.json()["items"]  # type: ignore[no-any-return]


@contextmanager
def harness(
    data_dir: Path,
    *,
    meaningless: bool = False,
    factory: Callable[[Settings], Pipeline] | None = None,
    **settings: Any,
) -> Iterator[Harness]:
    """An app with fake models, a real SQLite file in `data_dir`, one worker."""
    _, shapes = shapes_scene()
    proposer = GatedProposer(list(shapes.values()), meaningless=meaningless)
    embedder = OracleEmbedder()

    def fake_factory(s: Settings) -> Pipeline:
        return Pipeline(proposer, embedder, cache=ArtifactCache(s.data_dir / "cache"), profile=s.profile)

    config = Settings(data_dir=data_dir, workers=1, profile="fake", **settings)
    app = create_app(config, pipeline_factory=factory or fake_factory)
    with TestClient(app) as client:
        client.app.state.runtime.provider.wait(30)  # type: ignore[attr-defined]
        try:
            yield Harness(client, proposer, embedder, config)
        finally:
            proposer.open()
