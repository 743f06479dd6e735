"""The Image Segmentation module in a real browser against a real server."""

from __future__ import annotations

import json

import pytest
from ui_steps import (
    click_picture,
    click_tab,
    jobs_total,
    move_slider,
    open_advanced,
    open_result,
    progress_log,
    run_job,
    set_number,
    slider_value,
    table_rows,
    upload,
    wait_picture_shows,
    wait_render,
    wait_rows,
    wait_status,
    wait_text,
    wait_until,
    wait_view_changes,
    watch_progress,
)

pytestmark = pytest.mark.browser

POSITIVE, NEGATIVE = (34, 197, 94), (239, 68, 68)  # the colours of clicked points


def test_upload_three_photos_shows_thumbnails_info_and_switches_language(page, photo_files):
    files = [photo_files[n] for n in ("chelsea", "coffee", "astronaut")]
    upload(page, files, expect=3)
    table = page.inner_text("#batch-table")
    for row in ("chelsea.jpg", "451×300", "coffee.jpg", "600×400", "astronaut.jpg", "512×512", "JPEG"):
        assert row in table
    assert "KB" in table
    assert "chelsea.jpg · 451×300 · JPEG" in page.inner_text("#batch-gallery")
    assert "TINY MODEL" in page.inner_text("#tiny-warning")

    page.fill("#keywords input", "cat, cup")
    page.locator("#lang label", has_text="中文").click()
    wait_text(page, "#start", "开始")
    assert "图像分割" in page.inner_text("#nav")
    assert "大小" in page.inner_text("#batch-table")  # the table's headers are translated
    assert page.locator("#batch-gallery img").count() == 3  # nothing uploaded was lost
    assert page.input_value("#keywords input") == "cat, cup"  # nor typed
    page.locator("#lang label", has_text="English").click()
    wait_text(page, "#start", "Start")

    page.locator("#batch-gallery button.thumbnail-item").nth(1).click()
    page.click("#remove-image")
    wait_rows(page, "batch-table", 2, exact=True)
    assert "coffee.jpg" not in page.inner_text("#batch-table")


def test_job_progress_fills_results_and_lists_in_history(page, server, photo_files, shoot):
    upload(page, [photo_files[n] for n in ("chelsea", "coffee", "astronaut")], expect=3)
    set_number(page, "threshold", 0.15)  # the tiny model's random scores sit near 0.2
    set_number(page, "merge", 0.3)  # fewer overlapping matches: a readable screenshot
    set_number(page, "alpha", 0.4)
    watch_progress(page)
    job_id = run_job(page, "cat, cup, -grass", points_per_side=8, expect_results=3)

    states = progress_log(page)
    finished = [f for _, f, _ in states]
    assert finished == sorted(finished), states  # progress only moves forward
    assert any(f < 3 for _, f, _ in states) and states[-1] == ("completed", 3, 3), states
    assert server.job(job_id)["status"] == "completed"
    captions = page.inner_text("#results-gallery")
    assert "chelsea.jpg" in captions and "matches" in captions

    open_result(page, 0)
    wait_rows(page, "regions", 1)
    shoot(page, "segmentation", full_page=True)

    click_tab(page, "Image details")
    wait_text(page, "#details-title", "chelsea.jpg")
    page.wait_for_selector("#scores-chart canvas, #scores-chart svg")
    page.wait_for_selector("#timings-chart canvas, #timings-chart svg")
    assert "time · mask_decoder" in page.inner_text("#log-table")
    shoot(page, "image-details")

    click_tab(page, "Batch statistics")
    wait_text(page, "#stats-summary", "3/3 done")
    page.wait_for_selector("#stats-stage-chart canvas, #stats-stage-chart svg")
    assert "mask_decoder" in page.inner_text("#stats-stages")
    assert table_rows(page, "stats-keywords") >= 1
    shoot(page, "batch-statistics")

    click_tab(page, "History")
    wait_text(page, "#history-table", job_id)
    assert "cat, cup, -grass" in page.inner_text("#history-table")
    page.fill("#history-keyword input", "dog")
    page.press("#history-keyword input", "Enter")
    page.wait_for_function(f"!document.querySelector('#history-table').innerText.includes('{job_id}')")
    page.fill("#history-keyword input", "cup")
    page.press("#history-keyword input", "Enter")
    wait_text(page, "#history-table", job_id)
    shoot(page, "history")
    page.click("#history-export")
    page.wait_for_selector("#history-file a")
    assert str(page.get_attribute("#history-file a", "href")).endswith("seglens-history.csv")

    # Reopen the job in a new session: the results come back with its query and settings.
    page.reload()
    page.wait_for_selector("#keywords input")
    click_tab(page, "History")
    wait_text(page, "#history-table", job_id)
    page.locator("#history-table [role=row]", has_text=job_id).locator("[role=gridcell]").first.click()
    page.click("#history-reopen")
    page.wait_for_function("document.querySelectorAll('#results-gallery img').length >= 3")
    assert page.input_value("#keywords input") == "cat, cup, -grass"
    assert slider_value(page, "threshold") == pytest.approx(0.15)


def test_moving_the_threshold_rerenders_from_cache_without_a_new_job(page, server, crop_files):
    upload(page, crop_files(2, seed=21), expect=2)
    run_job(page, "cat, cup", points_per_side=4, expect_results=2)
    before_view = open_result(page, 0)
    before_gallery = page.evaluate("[...document.querySelectorAll('#results-gallery img')].map(i => i.src)")
    jobs_before = jobs_total(server)
    regions_before = page.inner_text("#regions")

    # The viewer repaints in the page at once; the gallery and the region list follow
    # from the cache once the slider rests.
    move_slider(page, "threshold", 0.05)
    after_view = wait_view_changes(page, before_view)
    assert json.loads(after_view)["threshold"] == pytest.approx(0.05)
    page.wait_for_function(
        "(before) => [...document.querySelectorAll('#results-gallery img')].map(i => i.src).join() !== before.join()",
        arg=before_gallery,
    )
    wait_until(lambda: page.inner_text("#regions") != regions_before)
    assert jobs_total(server) == jobs_before  # re-rendered from the cache: no new job

    # Transparency and merging repaint in the page, then the cache is asked once settled.
    move_slider(page, "alpha", 0.2)
    wait_render(page, lambda r: r["alpha"] == pytest.approx(0.2))
    wait_until(lambda: _last_query_params(server).get("alpha") == pytest.approx(0.2))
    set_number(page, "merge", 0.3)
    wait_render(page, lambda r: r["merge_threshold"] == pytest.approx(0.3))
    wait_until(lambda: _last_query_params(server).get("merge_threshold") == pytest.approx(0.3))
    assert jobs_total(server) == jobs_before
    assert _last_query_params(server)["threshold"] == pytest.approx(0.05)

    # A click on the viewer refines a region through /images/{id}/prompt.
    current = page.evaluate("document.querySelector('#seg-viewer').dataset.render")
    click_picture(page, "#seg-viewer canvas", 0.5, 0.5)
    current = wait_view_changes(page, current)
    wait_text(page, "#regions", "refined (click)")
    wait_picture_shows(page, "#seg-viewer canvas", 0.5, 0.5, POSITIVE)
    # Shift+click adds a negative point (drawn red), whatever the toggle says.
    click_picture(page, "#seg-viewer canvas", 0.3, 0.3, modifiers=["Shift"])
    wait_until(lambda: _last_prompt_points(server) == 2)
    wait_picture_shows(page, "#seg-viewer canvas", 0.3, 0.3, NEGATIVE)


def _last_query_params(server) -> dict:
    items = server.client.get("/history", params={"kind": "query", "limit": 1}).json()["items"]
    return items[0]["params"] if items else {}


def _last_prompt_points(server) -> int:
    items = server.client.get("/history", params={"kind": "prompt", "limit": 1}).json()["items"]
    return int(items[0]["params"]["points"]) if items else 0


def test_stop_a_running_job_then_resume_it_to_completion(page, server, crop_files):
    upload(page, crop_files(6, seed=31), expect=6)
    page.fill("#keywords input", "cat")
    open_advanced(page)
    set_number(page, "points-per-side", 8)
    page.click("#start")
    wait_status(page, "running")
    page.click("#stop")
    assert wait_status(page, "cancelled", "completed") == "cancelled", "the job finished before Stop"
    job_id = str(page.get_attribute("#progress-box", "data-job"))
    assert server.job(job_id)["status"] == "cancelled"
    page.wait_for_function("!document.querySelector('#resume').disabled")

    page.click("#resume")
    wait_status(page, "completed")
    page.wait_for_function("document.querySelectorAll('#results-gallery img').length >= 6")
    job = server.job(job_id)
    assert job["status"] == "completed" and job["progress"]["done"] == 6
    kinds = [e["kind"] for e in server.client.get(f"/jobs/{job_id}/timeline").json()]
    assert "cancelled" in kinds and "resumed" in kinds


def test_broken_files_give_notices_and_the_other_images_still_process(page, server, photo_files, crop_files):
    files = [*crop_files(2, seed=41), photo_files["broken"], photo_files["notes"]]
    upload(page, files, expect=2)
    wait_text(page, "#notice", "notes.jpg was not added")  # the last file: all were tried
    notice = page.inner_text("#notice")
    assert "broken.jpg was not added" in notice and "corrupt" in notice
    assert table_rows(page, "batch-table") == 2

    page.fill("#exclude input", "grass")
    job_id = run_job(page, "cat", points_per_side=4, expect_results=2)
    job = server.job(job_id)
    assert job["status"] == "completed" and job["progress"]["done"] == 2
    assert job["query"] == "cat, -grass"

    page.click("#export")
    page.wait_for_selector("#export-file a")
    assert str(page.get_attribute("#export-file a", "href")).endswith(".json")
