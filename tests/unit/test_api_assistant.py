"""/assistant routes with fake models and a real chat-completions server on 127.0.0.1:
the SSE event contract, the screen context the LLM receives, secrets, LLM failures,
the offline advisor, advice, translation, token auth."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from assistant_support import (
    ASSISTANT,
    KEY,
    TOKEN,
    app_with,
    chat,
    check_contract,
    image_context,
    llm_settings,
    sent_context,
    sse,
)
from fake_openai import FakeOpenAI, Reply
from server_support import API


@pytest.fixture(autouse=True)
def _no_llm_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "DEEPSEEK_API_KEY",
        "SEGLENS_LLM_API_KEY",
        "SEGLENS_LLM_BASE_URL",
        "SEGLENS_LLM_ENABLED",
        "SEGLENS_API_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def llm() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


def test_a_suggestion_from_the_llm_arrives_as_an_sse_suggestion_event(tmp_path, llm):
    llm.enqueue(
        Reply.tool_call(
            "suggest_parameters",
            {"threshold": 0.14, "reason": "yellow scored 0.143"},
            text="Yellow is just under the threshold.",
        )
    )
    with app_with(tmp_path, **llm_settings(llm)) as h:
        image = h.upload(1)[0]
        events = chat(h, "Why is yellow not found?", context=image_context(image))
    (suggestion,) = [d for n, d in events if n == "suggestion"]
    assert suggestion["suggestion"]["threshold"] == 0.14
    assert suggestion["suggestion"]["source"] == "llm"
    assert suggestion["suggestion"]["reason"] == "yellow scored 0.143"
    assert events[-1][1]["source"] == "llm"
    assert "".join(d["text"] for n, d in events if n == "text") == "Yellow is just under the threshold."


def test_the_llm_receives_the_screen_context_and_no_secrets(tmp_path, llm):
    with app_with(tmp_path, api_token=TOKEN, **llm_settings(llm)) as h:
        image = h.upload(1)[0]
        shown = h.client.post(f"{API}/query", json={"image_id": image, "query": "red, yellow"}).json()
        chat(h, "Why is yellow not found?", context=image_context(image, threshold=0.5))
    request = llm.chat_requests[-1]
    context = sent_context(llm)
    assert context["scope"] == "image" and context["subject_id"] == image
    assert context["keywords"] == ["red", "yellow"] and context["threshold"] == 0.5
    stats = {s["keyword"]: s for s in context["keyword_stats"]}
    assert stats["red"]["matches"] == 1
    assert stats["yellow"]["best_score"] == round(shown["best_scores"]["yellow"], 3)
    assert stats["yellow"]["best_below"] == [round(shown["best_scores"]["yellow"], 3)]
    assert context["profile"] == "fake" and context["embedder_language"] == "en"
    assert '"rule": "rephrase_keyword"' in request.system_prompt  # the advisor's facts
    assert request.body["messages"][-1] == {"role": "user", "content": "Why is yellow not found?"}
    assert KEY not in request.text and TOKEN not in request.text
    assert TOKEN not in json.dumps(request.headers)
    assert request.headers["authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        (Reply.http_error(401, echo_auth=True), "llm_auth_failed"),
        (Reply.http_error(500), "llm_server_error"),
        (Reply.text("too late").delayed(2.0), "llm_timeout"),
        (Reply.text("one two three").malformed(1), "llm_broken_stream"),
    ],
    ids=["401", "500", "timeout", "malformed"],
)
def test_llm_failures_end_in_an_error_event_then_the_advisor_and_done(tmp_path, llm, reply, code):
    llm.enqueue(reply)
    with app_with(tmp_path, **llm_settings(llm)) as h:
        image = h.upload(1)[0]
        events = chat(h, "Why is yellow not found?", context=image_context(image))
        stored = h.client.get(f"{ASSISTANT}/conversations/{events[0][1]['conversation_id']}").json()
    names = [n for n, _ in events]
    error = events[names.index("error")][1]
    assert error["code"] == code and error["fallback"] is True and error["message"]
    after = "".join(d["text"] for n, d in events[names.index("error") :] if n == "text")
    assert "The built-in advisor answers instead" in after and "yellow" in after
    done = events[-1][1]
    assert done["source"] == "advisor" and done["reply"]["error_code"] == code
    assert KEY not in json.dumps(events)
    assert stored["messages"][-1]["error_code"] == code and stored["messages"][-1]["source"] == "advisor"


def test_without_an_llm_the_advisor_answers_and_says_the_llm_is_off(tmp_path):
    with app_with(tmp_path) as h:
        status = h.client.get(f"{ASSISTANT}/status").json()
        image = h.upload(1)[0]
        events = chat(h, "Why is yellow not found?", context=image_context(image))
    assert status["llm_on"] is False and "no API key" in status["reason"]
    assert status["base_url"] == "https://api.deepseek.com" and status["model"] == "deepseek-chat"
    assert "error" not in [n for n, _ in events]
    text = events[-1][1]["reply"]["content"]
    assert text.startswith("_The AI assistant is off: no API key is configured")
    assert events[-1][1]["source"] == "advisor"
    assert [d["suggestion"]["rule"] for n, d in events if n == "suggestion"] == ["rephrase_keyword"]


def test_status_shows_the_llm_url_without_credentials(tmp_path, llm):
    url = llm.base_url.replace("http://", "http://user:url-secret-99@") + "?key=abc"
    with app_with(tmp_path, **llm_settings(llm, llm_base_url=url)) as h:
        status = h.client.get(f"{ASSISTANT}/status").json()
    assert status == {
        "llm_on": True,
        "reason": None,
        "base_url": f"http://***@127.0.0.1:{llm.port}/v1",
        "model": "deepseek-chat",
    }


def test_job_context_comes_from_the_stored_results_with_timings_and_failures(tmp_path, llm):
    with app_with(tmp_path, **llm_settings(llm)) as h:
        h.proposer.fail_markers = {3}
        ids = h.upload(1, 2, 3)
        job = h.create_job(ids, "red, yellow", threshold=0.4, points_per_side=8)
        h.wait_for(job["id"])
        advice = h.client.get(f"{ASSISTANT}/advice", params={"job_id": job["id"]}).json()
        chat(h, "How did the batch go?", context={"job_id": job["id"]})
    context = advice["context"]
    assert context["scope"] == "job" and context["subject_id"] == job["id"]
    assert context["keywords"] == ["red", "yellow"] and context["threshold"] == 0.4
    assert context["points_per_side"] == 8 and context["profile"] == "fake"
    assert (context["images_total"], context["images_done"], context["images_failed"]) == (3, 2, 1)
    assert context["failures"] == [
        {
            "file_name": "scene-3.png",
            "code": "processing_failed",
            "message": context["failures"][0]["message"],
        }
    ]
    assert "simulated model failure" in context["failures"][0]["message"]
    assert {"image_encoder", "mask_decoder", "match", "total"} <= set(context["timings_ms"])
    stats = {s["keyword"]: s for s in context["keyword_stats"]}
    assert stats["red"]["images_matched"] == 2 and stats["yellow"]["matches"] == 0
    assert advice["suggestions"][0]["rule"] == "some_failed"
    assert "(2 done, 1 failed)" in advice["summary"]
    sent = sent_context(llm)
    assert sent["images_failed"] == 1 and sent["subject_id"] == job["id"]


def test_image_advice_runs_the_cached_query_without_a_history_entry(tmp_path):
    with app_with(tmp_path) as h:
        image = h.upload(1)[0]
        before = h.client.get(f"{API}/history").json()["total"]
        first = h.client.get(
            f"{ASSISTANT}/advice", params={"image_id": image, "query": "red, blue", "threshold": 0.3}
        )
        again = h.client.get(f"{ASSISTANT}/advice", params={"image_id": image, "query": "green"})
        after = h.client.get(f"{API}/history").json()["total"]
        calls = list(h.proposer.calls)
    assert first.status_code == 200, first.text
    context = first.json()["context"]
    assert context["scope"] == "image" and context["threshold"] == 0.3
    assert context["regions_max"] == 3 and context["largest_image_hw"] == [120, 160]
    assert {"image_encoder", "mask_decoder"} <= set(context["timings_ms"])  # segmented now
    assert again.json()["context"]["cache_hit_images"] == 1
    assert calls == ["propose"]  # segmented once, then from the cache
    assert before == after


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"message": ""}, 422, "validation_error"),
        ({"message": "   \n "}, 422, "invalid_message"),
        ({"message": "x" * 4001}, 422, "validation_error"),
        ({"message": "hi", "conversation_id": "f" * 32}, 404, "conversation_not_found"),
        (
            {"message": "hi", "context": {"job_id": "a", "image_id": "b", "query": "q"}},
            422,
            "validation_error",
        ),
        ({"message": "hi", "context": {"image_id": "b"}}, 422, "validation_error"),
        ({"message": "hi", "context": {"image_id": "0" * 64, "query": "red"}}, 404, "image_not_found"),
        ({"message": "hi", "context": {"job_id": "0" * 32}}, 404, "job_not_found"),
        ({"message": "hi", "extra": 1}, 422, "validation_error"),
        ({"message": 5}, 422, "validation_error"),
    ],
)
def test_bad_chat_requests_are_refused_with_json_before_streaming(tmp_path, body, status, code):
    with app_with(tmp_path) as h:
        response = h.client.post(f"{ASSISTANT}/chat", json=body)
        listed = h.client.get(f"{ASSISTANT}/conversations").json()
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"] == code
    assert listed["total"] == 0  # nothing stored


def test_advice_needs_exactly_one_subject(tmp_path):
    with app_with(tmp_path) as h:
        neither = h.client.get(f"{ASSISTANT}/advice")
        both = h.client.get(f"{ASSISTANT}/advice", params={"job_id": "a", "image_id": "b", "query": "q"})
        no_query = h.client.get(f"{ASSISTANT}/advice", params={"image_id": "b"})
    assert [r.status_code for r in (neither, both, no_query)] == [422, 422, 422]


def test_translate_keywords_for_the_loaded_embedder(tmp_path, llm):
    llm.enqueue(Reply.completion('{"translations": ["dog"]}'))
    with app_with(tmp_path, **llm_settings(llm)) as h:
        translated = h.client.post(f"{ASSISTANT}/translate", json={"keywords": ["狗", "red"]}).json()
        english = h.client.post(f"{ASSISTANT}/translate", json={"keywords": ["red"]}).json()
        bad = h.client.post(f"{ASSISTANT}/translate", json={"keywords": []})
    assert translated["original"] == ["狗", "red"]
    assert translated["translated"] == translated["keywords"] == ["dog", "red"]
    assert translated["llm_used"] is True and translated["translated_by"] == "llm" and translated["changed"]
    assert translated["embedder_language"] == "en"
    assert english["llm_used"] is False and english["translated"] == ["red"] and english["note"] is None
    assert len(llm.chat_requests) == 1  # nothing to translate: no request
    assert bad.status_code == 422


def test_translate_without_an_llm_returns_the_keywords_with_a_note(tmp_path):
    with app_with(tmp_path) as h:
        body = h.client.post(f"{ASSISTANT}/translate", json={"keywords": ["狗"]}).json()
    assert body["translated"] == ["狗"] and body["llm_used"] is False
    assert "assistant is off" in body["note"]


def test_the_token_guards_every_assistant_route(tmp_path, llm):
    with app_with(tmp_path, api_token=TOKEN, **llm_settings(llm)) as h:
        schema = h.client.get("/openapi.json").json()
        routes = [
            (method.upper(), path.replace("{conversation_id}", "f" * 32))
            for path, item in schema["paths"].items()
            if path.startswith(ASSISTANT)
            for method in item
        ]
        anonymous = {r: h.client.request(*r, headers={"Authorization": ""}) for r in routes}
        wrong = h.client.post(
            f"{ASSISTANT}/chat", json={"message": "hi"}, headers={"Authorization": "Bearer nope"}
        )
        right = h.client.post(f"{ASSISTANT}/chat", json={"message": "hi"})
    assert len(routes) == 9
    assert {r: a.status_code for r, a in anonymous.items()} == {r: 401 for r in routes}
    assert wrong.status_code == 401 and right.status_code == 200
    assert llm.chat_requests and all(TOKEN not in r.text for r in llm.chat_requests)


def test_too_many_chats_at_once_get_429(tmp_path, llm):
    llm.enqueue(Reply.text("slow answer").delayed(0.4))
    with app_with(tmp_path, **llm_settings(llm, llm_max_concurrent=1, llm_timeout_s=3.0)) as h:
        first: dict[str, Any] = {}
        worker = threading.Thread(
            target=lambda: first.update(r=h.client.post(f"{ASSISTANT}/chat", json={"message": "one"}))
        )
        worker.start()
        while not llm.chat_requests:  # the first chat is waiting on the LLM
            threading.Event().wait(0.01)
        second = h.client.post(f"{ASSISTANT}/chat", json={"message": "two"})
        worker.join(10)
        third = h.client.post(f"{ASSISTANT}/chat", json={"message": "three"})
    assert second.status_code == 429 and second.json()["error"]["code"] == "assistant_busy"
    assert second.headers["retry-after"]
    assert first["r"].status_code == 200 and sse(first["r"].text)[-1][1]["reply"]["content"] == "slow answer"
    assert third.status_code == 200  # the slot was given back


def test_a_slow_first_token_is_bridged_by_heartbeat_comments(tmp_path, llm, monkeypatch):
    from seglens.api.routes import assistant as routes

    monkeypatch.setattr(routes, "HEARTBEAT_S", 0.05)
    llm.enqueue(Reply.text("Lower the threshold.").delayed(0.35))  # the LLM timeout is 0.5 s
    with app_with(tmp_path, **llm_settings(llm)) as h:
        response = h.client.post(f"{ASSISTANT}/chat", json={"message": "Why is yellow not found?"})
    blocks = response.text.strip().split("\n\n")
    beats = [i for i, block in enumerate(blocks) if block == ": keep-alive"]
    events = sse("\n\n".join(b for b in blocks if b != ": keep-alive"))
    check_contract(events)
    assert len(beats) >= 2 and beats[0] == 1  # right after the conversation event
    assert "".join(d["text"] for n, d in events if n == "text") == "Lower the threshold."
    assert events[-1][1]["source"] == "llm"


def test_the_server_answers_while_a_screen_context_is_being_built(tmp_path):
    # The context build runs in a worker thread and holds no lock the other routes
    # need: /health and a job read answer while a (deliberately stuck) build is inside.
    with app_with(tmp_path) as h:
        ids = h.upload(1, 2)
        job = h.create_job(ids, "red, yellow")
        h.wait_for(job["id"])
        contexts = h.runtime.assistant.contexts
        real_build = contexts.build
        inside, release = threading.Event(), threading.Event()

        def stuck_build(request):  # type: ignore[no-untyped-def]
            inside.set()
            assert release.wait(30), "the test never released the build"
            return real_build(request)

        contexts.build = stuck_build
        answer: dict[str, Any] = {}
        body = {"message": "How did it go?", "context": {"job_id": job["id"]}}
        worker = threading.Thread(
            target=lambda: answer.update(r=h.client.post(f"{ASSISTANT}/chat", json=body))
        )
        worker.start()
        try:
            assert inside.wait(30)
            health = h.client.get(f"{API}/health")
            read = h.client.get(f"{API}/jobs/{job['id']}")
            assert worker.is_alive()  # the chat is still inside the build
        finally:
            release.set()
            worker.join(30)
    assert health.status_code == 200 and read.status_code == 200
    assert answer["r"].status_code == 200 and sse(answer["r"].text)[-1][0] == "done"


def test_advice_for_an_unchanged_screen_comes_from_the_cache(tmp_path):
    with app_with(tmp_path) as h:
        ids = h.upload(1, 2)
        job = h.create_job(ids, "red, yellow")
        h.wait_for(job["id"])
        contexts = h.runtime.assistant.contexts
        first = h.client.get(f"{ASSISTANT}/advice", params={"job_id": job["id"]}).json()
        second = h.client.get(f"{ASSISTANT}/advice", params={"job_id": job["id"], "lang": "zh"}).json()
        chat(h, "And the cache?", context={"job_id": job["id"]})
        image = {"image_id": ids[0], "query": "red", "threshold": 0.4}
        h.client.get(f"{ASSISTANT}/advice", params=image)
        h.client.get(f"{ASSISTANT}/advice", params=image)
        builds = contexts.builds
    assert first["context"] == second["context"] and builds == 2  # one job, one image
    assert "2 images" in first["summary"] and "2 张图片" in second["summary"]


def test_a_chinese_ui_gets_offline_answers_in_chinese(tmp_path):
    with app_with(tmp_path) as h:
        ids = h.upload(1)
        job = h.create_job(ids, "red, yellow")
        h.wait_for(job["id"])
        events = chat(h, "What threshold should I use?", context={"job_id": job["id"]}, lang="zh")
    text = "".join(d["text"] for n, d in events if n == "text")
    assert "AI 助手未开启" in text and "当前阈值是 0.50" in text and "The threshold" not in text


def test_the_llm_is_asked_to_answer_in_the_ui_language(tmp_path, llm):
    llm.enqueue(Reply.text("好的。"))
    with app_with(tmp_path, **llm_settings(llm)) as h:
        chat(h, "What threshold should I use?", lang="zh")
    assert "in the user's language (Chinese (简体中文))" in llm.chat_requests[-1].system_prompt
