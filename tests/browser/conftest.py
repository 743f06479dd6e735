"""Browser tests: Playwright driving Debian's Chromium against a real ``seglens serve``
(tiny profile, its own data directory) with the web UI mounted at /ui.

One server and one browser for the session; every test gets a fresh browser context (a new
UI session). The LLM is a scripted fake chat-completions server on 127.0.0.1. The camera is
Chromium's fake device playing a small .y4m video of a real photo written here.

Screenshots go to a temporary directory; with ``SEGLENS_UPDATE_SCREENSHOTS=1`` they are
also written, shrunk and palette-compressed, to docs/screenshots/.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fake_openai import FakeOpenAI
from live_server import LiveServer, running_server

CHROMIUM = Path(os.environ.get("SEGLENS_CHROMIUM", "/usr/bin/chromium"))
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]
VIEWPORT = {"width": 1440, "height": 1000}
# Generous: the CI machine may have two cores shared by the server, the models and Chromium.
DEFAULT_TIMEOUT_MS = 60_000


def write_y4m(
    path: Path, picture: np.ndarray, frames: int = 10, size_wh: tuple[int, int] = (320, 240)
) -> None:
    """A tiny YUV4MPEG2 (4:2:0) video of `picture`, drifting a little each frame, for
    ``--use-file-for-fake-video-capture`` (Chromium loops it)."""
    w, h = size_wh
    base = Image.fromarray(picture).resize((w + frames * 2, h), Image.Resampling.BILINEAR)
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{w} H{h} F10:1 Ip A1:1 C420jpeg XYSCSS=420JPEG\n".encode())
        for i in range(frames):
            frame = base.crop((i * 2, 0, i * 2 + w, h))
            y, u, v = (np.asarray(c) for c in frame.convert("YCbCr").split())
            out.write(b"FRAME\n")
            out.write(y.astype(np.uint8).tobytes())
            for chroma in (u, v):
                small = Image.fromarray(chroma).resize((w // 2, h // 2), Image.Resampling.BILINEAR)
                out.write(np.asarray(small, dtype=np.uint8).tobytes())


@pytest.fixture(scope="session")
def fake_llm() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="session")
def server(
    tmp_path_factory: pytest.TempPathFactory, models_dir: Path, fake_llm: FakeOpenAI
) -> Iterator[LiveServer]:
    data = tmp_path_factory.mktemp("ui-server")
    env = {
        "SEGLENS_LLM_BASE_URL": fake_llm.base_url,
        "SEGLENS_LLM_MODEL": "fake-chat",
        "SEGLENS_LLM_MAX_RETRIES": "0",
        "SEGLENS_LLM_TIMEOUT_S": "20",
        "SEGLENS_SSE_INTERVAL_S": "0.2",
    }
    with running_server(data, models_dir, **env) as live:
        yield live


@pytest.fixture(scope="session")
def photo_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """chelsea, coffee and astronaut from scikit-image as JPEG files, plus broken ones."""
    import skimage.data

    folder = tmp_path_factory.mktemp("photos")
    files = {}
    for name in ("chelsea", "coffee", "astronaut"):
        path = folder / f"{name}.jpg"
        Image.fromarray(getattr(skimage.data, name)()).save(path, "JPEG", quality=90)
        files[name] = path
    files["broken"] = folder / "broken.jpg"
    files["broken"].write_bytes(files["chelsea"].read_bytes()[:3000])
    files["notes"] = folder / "notes.jpg"
    files["notes"].write_bytes(b"these are my notes, not a photo\n" * 20)
    return files


@pytest.fixture(scope="session")
def crop_files(tmp_path_factory: pytest.TempPathFactory):
    """`make(count, seed)` → JPEG files cut from scikit-image photos: each seed gives images
    no other test has processed (the server caches by content)."""
    from live_server import photos

    folder = tmp_path_factory.mktemp("crops")

    def make(count: int, seed: int, size_hw: tuple[int, int] = (240, 320)) -> list[Path]:
        paths = []
        for name, data in photos(count, seed=seed, size_hw=size_hw):
            path = folder / f"s{seed}-{name}"
            path.write_bytes(data)
            paths.append(path)
        return paths

    return make


@pytest.fixture(scope="session")
def video_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import skimage.data

    path = tmp_path_factory.mktemp("camera") / "chelsea.y4m"
    write_y4m(path, skimage.data.chelsea())
    return path


@pytest.fixture(scope="session")
def browser(video_file: Path):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: run `make browser-deps` (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[*CHROMIUM_ARGS, f"--use-file-for-fake-video-capture={video_file}"],
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, server: LiveServer):
    """A fresh UI session on the server, loaded and connected."""
    context = browser.new_context(viewport=VIEWPORT, permissions=["camera"], locale="en-US")
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{server.url}/")
    page.wait_for_selector("#keywords input")
    page.wait_for_function("document.querySelector('#backend-status').innerText.includes('ready')")
    yield page
    context.close()
    assert not errors, f"JavaScript errors in the page: {errors}"


@pytest.fixture
def shoot(tmp_path: Path):
    """`shoot(page, name, selector=None)`: a screenshot of the page (or one element)."""

    def take(page, name: str, selector: str | None = None, full_page: bool = False) -> Path:
        raw = tmp_path / f"{name}.png"
        page.evaluate("window.scrollTo(0, 0)")
        # Gradio dims outputs while their event runs: wait until nothing is pending.
        page.wait_for_function("document.querySelectorAll('.pending, .generating').length === 0")
        page.wait_for_timeout(400)  # let the fade-in finish (a picture, not an assertion)
        if selector:
            page.locator(selector).screenshot(path=str(raw))
        else:
            page.screenshot(path=str(raw), full_page=full_page)
        if os.environ.get("SEGLENS_UPDATE_SCREENSHOTS") == "1":
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            _compact(raw, SCREENSHOTS / f"{name}.png")
        return raw

    return take


def _compact(source: Path, target: Path, max_width: int = 1280, budget_bytes: int = 300_000) -> None:
    """Shrink and palette-compress a screenshot until it fits `budget_bytes`."""
    with Image.open(source) as picture:
        image = picture.convert("RGB")
    width = min(max_width, image.width)
    while True:
        scaled = image.resize((width, round(image.height * width / image.width)), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        scaled.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
            buffer, "PNG", optimize=True
        )
        if buffer.tell() <= budget_bytes or width <= 640:
            break
        width = int(width * 0.85)
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(buffer.getvalue())
    shutil.move(tmp, target)
