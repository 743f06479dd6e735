"""`seglens ui --api-url URL` on its own: here against a back end that is down."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest
from ui_steps import wait_text, wait_until

from live_server import free_port

pytestmark = pytest.mark.browser


@pytest.fixture
def lone_ui(tmp_path):
    dead, port = free_port(), free_port()
    log = (tmp_path / "ui.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "seglens.cli",
            "ui",
            "--api-url",
            f"http://127.0.0.1:{dead}",
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def up() -> bool:
        assert process.poll() is None, (tmp_path / "ui.log").read_text()
        try:
            return httpx.get(f"http://127.0.0.1:{port}/ui/", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(up, timeout_s=120, what="the UI answers")
        yield f"http://127.0.0.1:{port}", dead
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def test_ui_alone_says_the_back_end_is_down_and_keeps_what_was_typed(browser, lone_ui, photo_files):
    url, dead = lone_ui
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, locale="en-US")
    page = context.new_page()
    try:
        page.goto(f"{url}/")  # / redirects to /ui
        page.wait_for_selector("#keywords input")
        wait_text(page, "#tiny-warning", f"127.0.0.1:{dead} cannot be reached")
        page.fill("#keywords input", "cat, dog")
        page.set_input_files("#upload input[type=file]", [str(photo_files["chelsea"])])
        wait_text(page, "#notice", "cannot be reached")
        assert "Your images and settings are kept" in page.inner_text("#notice")
        assert page.input_value("#keywords input") == "cat, dog"
        assert "chelsea" in page.inner_text("#upload")  # the file waits for "Upload again"
        assert page.locator("#start").is_disabled()  # nothing to run yet
        page.click("#retry-upload")  # still down: the same notice, the file stays
        wait_text(page, "#notice", "cannot be reached")
        assert "chelsea" in page.inner_text("#upload")
        assert page.input_value("#keywords input") == "cat, dog"
    finally:
        context.close()
