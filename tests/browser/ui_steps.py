"""Steps the browser tests share: each waits for a visible condition, never for a time."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from live_server import LiveServer


def upload(page: Any, files: list[Path], expect: int) -> None:
    """Drop `files` on the upload box; wait until the batch shows `expect` thumbnails."""
    page.set_input_files("#upload input[type=file]", [str(f) for f in files])
    page.wait_for_function(f"document.querySelectorAll('#batch-gallery img').length >= {expect}")
    wait_rows(page, "batch-table", expect)


def set_number(page: Any, elem_id: str, value: float) -> None:
    """Type a value into a slider's number box (Enter commits it)."""
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def move_slider(page: Any, elem_id: str, value: float) -> None:
    """Move a slider's range input, as a drag does (input and change events)."""
    page.locator(f"#{elem_id} input[type=range]").fill(str(value))


def slider_value(page: Any, elem_id: str) -> float:
    return float(page.locator(f"#{elem_id} input[type=number]").input_value())


def open_advanced(page: Any) -> None:
    if not page.locator("#points-per-side").is_visible():
        page.click("#advanced")
    page.wait_for_selector("#points-per-side input[type=number]")


def watch_progress(page: Any) -> None:
    """Record every state the progress bar shows into ``window.__progress``."""
    page.evaluate(
        """() => {
        window.__progress = [];
        const record = () => {
          const box = document.querySelector('#progress-box');
          if (box) window.__progress.push([box.dataset.status, +(box.dataset.finished || 0), +box.dataset.total]);
        };
        new MutationObserver(record).observe(document.querySelector('#progress'),
          {subtree: true, childList: true, attributes: true, characterData: true});
      }"""
    )


def progress_log(page: Any) -> list[tuple[str, int, int]]:
    return [tuple(x) for x in page.evaluate("window.__progress || []")]


def wait_status(page: Any, *statuses: str, timeout_ms: float | None = None) -> str:
    wanted = json.dumps(list(statuses))
    page.wait_for_function(
        f"(() => {{ const b = document.querySelector('#progress-box'); return b && {wanted}.includes(b.dataset.status); }})()",
        timeout=timeout_ms,
    )
    return str(page.get_attribute("#progress-box", "data-status"))


def run_job(
    page: Any,
    keywords: str,
    points_per_side: int = 4,
    expect_results: int | None = None,
    timeout_ms: float = 300_000,
) -> str:
    """Type the keywords, set the grid, press Start, wait until the job completed (a
    loaded machine may take minutes) and the results gallery shows `expect_results`
    pictures; returns the job id."""
    page.fill("#keywords input", keywords)
    open_advanced(page)
    set_number(page, "points-per-side", points_per_side)
    page.click("#start")
    wait_status(page, "completed", timeout_ms=timeout_ms)
    if expect_results:
        page.wait_for_function(
            f"document.querySelectorAll('#results-gallery img').length >= {expect_results}"
        )
    return str(page.get_attribute("#progress-box", "data-job"))


_RENDER_JS = "document.querySelector('#seg-viewer')?.dataset.render || ''"


def open_result(page: Any, index: int = 0) -> str:
    """Select a result; wait for the viewer to paint it; returns its ``data-render``."""
    before = page.evaluate(_RENDER_JS)
    page.locator("#results-gallery button.thumbnail-item").nth(index).click()
    return wait_view_changes(page, before)


def wait_view_changes(page: Any, before: str) -> str:
    """Wait until the viewer paints again (every paint has a new ``data-render``)."""
    page.wait_for_function(
        f"(() => {{ const r = {_RENDER_JS}; return r && r !== {json.dumps(before)} && JSON.parse(r).image_id; }})()"
    )
    return str(page.evaluate(_RENDER_JS))


def render_state(page: Any) -> dict[str, Any]:
    """What the viewer last painted (its ``data-render``), {} before the first paint."""
    return dict(json.loads(page.evaluate("document.querySelector('#seg-viewer')?.dataset.render || '{}'")))


def wait_render(
    page: Any, condition: Callable[[dict[str, Any]], Any], timeout_s: float = 60.0
) -> dict[str, Any]:
    """Wait until the viewer has painted a state for which `condition` holds; returns it."""
    shown: dict[str, Any] = {}

    def holds() -> bool:
        nonlocal shown
        shown = render_state(page)
        return bool(shown) and bool(condition(shown))

    wait_until(holds, timeout_s, "the viewer's data-render condition")
    return shown


def click_tab(page: Any, label: str) -> None:
    page.get_by_role("tab", name=label, exact=True).click()


def jobs_total(server: LiveServer) -> int:
    return int(server.client.get("/jobs", params={"limit": 1}).json()["total"])


def wait_text(page: Any, selector: str, text: str) -> None:
    page.wait_for_function(
        f"(() => {{ const e = document.querySelector({json.dumps(selector)}); return e && e.innerText.includes({json.dumps(text)}); }})()"
    )


def _rows_js(elem_id: str) -> str:
    return f"[...document.querySelectorAll('#{elem_id} [role=row]')].filter(r => !r.closest('thead')).length"


def table_rows(page: Any, elem_id: str) -> int:
    """Data rows of a Dataframe (the header row excluded)."""
    return int(page.evaluate(_rows_js(elem_id)))


def wait_rows(page: Any, elem_id: str, count: int, exact: bool = False) -> None:
    op = "==" if exact else ">="
    page.wait_for_function(f"{_rows_js(elem_id)} {op} {count}")


def wait_until(condition: Callable[[], bool], timeout_s: float = 60.0, what: str = "condition") -> None:
    """Poll a condition outside the page (the API, a file) until it holds."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} never held within {timeout_s} s")
        time.sleep(0.05)


_PICTURE_RECT_JS = """(img) => {
  const box = img.getBoundingClientRect();
  if (img.tagName === 'CANVAS') return {x: 0, y: 0, w: box.width, h: box.height, scale: box.width / img.width};
  const fit = getComputedStyle(img).objectFit;
  let scale = Math.min(box.width / img.naturalWidth, box.height / img.naturalHeight);
  if (fit === 'scale-down') scale = Math.min(scale, 1);
  const w = img.naturalWidth * scale, h = img.naturalHeight * scale;
  return {x: (box.width - w) / 2, y: (box.height - h) / 2, w, h, scale};
}"""


# A picture can take a click: a canvas (the viewer) once it has a size; an <img> once it has
# loaded (Gradio's Image sends no select event for a click on an <img> whose `naturalWidth`
# is 0: the click then has no coordinates).
_PICTURE_LOADED_JS = (
    "(img) => img.tagName === 'CANVAS' ? img.width > 0 : (img.complete && img.naturalWidth > 0)"
)
# Records, as the click reaches the page (a capturing listener runs before the page's own, in
# the same dispatch), whether the picture could take it.
_WATCH_CLICK_JS = f"""(selector) => {{
  window.__slClickLoaded = null;
  document.addEventListener('click', () => {{
    const img = document.querySelector(selector);
    window.__slClickLoaded = !!img && ({_PICTURE_LOADED_JS})(img);
  }}, {{capture: true, once: true}});
}}"""


def click_picture(
    page: Any, selector: str, fx: float, fy: float, modifiers: list[str] | None = None, attempts: int = 10
) -> None:
    """Click at (fx, fy), fractions of the picture as drawn (not of its letterboxed box).

    A click that lands while the picture is being replaced (a re-render's new overlay is
    still loading: Chromium reports `naturalWidth` 0 until it has) gets no coordinates, and
    Gradio drops it without sending any event; such a click is made again once the new
    picture has loaded. Whether it was dropped is read from the page at the click itself,
    so no click is ever sent twice."""
    img = page.locator(selector)
    for _ in range(attempts):
        page.wait_for_function(
            f"(() => {{ const i = document.querySelector({json.dumps(selector)}); return i && ({_PICTURE_LOADED_JS})(i); }})()"
        )
        rect = img.evaluate(_PICTURE_RECT_JS)
        page.evaluate(_WATCH_CLICK_JS, selector)
        position = {"x": rect["x"] + fx * rect["w"], "y": rect["y"] + fy * rect["h"]}
        img.click(position=position, modifiers=modifiers or [])
        if page.evaluate("window.__slClickLoaded") is not False:
            return
    raise AssertionError(f"every click on {selector} landed while its picture was loading")


def picture_colors(
    page: Any, selector: str, fx: float, fy: float, radius: int = 6
) -> set[tuple[int, int, int]]:
    """The RGB colours of the picture's own pixels around (fx, fy) (fractions of its size)."""
    pixels = page.locator(selector).evaluate(
        """(img, [fx, fy, r]) => {
          let c = img;
          if (img.tagName !== 'CANVAS') {
            c = document.createElement('canvas');
            c.width = img.naturalWidth; c.height = img.naturalHeight;
            c.getContext('2d').drawImage(img, 0, 0);
          }
          const g = c.getContext('2d');
          const x = Math.round(fx * c.width), y = Math.round(fy * c.height);
          return Array.from(g.getImageData(x - r, y - r, 2 * r + 1, 2 * r + 1).data);
        }""",
        [fx, fy, radius],
    )
    return {tuple(pixels[i : i + 3]) for i in range(0, len(pixels), 4)}


def wait_picture_shows(
    page: Any, selector: str, fx: float, fy: float, colour: tuple[int, int, int], timeout_s: float = 30.0
) -> None:
    """Wait until the picture has `colour` around (fx, fy): a new picture's `src` can be set
    (or a request answered) a moment before the picture that carries the change is shown."""
    wait_until(
        lambda: colour in picture_colors(page, selector, fx, fy),
        timeout_s,
        f"{colour} at ({fx}, {fy}) of {selector}",
    )
