"""中文 mode is complete: on every tab, with a finished job, an open result, statistics,
history and suggestions on screen, no visible word is one of the English interface's.

The browser's own language is Chinese here: Gradio's built-in widget text ("Drop File
Here", the dataframe's controls) follows the browser's language, not the app's switch.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from ui_steps import click_tab, open_result, run_job, upload, wait_rows, wait_text

from seglens.ui.i18n import EN

pytestmark = pytest.mark.browser

VIEWPORT = {"width": 1440, "height": 1000}
TIMEOUT_MS = 120_000  # generous: the machine may be shared and busy

# Words that are the same in both languages: names (SegLens, COCO, CLIP, Segment Anything,
# Markdown, Shift, AI, LLM), file formats (JSON, CSV, PNG, zip), the profile id the back end
# reports (tiny) and "English", the language switch's name for English in English. The
# example keywords of the placeholders are left out of the catalogue's words: keywords are
# the user's own text, in whatever language the model reads. File names are not words.
ALLOWED = {
    "english",
    "seglens",
    "coco",
    "json",
    "csv",
    "png",
    "zip",
    "clip",
    "segment",
    "anything",
    "markdown",
    "shift",
    "ai",
    "llm",
    "tiny",
}
_PLACEHOLDERS = {"keywords_ph", "exclude_ph"}
_WORD = re.compile(r"[A-Za-z][A-Za-z']+")
_FILE_NAME = re.compile(r"[\w-]+(?:\.[\w-]+)*\.(?:coco|json|csv|zip|jpg|png)\b")
# Gradio's own queue status ("In queue: 1 of 2", "queue: 1/2 |", "processing |"), shown on a
# busy server while an event waits: Gradio's text, in the browser's language (docs/ui.md),
# like its "Drop File Here".
_GRADIO_QUEUE = re.compile(r"In queue: \d+ of \d+|queue: \d+/\d* \||processing \|")

# The conversation list shows the user's own questions (other tests on the same server
# ask theirs in English): user text, not interface words.
_VISIBLE_TEXT_JS = """() => {
  const mine = document.querySelector('#conversations');
  const parts = [mine ? document.body.innerText.replace(mine.innerText, '') : document.body.innerText];
  for (const el of document.querySelectorAll('input[placeholder], textarea[placeholder]')) {
    if (el.offsetParent !== null) parts.push(el.placeholder);
  }
  for (const el of document.querySelectorAll('svg text')) {
    if (el.getClientRects().length) parts.push(el.textContent);
  }
  return parts.join('\\n');
}"""


def _english_words() -> set[str]:
    words = set()
    for key, text in EN.items():
        if key not in _PLACEHOLDERS:
            words |= {w.lower() for w in _WORD.findall(re.sub(r"\{[^}]*\}", " ", text))}
    return words - ALLOWED


def _english_on_screen(page: Any, where: str) -> list[str]:
    page.wait_for_function("document.querySelectorAll('.pending, .generating').length === 0")
    text = _GRADIO_QUEUE.sub(" ", _FILE_NAME.sub(" ", page.evaluate(_VISIBLE_TEXT_JS)))
    english = _english_words()
    found = sorted({w for w in _WORD.findall(text) if w.lower() in english})
    lines = [line for line in text.splitlines() if any(re.search(rf"\b{w}\b", line) for w in found)]
    return [f"{where}: {found} in {lines[:8]}"] if found else []


def test_every_tab_in_chinese_shows_no_english_interface_word(browser, server, crop_files):
    context = browser.new_context(viewport=VIEWPORT, locale="zh-CN")
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        page.goto(f"{server.url}/?lang=en")
        page.wait_for_selector("#keywords input")
        wait_text(page, "#backend-status", "ready")
        upload(page, crop_files(2, seed=71), expect=2)
        page.locator("#lang label", has_text="中文").click()
        wait_text(page, "#start", "开始")
        problems = _english_on_screen(page, "start")
        # Empty charts say why.
        click_tab(page, "批次统计")
        wait_text(page, "body", "还没有任务：任务有图像完成后，图表才会显示。")
        problems += _english_on_screen(page, "empty statistics")
        click_tab(page, "结果")

        page.locator("#threshold input[type=number]").fill("0.15")
        page.locator("#threshold input[type=number]").press("Enter")
        page.fill("#exclude input", "sky")
        job_id = run_job(page, "cat, cup", points_per_side=4, expect_results=2)
        wait_text(page, "#progress", "已完成")
        open_result(page, 0)
        wait_rows(page, "regions", 1)
        page.click("#export")
        page.wait_for_selector("#export-file a")
        page.click("#panel-advise")
        page.wait_for_selector("#panel-suggestions .sl-suggestion, #panel-suggestions [data-count='0']")
        problems += _english_on_screen(page, "results")

        click_tab(page, "图像详情")
        page.wait_for_selector("#scores-chart canvas, #scores-chart svg")
        wait_rows(page, "log-table", 3)
        problems += _english_on_screen(page, "image details")

        click_tab(page, "批次统计")
        wait_text(page, "#stats-summary", "2/2")
        page.wait_for_selector("#stats-stage-chart canvas, #stats-stage-chart svg")
        problems += _english_on_screen(page, "batch statistics")

        click_tab(page, "历史记录")
        wait_text(page, "#history-table", job_id)
        problems += _english_on_screen(page, "history")

        page.get_by_role("tab", name="AI 助手").click()
        page.wait_for_selector("#assistant-status")
        wait_text(page, "#assistant-status", "大模型")
        problems += _english_on_screen(page, "assistant")
    finally:
        context.close()
    assert not problems, "\n".join(problems)
