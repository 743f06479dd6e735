"""The session survives: a reload, a second tab and a server restart bring back the batch,
the keywords, the sliders, the language, the open job and the selected image. And the
downloads are what is on screen."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from browser_storage import stored_session
from ui_steps import open_result, run_job, set_number, slider_value, upload, wait_text, wait_until

from live_server import running_server

pytestmark = pytest.mark.browser

VIEWPORT = {"width": 1440, "height": 1000}
# Generous: two shared cores run the server, the models, Chromium and other people's tests
# (a reload restores images, thumbnails, a job and its results before the checks hold).
TIMEOUT_MS = 120_000


def _open(context: Any, url: str) -> Any:
    page = context.new_page()
    page.goto(url)
    page.wait_for_selector("#keywords input")
    page.wait_for_function("document.querySelector('#backend-status').innerText.length > 0")
    return page


def _prepare(page: Any, server: Any, files: list[Path]) -> str:
    """Two images, keywords, moved sliders, 中文, a finished job and the second result
    open large; returns the job id once the browser has stored all of it (a reload reads
    what is stored, and the newest save may still be on its way)."""
    upload(page, files, expect=2)
    set_number(page, "threshold", 0.15)
    set_number(page, "merge", 0.35)
    set_number(page, "alpha", 0.65)
    job_id = run_job(page, "cat, cup", points_per_side=4, expect_results=2)
    page.fill("#exclude input", "grass")
    open_result(page, 1)
    page.locator("#lang label", has_text="中文").click()
    wait_text(page, "#start", "开始")
    second = sorted(server.results(job_id), key=lambda r: r["position"])[1]["image_id"]
    expected = {
        "lang": "zh",
        "keywords": "cat, cup",
        "exclude": "grass",
        "threshold": 0.15,
        "merge": 0.35,
        "alpha": 0.65,
        "job_id": job_id,
        "selected": second,
    }

    def stored() -> bool:
        saved = stored_session(page, server.url)
        return {k: saved.get(k) for k in expected} == expected and len(saved.get("images", [])) == 2

    wait_until(stored, 120, "the session stored in the browser")
    return job_id


def _assert_restored(page: Any, job_id: str, files: list[Path]) -> None:
    """Wait for everything the session had to come back."""
    wait_text(page, "#start", "开始")
    page.wait_for_function(f"document.querySelector('#progress-box')?.dataset.job === {json.dumps(job_id)}")
    page.wait_for_function("document.querySelectorAll('#batch-gallery img').length === 2")
    page.wait_for_function("document.querySelectorAll('#results-gallery img').length === 2")
    page.wait_for_function(
        "!!JSON.parse(document.querySelector('#seg-viewer')?.dataset.render || '{}').image_id"
    )
    assert page.input_value("#keywords input") == "cat, cup"
    assert page.input_value("#exclude input") == "grass"
    assert slider_value(page, "threshold") == pytest.approx(0.15)
    assert slider_value(page, "merge") == pytest.approx(0.35)
    assert slider_value(page, "alpha") == pytest.approx(0.65)
    for f in files:
        assert f.name in page.inner_text("#batch-table")
    assert page.get_attribute("#progress-box", "data-status") == "completed"


def _selected_is_second(page: Any, server: Any, job_id: str) -> bool:
    """The viewer shows the second result (its `data-render` names the image)."""
    second = sorted(server.results(job_id), key=lambda r: r["position"])[1]["image_id"]
    shown = page.evaluate("document.querySelector('#seg-viewer')?.dataset.render || '{}'")
    return bool(json.loads(shown or "{}").get("image_id") == second)


def test_reload_and_a_second_tab_bring_the_session_back(page, server, crop_files):
    page.context.set_default_timeout(TIMEOUT_MS)
    files = crop_files(2, seed=61, size_hw=(200, 320))
    files[1] = crop_files(1, seed=62, size_hw=(320, 200))[0]  # another shape: the view tells them apart
    job_id = _prepare(page, server, files)
    wait_until(lambda: _selected_is_second(page, server, job_id), 120, "the second result open large")

    page.reload()
    page.wait_for_selector("#keywords input")
    _assert_restored(page, job_id, files)
    wait_until(lambda: _selected_is_second(page, server, job_id), 120, "the selection back after a reload")
    assert "images and settings are kept" not in page.inner_text("#notice")

    second = _open(page.context, f"{server.url}/")
    _assert_restored(second, job_id, files)
    wait_until(lambda: _selected_is_second(second, server, job_id), 120, "the selection in a second tab")


def test_a_server_restart_keeps_the_session(browser, tmp_path, models_dir, crop_files):
    files = crop_files(2, seed=63, size_hw=(200, 320))
    context = browser.new_context(viewport=VIEWPORT, locale="en-US")
    context.set_default_timeout(TIMEOUT_MS)
    try:
        with running_server(tmp_path, models_dir, SEGLENS_SSE_INTERVAL_S="0.2") as first:
            port = first.port
            page = _open(context, f"{first.url}/")
            job_id = _prepare(page, first, files)
        with running_server(tmp_path, models_dir, port=port, SEGLENS_SSE_INTERVAL_S="0.2") as second:
            page.goto(f"{second.url}/")
            page.wait_for_selector("#keywords input")
            _assert_restored(page, job_id, files)
            wait_until(
                lambda: _selected_is_second(page, second, job_id), 120, "the selection after a restart"
            )
    finally:
        context.close()


def _annotations(document: dict[str, Any]) -> list[tuple[Any, ...]]:
    names = {c["id"]: c["name"] for c in document["categories"]}
    images = {i["id"]: i["seglens_image_id"] for i in document["images"]}
    return sorted(
        (images[a["image_id"]], names[a["category_id"]], a["segmentation"]["counts"], a["score"])
        for a in document["annotations"]
    )


def _query_union(
    server: Any, image_ids: list[str], query: str, params: dict[str, Any]
) -> list[tuple[Any, ...]]:
    found = []
    for image_id in image_ids:
        body = {"image_id": image_id, "query": query, "overlay": False, "points_per_side": 4, **params}
        answer = server.client.post("/query", json=body).json()
        found += [
            (image_id, m["keyword"], m["rle"]["counts"], round(m["score"], 6)) for m in answer["matches"]
        ]
    return sorted(found)


def test_the_download_is_what_is_on_screen_and_says_so(page, server, crop_files):
    page.context.set_default_timeout(TIMEOUT_MS)
    upload(page, crop_files(2, seed=64), expect=2)
    set_number(page, "threshold", 0.3)
    job_id = run_job(page, "cat, cup", points_per_side=4, expect_results=2)
    # What the screen shows next: other keywords, another threshold and merging.
    page.fill("#keywords input", "cup, sky")
    page.press("#keywords input", "Enter")
    set_number(page, "threshold", 0.12)
    set_number(page, "merge", 0.45)
    wait_text(page, "#export-settings", "cup, sky")
    wait_text(page, "#export-settings", "0.12")
    wait_text(page, "#export-settings", "0.45")

    page.click("#export")
    page.wait_for_selector("#export-file a")
    name = f"seglens-job-{job_id[:12]}.coco.json"
    wait_text(page, "#export-file", name)  # the box names the file
    href = str(page.get_attribute("#export-file a", "href"))
    document = page.context.request.get(href if href.startswith("http") else f"{server.url}{href}").json()
    ids = [r["image_id"] for r in server.results(job_id)]
    screen = {"threshold": 0.12, "merge_threshold": 0.45, "mode": "any"}
    expected = _query_union(server, ids, "cup, sky", screen)
    assert expected, "the low threshold should match something"
    assert _annotations(document) == expected
    assert document["info"]["query"] == "cup, sky"
    assert {k: document["info"]["params"][k] for k in screen} == screen

    # A link made for other settings goes when the settings change.
    set_number(page, "threshold", 0.2)
    page.wait_for_function("!document.querySelector('#export-file a')")
    wait_text(page, "#export-settings", "0.20")
