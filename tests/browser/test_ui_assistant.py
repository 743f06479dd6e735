"""The AI assistant in the browser, with a scripted fake chat-completions server as LLM."""

from __future__ import annotations

import pytest
from ui_steps import (
    click_tab,
    move_slider,
    open_result,
    run_job,
    slider_value,
    upload,
    wait_text,
    wait_until,
    wait_view_changes,
)

from fake_openai import Reply

pytestmark = pytest.mark.browser


def _last_query(server) -> dict:
    items = server.client.get("/history", params={"kind": "query", "limit": 1}).json()["items"]
    return items[0]["params"] if items else {}


def test_llm_suggestion_applies_to_sliders_and_overlay(page, server, fake_llm, crop_files, shoot):
    upload(page, crop_files(1, seed=51), expect=1)
    run_job(page, "cat, cup", points_per_side=4, expect_results=1)
    before = open_result(page, 0)
    jobs = server.client.get("/jobs").json()["total"]

    fake_llm.enqueue(
        Reply.tool_call(
            "suggest_parameters",
            {
                "threshold": 0.12,
                "merge_threshold": 0.55,
                "reason": "the cat scored 0.13, just under the threshold",
            },
            text="Lower the threshold a little: the best cat region scored 0.13.",
        )
    )
    click_tab(page, "AI Assistant")
    wait_text(page, "#assistant-status", "LLM on")
    page.fill("#chat-input textarea", "Why is no cat found?")
    page.click("#chat-send")
    wait_text(page, "#chat", "best cat region scored 0.13")
    card = page.locator("#chat-suggestions .sl-suggestion", has_text="threshold → 0.12")
    card.wait_for()
    index = card.get_attribute("data-index")
    wait_text(page, "#chat-context", "image")
    shoot(page, "assistant", full_page=True)
    sent = fake_llm.chat_requests[-1].text
    assert "cat" in sent and "sk-" not in sent  # the screen context went out, no secret

    page.click(f"#chat-apply-{index}")
    click_tab(page, "Image Segmentation")
    page.wait_for_function("+document.querySelector('#threshold input[type=number]').value === 0.12")
    assert slider_value(page, "merge") == pytest.approx(0.55)
    after = wait_view_changes(page, before)  # re-rendered at once, from the cache
    assert after != before
    wait_until(lambda: _last_query(server).get("threshold") == pytest.approx(0.12))
    assert server.client.get("/jobs").json()["total"] == jobs


def test_llm_401_shows_a_clear_message_and_the_ui_stays_usable(page, server, fake_llm, crop_files):
    upload(page, crop_files(1, seed=52), expect=1)
    run_job(page, "cat", points_per_side=4, expect_results=1)
    before = open_result(page, 0)

    fake_llm.enqueue(Reply.http_error(401, "Incorrect API key provided"))
    page.fill("#panel-input textarea", "What threshold should I use?")
    page.click("#panel-send")
    wait_text(page, "#panel-chat", "rejected the API key")
    chat = page.inner_text("#panel-chat")
    assert "language model failed" in chat
    # The offline advisor answered after the message (and the back end stored it so).
    conversation = server.client.get("/assistant/conversations", params={"limit": 1}).json()["items"][0]
    messages = server.client.get(f"/assistant/conversations/{conversation['id']}").json()["messages"]
    reply = messages[-1]
    assert reply["source"] == "advisor" and reply["error_code"] == "llm_auth_failed"
    last_words = " ".join(reply["content"].replace("_", "").replace("*", "").split())[-40:]
    page.wait_for_function(
        "(words) => document.querySelector('#panel-chat').innerText.replace(/\\s+/g, ' ').includes(words)",
        arg=last_words,
    )

    move_slider(page, "threshold", 0.1)  # still usable: the overlay re-renders
    wait_view_changes(page, before)
    page.click("#panel-advise")  # and the advisor answers on request
    page.locator("#panel-suggestions .sl-suggestion, #panel-suggestion-list[data-count='0']").first.wait_for()
    fake_llm.enqueue(Reply.text("All good now."))
    page.fill("#panel-input textarea", "And now?")
    page.click("#panel-send")
    wait_text(page, "#panel-chat", "All good now.")


def test_keywords_in_chinese_are_translated_into_the_keyword_boxes(page, fake_llm):
    fake_llm.enqueue(Reply.completion('{"translations": ["cat", "grass"]}'))
    page.fill("#keywords input", "猫")
    page.fill("#exclude input", "草地")
    page.click("#translate")
    page.wait_for_function("document.querySelector('#keywords input').value === 'cat'")
    assert page.input_value("#exclude input") == "grass"
    wait_text(page, "#notice", "猫, -草地 → cat, -grass")
