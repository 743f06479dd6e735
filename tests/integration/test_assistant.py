"""The assistant service end to end against a real chat-completions server on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from fake_openai import FakeOpenAI, Reply
from seglens.services.assistant.advisor import ScreenContext, build_context
from seglens.services.assistant.chat import (
    Assistant,
    AssistantEvent,
    ChatMessage,
    DoneEvent,
    ErrorEvent,
    SuggestionEvent,
    TextEvent,
)
from seglens.settings import Settings
from synthetic_results import match_of, query_result

KEY = "seglens-assistant-key-51e0c9"
SERVER_TOKEN = "server-api-token-do-not-send-83b1"


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(autouse=True)
def _no_llm_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DEEPSEEK_API_KEY", "SEGLENS_LLM_API_KEY", "SEGLENS_LLM_BASE_URL", "SEGLENS_LLM_ENABLED"):
        monkeypatch.delenv(name, raising=False)


def _settings(server: FakeOpenAI, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "llm_base_url": server.base_url,
        "llm_api_key": KEY,
        "api_token": SERVER_TOKEN,
        "llm_timeout_s": 0.4,
        "llm_connect_timeout_s": 0.4,
        "llm_max_retries": 2,
        "llm_retry_base_delay_s": 0.0,
        "llm_retry_max_delay_s": 1.0,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def assistant(server: FakeOpenAI) -> Iterator[Assistant]:
    helper = Assistant.from_settings(
        _settings(server), guide="## Batch jobs\nAn interrupted batch job resumes on start-up."
    )
    yield helper
    helper.close()


@pytest.fixture
def context() -> ScreenContext:
    """One image: the dog matched at 0.91, the cat scored 0.437 under the 0.50 threshold."""
    result = query_result(("dog", "cat"), [match_of("dog", 0.91)], {"cat": 0.437})
    return build_context(
        [result], subject_id="img-1", profile="cpu-fast", device="cpu", embedder_language="en"
    )


def _run(events: Iterator[AssistantEvent]) -> tuple[str, list[SuggestionEvent], list[ErrorEvent], DoneEvent]:
    collected = list(events)
    done = collected[-1]
    assert isinstance(done, DoneEvent)
    assert sum(isinstance(e, DoneEvent) for e in collected) == 1
    text = "".join(e.text for e in collected if isinstance(e, TextEvent))
    assert text == done.reply.content  # what was streamed is what gets stored
    json.dumps([e.to_dict() for e in collected])  # every event serialises for SSE
    return (
        text,
        [e for e in collected if isinstance(e, SuggestionEvent)],
        [e for e in collected if isinstance(e, ErrorEvent)],
        done,
    )


def test_chat_streams_the_answer_and_a_structured_suggestion(
    server: FakeOpenAI, assistant: Assistant, context: ScreenContext
) -> None:
    server.enqueue(
        Reply.tool_call(
            "suggest_parameters",
            {"threshold": 0.43, "reason": "the cat scored 0.437, just under 0.50"},
            text="The cat scored 0.437, just under the 0.50 threshold.",
        )
    )
    text, suggestions, errors, done = _run(assistant.chat("Why is the cat not found?", context))
    assert text == "The cat scored 0.437, just under the 0.50 threshold."
    assert not errors and done.source == "llm"
    (event,) = suggestions
    assert event.suggestion.threshold == 0.43 and event.suggestion.source == "llm"
    assert done.reply.suggestions == (event.suggestion,)
    assert done.user_message == ChatMessage("user", "Why is the cat not found?")
    stored = ChatMessage.from_dict(json.loads(json.dumps(done.reply.to_dict())))
    assert stored == done.reply


def test_request_carries_context_facts_and_no_secrets(
    server: FakeOpenAI, assistant: Assistant, context: ScreenContext
) -> None:
    server.enqueue(Reply.text("ok"))
    history = [ChatMessage("user", "hi"), ChatMessage("assistant", "Hello.", source="llm")]
    _run(assistant.chat("Why is the cat not found?", context, history))
    request = server.chat_requests[-1]
    system = request.system_prompt
    context_json = system.split("CONTEXT (what the user is looking at, JSON):\n", 1)[1].split("\n\n", 1)[0]
    sent = json.loads(context_json)
    assert sent["keywords"] == ["dog", "cat"] and sent["threshold"] == 0.5
    assert sent["keyword_stats"][1]["best_below"] == [0.437]
    assert '"rule": "lower_threshold"' in system and '"threshold": 0.43' in system  # advisor facts
    assert "interrupted batch job resumes" in system  # the user guide
    messages = request.body["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[-1]["content"] == "Why is the cat not found?"
    assert request.body["tools"][0]["function"]["name"] == "suggest_parameters"
    assert KEY not in request.text and SERVER_TOKEN not in request.text
    assert SERVER_TOKEN not in str(request.headers)
    assert request.headers["authorization"] == f"Bearer {KEY}"


def test_invalid_values_from_the_llm_are_dropped(
    server: FakeOpenAI, assistant: Assistant, context: ScreenContext
) -> None:
    server.enqueue(
        Reply.tool_call(
            "suggest_parameters", {"threshold": 43, "points_per_side": 500, "reason": "r"}, text="See."
        )
    )
    _, suggestions, _, _ = _run(assistant.chat("tune it", context))
    suggestion = suggestions[0].suggestion
    assert suggestion.threshold is None and suggestion.points_per_side == 128
    assert suggestion.ignored == ("threshold",)


def test_broken_tool_arguments_are_ignored_and_the_text_stays(
    server: FakeOpenAI, assistant: Assistant, context: ScreenContext
) -> None:
    server.enqueue(Reply.tool_call("suggest_parameters", '{"threshold": 0.4', text="Here is my advice."))
    text, suggestions, errors, done = _run(assistant.chat("tune it", context))
    assert text == "Here is my advice." and not suggestions and not errors and done.source == "llm"


def test_tool_call_without_text_gets_its_reason_as_text(
    server: FakeOpenAI, assistant: Assistant, context: ScreenContext
) -> None:
    server.enqueue(
        Reply.tool_call("suggest_parameters", {"merge_threshold": 0.4, "reason": "merge the dogs"})
    )
    text, suggestions, _, _ = _run(assistant.chat("tune it", context))
    assert "merge the dogs" in text and suggestions[0].suggestion.merge_threshold == 0.4


@pytest.mark.parametrize(
    ("reply", "code", "words"),
    [
        (Reply.http_error(401, echo_auth=True), "llm_auth_failed", "rejected the API key"),
        (Reply.text("late").delayed(2.0), "llm_timeout", "did not answer within 0.4 s"),
        (Reply.text("one two three").malformed(1), "llm_broken_stream", "malformed"),
        (Reply.text("one two three").cut(2), "llm_broken_stream", "ended before"),
    ],
)
def test_llm_failures_end_in_a_clear_message_and_the_advisor(
    server: FakeOpenAI, assistant: Assistant, context: ScreenContext, reply: Reply, code: str, words: str
) -> None:
    server.enqueue(reply)
    text, suggestions, errors, done = _run(assistant.chat("Why is the cat not found?", context))
    (error,) = errors
    assert error.code == code and words in error.message and error.fallback
    assert "The LLM could not answer" in text and "built-in advisor" in text
    assert "'cat': no region reaches the threshold 0.50. Its best score is 0.437" in text
    assert [s.suggestion.rule for s in suggestions] == ["lower_threshold"]
    assert suggestions[0].suggestion.threshold == 0.43
    assert done.source == "advisor" and done.reply.error_code == code
    assert KEY not in text and KEY not in error.message


def test_server_error_after_retries_falls_back(
    server: FakeOpenAI, assistant: Assistant, context: ScreenContext
) -> None:
    server.enqueue(*[Reply.http_error(500)] * 3)
    _, _, errors, done = _run(assistant.chat("Why is the cat not found?", context))
    assert errors[0].code == "llm_server_error" and "after 2 retries" in errors[0].message
    assert len(server.chat_requests) == 3 and done.source == "advisor"


def test_rate_limit_then_success_answers_with_the_llm(
    server: FakeOpenAI, assistant: Assistant, context: ScreenContext
) -> None:
    server.enqueue(Reply.http_error(429, headers={"Retry-After": "0"}), Reply.text("All good."))
    text, _, errors, done = _run(assistant.chat("How does it look?", context))
    assert text == "All good." and not errors and done.source == "llm"


def test_partial_answer_then_failure_keeps_both(
    server: FakeOpenAI, assistant: Assistant, context: ScreenContext
) -> None:
    server.enqueue(Reply.text("The cat scored low and").cut(3))
    text, _, errors, done = _run(assistant.chat("Why is the cat not found?", context))
    assert text.startswith("The cat ") and "\n\n---\n\n" in text
    assert errors[0].code == "llm_broken_stream" and done.reply.error_code == "llm_broken_stream"


def test_server_refusing_tools_is_asked_again_without_them(
    server: FakeOpenAI, assistant: Assistant, context: ScreenContext
) -> None:
    server.enqueue(Reply.http_error(400, "this model does not support tools"), Reply.text("Plain answer."))
    text, _, errors, _ = _run(assistant.chat("Why is the cat not found?", context))
    assert text == "Plain answer." and not errors
    first, second = server.chat_requests
    assert "tools" in first.body and "tools" not in second.body


def test_without_configuration_the_advisor_answers_and_says_the_llm_is_off(context: ScreenContext) -> None:
    offline = Assistant.from_settings(Settings(llm_api_key=None), guide="")
    assert not offline.status().llm_on
    text, suggestions, errors, done = _run(offline.chat("Why is the cat not found?", context))
    assert not errors and done.source == "advisor"
    assert text.startswith("_The AI assistant is off: no API key is configured for api.deepseek.com")
    assert suggestions[0].suggestion.threshold == 0.43


def test_translate_keywords_with_the_llm(server: FakeOpenAI, assistant: Assistant) -> None:
    server.enqueue(Reply.completion('{"translations": ["dog", "grass"]}'))
    translation = assistant.translate_keywords(["狗", "-草", "cat"], embedder_language="en")
    assert translation.keywords == ("dog", "-grass", "cat") and translation.translated_by == "llm"
    request = server.chat_requests[-1]
    assert json.loads(request.body["messages"][-1]["content"]) == ["狗", "草"]
    assert request.body["response_format"] == {"type": "json_object"}


def test_translate_keywords_when_the_llm_fails_returns_them_untranslated(
    server: FakeOpenAI, assistant: Assistant
) -> None:
    server.enqueue(Reply.http_error(401))
    translation = assistant.translate_keywords(["狗"], embedder_language="en")
    assert translation.keywords == ("狗",) and not translation.changed
    assert translation.error_code == "llm_auth_failed" and "Not translated" in (translation.note or "")


def test_translate_keywords_with_unreadable_answer(server: FakeOpenAI, assistant: Assistant) -> None:
    server.enqueue(Reply.completion("dog, grass"))
    translation = assistant.translate_keywords(["狗", "草"], embedder_language="en")
    assert translation.keywords == ("狗", "草") and translation.error_code == "translation_unreadable"


def test_translate_keywords_skips_the_llm_when_nothing_needs_it(
    server: FakeOpenAI, assistant: Assistant
) -> None:
    assert assistant.translate_keywords(["dog", "cat"], embedder_language="en").keywords == ("dog", "cat")
    assert assistant.translate_keywords(["狗"], embedder_language="zh").keywords == ("狗",)
    assert server.chat_requests == []


def test_other_bad_requests_are_not_asked_again(
    server: FakeOpenAI, assistant: Assistant, context: ScreenContext
) -> None:
    server.enqueue(Reply.http_error(404, "model not found"))
    _, _, errors, done = _run(assistant.chat("Why is the cat not found?", context))
    assert errors[0].code == "llm_bad_request" and len(server.chat_requests) == 1
    assert done.source == "advisor"
