"""The camera source, with Chromium's fake camera playing a .y4m of a real photo."""

from __future__ import annotations

import pytest
from ui_steps import open_advanced, set_number, wait_rows, wait_text

pytestmark = pytest.mark.browser


def test_camera_preview_capture_and_live_overlay(page, server, shoot):
    page.fill("#keywords input", "cat")
    open_advanced(page)
    set_number(page, "points-per-side", 4)
    page.get_by_role("tab", name="Camera", exact=True).click()
    page.locator("#camera button", has_text="Click to Access Webcam").click()
    page.wait_for_function(
        "(() => { const v = document.querySelector('#camera video'); return v && v.videoWidth > 0 && !v.paused; })()"
    )

    page.click("#capture")  # the preview's current frame joins the batch
    wait_rows(page, "batch-table", 1)
    table = page.inner_text("#batch-table")
    assert "camera-" in table and "320×240" in table and "JPEG" in table
    captured = page.inner_text("#batch-table")
    image_id = server.client.get("/images", params={"limit": 1}).json()["items"][0]["id"]
    assert server.client.get(f"/images/{image_id}").json()["width"] == 320

    page.check("#live input")
    page.locator("#camera button", has_text="Record").click()
    wait_text(page, "#fps", "frames/s")  # the first live frame went through /query
    page.wait_for_selector("#live-view img")
    # A second processed frame gives a measured rate.
    page.wait_for_function(
        "(() => { const m = document.querySelector('#fps').innerText.match(/([0-9.]+) frames\\/s/); return m && +m[1] > 0; })()"
    )
    shoot(page, "camera", selector="#sources")
    page.uncheck("#live input")
    wait_text(page, "#fps", "Live overlay off")
    # Live frames are queried one at a time and never join the batch; the back end keeps
    # none of them (each is deleted once its overlay is back).
    assert page.inner_text("#batch-table") == captured
    queried = {
        entry["image_id"]
        for entry in server.client.get("/history", params={"kind": "query", "limit": 200}).json()["items"]
    }
    stored = {image["id"] for image in server.client.get("/images", params={"limit": 500}).json()["items"]}
    assert queried - stored, (queried, stored)
