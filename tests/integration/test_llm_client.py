"""The LLM client against a real HTTP server on 127.0.0.1 speaking chat completions."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from fake_openai import FakeOpenAI, Reply
from seglens.llm import (
    SUGGEST_PARAMETERS,
    LLMAuthError,
    LLMBadRequestError,
    LLMClient,
    LLMConfig,
    LLMError,
    LLMMessage,
    LLMRateLimitedError,
    LLMServerError,
    LLMStreamError,
    LLMTimeoutError,
    LLMUnreachableError,
    StreamEnd,
    TextChunk,
    ToolCall,
)

# Not shaped like a bearer token or an sk- key, so only the explicit scrubbing catches it.
KEY = "seglens-integration-key-7f3a2b"
HELLO = [LLMMessage("system", "be brief"), LLMMessage("user", "hello")]


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


def _client(server: FakeOpenAI, **overrides: object) -> LLMClient:
    values: dict[str, object] = {
        "base_url": server.base_url,
        "api_key": SecretStr(KEY),
        "model": "deepseek-chat",
        "timeout_s": 0.4,
        "connect_timeout_s": 0.4,
        "max_retries": 2,
        "retry_base_delay_s": 0.0,
        "retry_max_delay_s": 1.0,
    }
    values.update(overrides)
    return LLMClient(LLMConfig(**values))  # type: ignore[arg-type]


def _failure(client: LLMClient) -> LLMError:
    with pytest.raises(LLMError) as caught:
        list(client.stream_chat(HELLO))
    return caught.value


def _assert_clean(error: LLMError) -> None:
    """No trace of the key anywhere a user or a log could see it."""
    for text in (str(error), repr(error), error.message, error.detail, str(error.to_dict())):
        assert KEY not in text
    assert error.__cause__ is None and error.__context__ is None


def test_stream_chat_streams_text_in_order(server: FakeOpenAI) -> None:
    server.enqueue(Reply.text("Lower the threshold to 0.41."))
    items = list(_client(server).stream_chat(HELLO))
    assert "".join(i.text for i in items if isinstance(i, TextChunk)) == "Lower the threshold to 0.41."
    assert len([i for i in items if isinstance(i, TextChunk)]) == 5
    assert items[-1] == StreamEnd("stop")

    request = server.chat_requests[-1]
    assert request.body["model"] == "deepseek-chat" and request.body["stream"] is True
    assert request.body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello"},
    ]
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert KEY not in request.text  # the key travels in the header only


def test_stream_chat_assembles_a_streamed_tool_call(server: FakeOpenAI) -> None:
    arguments = {"threshold": 0.41, "keywords": ["dog"], "reason": "the dogs scored 0.42 and 0.44"}
    server.enqueue(Reply.tool_call("suggest_parameters", arguments, text="Try this.", pieces=5))
    items = list(_client(server).stream_chat(HELLO, tools=[SUGGEST_PARAMETERS]))
    calls = [i for i in items if isinstance(i, ToolCall)]
    assert len(calls) == 1 and calls[0].name == "suggest_parameters" and calls[0].arguments == arguments
    assert items[-1] == StreamEnd("tool_calls")
    assert server.chat_requests[-1].body["tools"][0]["function"]["name"] == "suggest_parameters"


def test_complete_json_mode(server: FakeOpenAI) -> None:
    server.enqueue(Reply.completion('{"translations": ["dog"]}'))
    text = _client(server).complete(HELLO, json_mode=True)
    assert text == '{"translations": ["dog"]}'
    body = server.chat_requests[-1].body
    assert body["response_format"] == {"type": "json_object"} and "stream" not in body


def test_wrong_key_is_a_clear_auth_error_without_the_key(server: FakeOpenAI) -> None:
    server.enqueue(Reply.http_error(401, "Authentication Fails", echo_auth=True))
    error = _failure(_client(server))
    assert isinstance(error, LLMAuthError) and error.code == "llm_auth_failed" and error.status == 401
    assert "rejected the API key" in error.message and "SEGLENS_LLM_API_KEY" in error.message
    assert "Authentication Fails" in error.detail
    _assert_clean(error)
    assert len(server.chat_requests) == 1  # a wrong key is not retried


def test_forbidden_is_an_auth_error(server: FakeOpenAI) -> None:
    server.enqueue(Reply.http_error(403))
    error = _failure(_client(server))
    assert isinstance(error, LLMAuthError) and error.status == 403


def test_echoed_key_in_a_shown_error_message_is_scrubbed(server: FakeOpenAI) -> None:
    # a 4xx whose server text reaches the user's message
    server.enqueue(Reply.http_error(402, "Insufficient Balance", echo_auth=True))
    error = _failure(_client(server))
    assert isinstance(error, LLMBadRequestError)
    assert "Insufficient Balance" in error.message and "***" in error.message
    _assert_clean(error)


def test_unknown_model_explains_model_and_url(server: FakeOpenAI) -> None:
    server.enqueue(Reply.http_error(404, "model not found"))
    error = _failure(_client(server, model="no-such-model"))
    assert isinstance(error, LLMBadRequestError)
    assert "'no-such-model'" in error.message and "/v1" in error.message


def test_rate_limit_then_success_is_retried_honouring_retry_after(server: FakeOpenAI) -> None:
    server.enqueue(Reply.http_error(429, headers={"Retry-After": "0.3"}), Reply.text("ok"))
    started = time.perf_counter()
    items = list(_client(server).stream_chat(HELLO))
    elapsed = time.perf_counter() - started
    assert [i.text for i in items if isinstance(i, TextChunk)] == ["ok"]
    assert len(server.chat_requests) == 2
    assert elapsed >= 0.3


def test_rate_limit_that_persists_ends_after_the_retries(server: FakeOpenAI) -> None:
    server.enqueue(*[Reply.http_error(429, headers={"Retry-After": "0"})] * 3)
    error = _failure(_client(server))
    assert isinstance(error, LLMRateLimitedError) and error.code == "llm_rate_limited"
    assert "after 2 retries" in error.message
    assert len(server.chat_requests) == 3


def test_retry_after_longer_than_the_cap_is_not_waited_for(server: FakeOpenAI) -> None:
    server.enqueue(Reply.http_error(429, headers={"Retry-After": "120"}))
    started = time.perf_counter()
    error = _failure(_client(server))
    assert time.perf_counter() - started < 1.0
    assert isinstance(error, LLMRateLimitedError) and "asks to wait 120 s" in error.message
    assert len(server.chat_requests) == 1


def test_server_error_after_retries(server: FakeOpenAI) -> None:
    server.enqueue(*[Reply.http_error(500, echo_auth=True)] * 3)
    error = _failure(_client(server))
    assert isinstance(error, LLMServerError) and error.code == "llm_server_error" and error.status == 500
    assert "HTTP 500" in error.message and "after 2 retries" in error.message
    assert len(server.chat_requests) == 3
    _assert_clean(error)


def test_server_error_then_success(server: FakeOpenAI) -> None:
    server.enqueue(Reply.http_error(503), Reply.http_error(502), Reply.text("fine"))
    items = list(_client(server).stream_chat(HELLO))
    assert [i.text for i in items if isinstance(i, TextChunk)] == ["fine"]


def test_back_off_grows_exponentially(server: FakeOpenAI) -> None:
    server.enqueue(*[Reply.http_error(500)] * 3)
    waits: list[float] = []
    client = LLMClient(
        LLMConfig(base_url=server.base_url, max_retries=2, retry_base_delay_s=0.5, retry_max_delay_s=0.8),
        sleep=waits.append,
    )
    with pytest.raises(LLMServerError):
        list(client.stream_chat(HELLO))
    assert waits == [0.5, 0.8]  # 0.5 * 2**n, capped


def test_timeout_before_the_answer(server: FakeOpenAI) -> None:
    server.enqueue(Reply.text("late").delayed(2.0))
    started = time.perf_counter()
    error = _failure(_client(server))
    assert time.perf_counter() - started < 1.5
    assert isinstance(error, LLMTimeoutError) and error.code == "llm_timeout"
    assert "did not answer within 0.4 s" in error.message
    assert len(server.chat_requests) == 1  # timeouts are not retried


def test_stream_that_stalls_midway_times_out(server: FakeOpenAI) -> None:
    server.enqueue(Reply.text("one two three").stalled(2, 2.0))
    seen: list[str] = []
    with pytest.raises(LLMTimeoutError) as caught:
        for item in _client(server).stream_chat(HELLO):
            if isinstance(item, TextChunk):
                seen.append(item.text)
    assert seen == ["one "]  # what arrived before the stall was delivered
    assert "stopped sending" in caught.value.message


def test_malformed_chunk_is_a_broken_stream(server: FakeOpenAI) -> None:
    server.enqueue(Reply.text("one two three").malformed(2))
    error = _failure(_client(server))
    assert isinstance(error, LLMStreamError) and error.code == "llm_broken_stream"
    assert "malformed" in error.message


def test_stream_cut_midway_is_a_broken_stream(server: FakeOpenAI) -> None:
    server.enqueue(Reply.text("one two three").cut(2))
    error = _failure(_client(server))
    assert isinstance(error, LLMStreamError) and "ended before the answer was complete" in error.message


def test_stream_cut_inside_a_chunked_body_is_a_broken_stream(server: FakeOpenAI) -> None:
    server.enqueue(Reply.text("one two three").cut(2, chunked=True))
    error = _failure(_client(server))
    assert isinstance(error, LLMStreamError) and error.code == "llm_broken_stream"


def test_chunked_stream_that_completes_is_fine(server: FakeOpenAI) -> None:
    server.enqueue(Reply(content=("a", "b"), chunked=True))
    assert [i.text for i in _client(server).stream_chat(HELLO) if isinstance(i, TextChunk)] == ["a", "b"]


def test_error_event_inside_the_stream(server: FakeOpenAI) -> None:
    server.enqueue(Reply.text("one two").error_event(1))
    error = _failure(_client(server))
    assert isinstance(error, LLMServerError) and "middle of its answer" in error.message
    assert "fake overload" in error.detail


def test_connection_refused_is_unreachable_quickly() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once closed
    client = LLMClient(LLMConfig(base_url=f"http://127.0.0.1:{port}/v1", timeout_s=1.0, retry_base_delay_s=0))
    started = time.perf_counter()
    with pytest.raises(LLMUnreachableError) as caught:
        list(client.stream_chat(HELLO))
    assert time.perf_counter() - started < 1.0
    assert caught.value.code == "llm_unreachable" and f"127.0.0.1:{port}" in caught.value.message


def test_local_server_without_key_never_sends_openai_api_key_from_env(
    server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-key-of-another-service")
    server.enqueue(Reply.text("hi"))
    list(LLMClient(LLMConfig(base_url=server.base_url, model="llama3.2")).stream_chat(HELLO))
    request = server.chat_requests[-1]
    assert "sk-env-key-of-another-service" not in str(request.headers)
    assert request.body["model"] == "llama3.2"


def test_closing_the_stream_early_stops_reading(server: FakeOpenAI) -> None:
    server.enqueue(Reply.text("one two three four").stalled(2, 3.0))
    started = time.perf_counter()
    stream = _client(server, timeout_s=5.0).stream_chat(HELLO)
    first = next(stream)
    stream.close()
    assert isinstance(first, TextChunk) and time.perf_counter() - started < 2.0


def test_logs_never_contain_the_key(server: FakeOpenAI, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server.enqueue(
        Reply.http_error(500, echo_auth=True),
        Reply.text("ok"),
        Reply.http_error(401, echo_auth=True),
        Reply.text("a b").malformed(1),
    )
    client = _client(server)
    list(client.stream_chat(HELLO))
    for _ in range(2):
        with pytest.raises(LLMError):
            list(client.stream_chat(HELLO))
    assert caplog.records, "expected the client to log its requests"
    assert KEY not in caplog.text
    for record in caplog.records:
        assert KEY not in record.getMessage()


def test_an_echoed_key_in_the_answer_is_scrubbed_even_across_chunks(server: FakeOpenAI) -> None:
    server.enqueue(
        Reply.text(["Your key is ", KEY[:9], KEY[9:20], KEY[20:] + " ok"]),
        Reply.tool_call("suggest_parameters", {"reason": f"key {KEY}"}),
        Reply.completion(f"echo {KEY}"),
    )
    client = _client(server)
    text = "".join(i.text for i in client.stream_chat(HELLO) if isinstance(i, TextChunk))
    assert text == "Your key is *** ok"
    calls = [i for i in client.stream_chat(HELLO) if isinstance(i, ToolCall)]
    assert calls[0].arguments == {"reason": "key ***"}
    assert client.complete(HELLO) == "echo ***"


@pytest.mark.parametrize("raw", [b"not json", b'{"foo": 1}', b'{"choices": []}'])
def test_complete_with_a_malformed_body_is_a_clear_error(server: FakeOpenAI, raw: bytes) -> None:
    server.enqueue(Reply(raw_body=raw))
    with pytest.raises(LLMStreamError) as caught:
        _client(server).complete(HELLO)
    assert caught.value.message == "The LLM server's answer was malformed."
