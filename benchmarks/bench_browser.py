"""Browser benchmark: from a control change to the new picture on screen, measured in the
page, with Playwright driving Debian's Chromium against a real `seglens serve` (tiny
profile, CPU) and one photo with more than a thousand candidate regions.

Each sample is ``performance.now()`` at the input event (a capture listener on `window`,
ahead of the viewer's own) to the moment the viewer's ``data-render`` changes (a
MutationObserver), for the matching threshold, the merging threshold and the transparency
(range inputs moved as a drag moves them), and for a new keyword typed and submitted with
Enter (the page asks the server for the new probabilities, then repaints). For comparison
the server part of the previous design is timed on the same image: a ``POST /query`` with
the 1024-px overlay and one with the 360-px gallery overlay, one after the other (the old
UI sent these through Gradio for every change, plus Gradio's own round trip).
"""

from __future__ import annotations

import io
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_server import _Server

CHROMIUM = "/usr/bin/chromium"
POINTS_PER_SIDE = 19  # 19 x 19 points x 3 masks: 1,083 candidate regions with the tiny profile
SAMPLES = 40
KEYWORDS = [
    "dog",
    "tree",
    "car",
    "boat",
    "bird",
    "chair",
    "lamp",
    "road",
    "house",
    "flower",
    "horse",
    "cloud",
]
QUERY = "cat, person, cup, -grass"

_PROBE_JS = """() => {
  const host = document.querySelector('#seg-viewer');
  window.__bench = {t0: null, samples: []};
  const start = () => { window.__bench.t0 = performance.now(); };
  window.addEventListener('input', start, true);
  window.addEventListener('keydown', (e) => { if (e.key === 'Enter') start(); }, true);
  new MutationObserver(() => {
    const b = window.__bench;
    if (b.t0 !== null) { b.samples.push(performance.now() - b.t0); b.t0 = null; }
  }).observe(host, {attributes: true, attributeFilter: ['data-render']});
}"""


def _photo() -> bytes:
    import skimage.data
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(skimage.data.astronaut()).save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "p50": statistics.median(ordered),
        "p95": ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))],
        "max": ordered[-1],
    }


def _render(page: Any) -> dict[str, Any]:
    return dict(json.loads(page.evaluate("document.querySelector('#seg-viewer').dataset.render || '{}'")))


def _wait_seq(page: Any, seq: int, timeout_ms: float = 60_000) -> None:
    page.wait_for_function(
        "(s) => JSON.parse(document.querySelector('#seg-viewer').dataset.render || '{}').seq > s",
        arg=seq,
        timeout=timeout_ms,
    )


def _slider_samples(page: Any, elem_id: str, values: list[float]) -> list[float]:
    page.evaluate("window.__bench.samples = []")
    slider = page.locator(f"#{elem_id} input[type=range]")
    for value in values:
        seq = int(_render(page).get("seq", 0))
        slider.fill(str(value))  # input + change, as a drag step
        _wait_seq(page, seq)
    return list(page.evaluate("window.__bench.samples"))


def _keyword_samples(page: Any) -> list[float]:
    page.evaluate("window.__bench.samples = []")
    for word in KEYWORDS:
        page.fill("#keywords input", f"cat, {word}")
        page.press("#keywords input", "Enter")
        page.wait_for_function(
            "(w) => (JSON.parse(document.querySelector('#seg-viewer').dataset.render || '{}').keywords || []).includes(w)",
            arg=word,
            timeout=60_000,
        )
    return list(page.evaluate("window.__bench.samples"))


def _old_path_ms(server: _Server, image_id: str, rounds: int = 5) -> dict[str, float]:
    """The server part of one change in the previous UI: the large view then one gallery
    thumbnail, each a full PNG overlay."""
    times = []
    for i in range(rounds):
        started = time.perf_counter()
        for side in (1024, 360):
            body = {
                "image_id": image_id,
                "query": QUERY,
                "threshold": 0.15 + 0.01 * i,
                "overlay_max_side_px": side,
            }
            body["points_per_side"] = POINTS_PER_SIDE
            server.client.post("/query", json=body).raise_for_status()
        times.append((time.perf_counter() - started) * 1000)
    return _stats(times)


def run(results_dir: Path) -> dict[str, Any]:
    """Measure and return (and save) the latencies."""
    from playwright.sync_api import sync_playwright

    results_dir = Path(results_dir)
    with tempfile.TemporaryDirectory(prefix="seglens-bench-browser-") as tmp:
        root = Path(tmp)
        models = root / "models"
        models.mkdir()
        photo = root / "astronaut.jpg"
        photo.write_bytes(_photo())
        server = _Server(root, models)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
                )
                page = browser.new_page(viewport={"width": 1366, "height": 768})
                page.set_default_timeout(600_000)
                page.goto(f"http://127.0.0.1:{server.port}/ui/")
                page.wait_for_selector("#keywords input")
                page.set_input_files("#upload input[type=file]", [str(photo)])
                page.wait_for_function("document.querySelectorAll('#batch-gallery img').length >= 1")
                page.fill("#keywords input", QUERY)
                page.click("#advanced")
                box = page.locator("#points-per-side input[type=number]")
                box.fill(str(POINTS_PER_SIDE))
                box.press("Enter")
                started = time.perf_counter()
                page.click("#start")
                page.wait_for_function(
                    "(() => { const r = document.querySelector('#seg-viewer').dataset.render;"
                    " return r && JSON.parse(r).image_id; })()"
                )
                first_view_s = time.perf_counter() - started
                state = page.evaluate("window.__slViewer.state()")
                page.evaluate(_PROBE_JS)
                out: dict[str, Any] = {
                    "regions": state["regions"],
                    "overlap_pairs": state["pairs"],
                    "display_px": page.evaluate(
                        "[document.querySelector('#seg-viewer canvas').width,"
                        " document.querySelector('#seg-viewer canvas').height]"
                    ),
                    "job_to_first_view_s": first_view_s,
                }
                thresholds = [round(0.08 + 0.2 * ((i * 7) % SAMPLES) / SAMPLES, 2) for i in range(SAMPLES)]
                merges = [round(0.2 + 0.75 * ((i * 11) % SAMPLES) / SAMPLES, 2) for i in range(SAMPLES)]
                alphas = [round(0.1 + 0.8 * ((i * 13) % SAMPLES) / SAMPLES, 2) for i in range(SAMPLES)]
                # Many matches on screen: a low threshold first.
                _slider_samples(page, "threshold", [0.15])
                latency = {
                    "threshold": _stats(_slider_samples(page, "threshold", thresholds)),
                    "merge": _stats(_slider_samples(page, "merge", merges)),
                    "alpha": _stats(_slider_samples(page, "alpha", alphas)),
                    "new_keyword": _stats(_keyword_samples(page)),
                }
                out["matches_shown_last"] = _render(page).get("matches")
                out["slider_to_paint_ms"] = latency
                browser.close()
            image_id = server.client.get("/images", params={"limit": 1}).json()["items"][0]["id"]
            out["previous_design_server_part_ms"] = _old_path_ms(server, image_id)
        finally:
            server.close()
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "browser-latest.json").write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    from benchmarks.run import RESULTS

    print(json.dumps(run(RESULTS), indent=2))
