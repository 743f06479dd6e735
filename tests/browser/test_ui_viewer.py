"""The client-side result viewer (#seg-viewer) in a real browser against a real server:
its JS port of core/matching.py gives exactly POST /query's matches, it repaints without
asking the server, transparency is one composite, and the loop fits a laptop screen."""

from __future__ import annotations

import random

import pytest
from ui_steps import run_job, upload, wait_render

pytestmark = pytest.mark.browser

QUERY = "cat, cup, person, -grass, -sky"


def _server_matches(server, image_id: str, query: str, params: dict) -> dict:
    body = {"image_id": image_id, "query": query, "overlay": False, **params}
    answer = server.client.post("/query", json=body)
    assert answer.status_code == 200, answer.text
    data = answer.json()
    return {
        "matches": [[m["keyword"], m["score"], m["region_indices"]] for m in data["matches"]],
        "image_matched": data["image_matched"],
        "missing_keywords": data["missing_keywords"],
        "excluded_by": data["excluded_by"],
    }


def _page_matches(page, params: dict) -> dict:
    out = page.evaluate("(p) => window.__slViewer.match(p)", params)
    return {
        "matches": [[m["keyword"], m["score"], m["region_indices"]] for m in out["matches"]],
        "image_matched": out["image_matched"],
        "missing_keywords": out["missing_keywords"],
        "excluded_by": out["excluded_by"],
    }


def _draws(rng: random.Random, count: int) -> list[dict]:
    """Thresholds where the tiny model's random probabilities sit (and the edges)."""
    draws = [
        {"threshold": 0.0, "merge_threshold": 0.0, "mode": "all", "merge_strategy": "union"},
        {"threshold": 1.0, "merge_threshold": 1.0, "mode": "any", "merge_strategy": "nms"},
    ]
    for _ in range(count):
        draws.append(
            {
                "threshold": round(
                    rng.choice([rng.uniform(0.0, 0.5), rng.uniform(0.1, 0.3)]), rng.choice([2, 3, 6])
                ),
                "merge_threshold": round(rng.uniform(0.0, 1.0), rng.choice([2, 6])),
                "mode": rng.choice(["any", "all"]),
                "merge_strategy": rng.choice(["nms", "union"]),
            }
        )
    return draws


def _check_parity(page, server, image_id: str, query: str, rng: random.Random, count: int) -> int:
    """Compare every draw; returns how many matches the draws gave in all."""
    total = 0
    for params in _draws(rng, count):
        expected = _server_matches(server, image_id, query, params)
        assert _page_matches(page, params) == expected, params
        total += len(expected["matches"])
    return total


def test_the_viewer_gives_the_matches_of_query_for_random_parameters(page, server, crop_files):
    upload(page, crop_files(3, seed=61), expect=3)
    run_job(page, QUERY, points_per_side=6, expect_results=3, timeout_ms=300_000)
    first = wait_render(page, lambda r: r.get("image_id") and r.get("matches") is not None)
    rng = random.Random(7)
    results = server.results(page.get_attribute("#progress-box", "data-job"))
    ids = [r["image_id"] for r in sorted(results, key=lambda r: r["position"])]
    assert first["image_id"] == ids[0] and first["keywords"] == ["cat", "cup", "person"]
    assert first["exclusions"] == ["grass", "sky"]
    total = _check_parity(page, server, ids[0], QUERY, rng, 30)

    # Another image, chosen in the gallery.
    page.locator("#results-gallery button.thumbnail-item").nth(2).click()
    wait_render(page, lambda r: r.get("image_id") == ids[2])
    total += _check_parity(page, server, ids[2], QUERY, rng, 30)

    # New keywords: the page asks for the new probabilities only, then repaints.
    page.fill("#keywords input", "dog, tree")
    page.fill("#exclude input", "cat")
    page.press("#exclude input", "Enter")
    wait_render(page, lambda r: r.get("keywords") == ["dog", "tree"])
    total += _check_parity(page, server, ids[2], "dog, tree, -cat", rng, 30)
    assert total > 100  # the draws exercised real matching, not empty answers


def test_sliders_repaint_in_the_page_and_transparency_is_one_composite(page, server, crop_files):
    upload(page, crop_files(1, seed=62), expect=1)
    run_job(page, "cat, cup", points_per_side=6, expect_results=1, timeout_ms=300_000)
    wait_render(page, lambda r: r.get("image_id"))
    for name in ("legend", "labels", "contours"):
        page.locator(f"#seg-viewer input[data-toggle={name}]").uncheck()
    _set_slider(page, "merge", 1.0)
    _set_slider(page, "threshold", 0.0)
    _set_slider(page, "alpha", 0.1)
    shown = wait_render(
        page, lambda r: r["threshold"] == 0 and r["alpha"] == 0.1 and r["merge_threshold"] == 1
    )
    assert shown["matches"] > 20  # many overlapping matches on every pixel
    assert shown["legend"] is False and shown["mode"] == "any"
    # Each pixel is the photo blended once with one colour at 0.1, however many matches
    # overlap it (stacked, 20 layers of 0.1 would leave almost none of the photo).
    worst = page.evaluate("() => window.__slViewer.blendError(0.1)")
    assert worst <= 1, worst


def test_the_picture_and_the_three_sliders_fit_a_laptop_screen(browser, server, crop_files):
    context = browser.new_context(viewport={"width": 1366, "height": 768}, locale="en-US")
    context.set_default_timeout(60_000)
    page = context.new_page()
    try:
        page.goto(f"{server.url}/")
        page.wait_for_selector("#keywords input")
        upload(page, crop_files(1, seed=63), expect=1)
        run_job(page, "cat", points_per_side=4, expect_results=1)
        wait_render(page, lambda r: r.get("image_id"))
        # After Start (at the bottom of the left column) the result is on screen by itself.
        top, bottom = page.evaluate(
            "(() => { const b = document.querySelector('#seg-viewer canvas').getBoundingClientRect();"
            " return [b.top, b.bottom]; })()"
        )
        assert top >= 0 and bottom <= 768, (top, bottom)
        # Scrolled to the sliders, the picture is still on screen (the viewer is sticky).
        page.locator("#threshold").evaluate("(e) => e.scrollIntoView({block: 'start'})")
        boxes = page.evaluate(
            """() => ['#seg-viewer canvas', '#threshold', '#merge', '#alpha'].map((s) => {
                 const b = document.querySelector(s).getBoundingClientRect();
                 return [s, b.top, b.bottom, b.left, b.right, b.width];
               })"""
        )
        for selector, top, bottom, left, right, width in boxes:
            assert width > 100 and top >= 0 and bottom <= 768 and left >= 0 and right <= 1366, (
                selector,
                boxes,
            )
    finally:
        context.close()


def _set_slider(page, elem_id: str, value: float) -> None:
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")
    page.wait_for_function(
        "([id, v]) => { const r = JSON.parse(document.querySelector('#seg-viewer').dataset.render || '{}');"
        " return r[{threshold: 'threshold', merge: 'merge_threshold', alpha: 'alpha'}[id]] === v; }",
        arg=[elem_id, value],
    )
