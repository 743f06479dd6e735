"""Helpers for the assistant route tests: an app with fake models and an LLM setting,
and a parser for the chat's event stream that checks the event contract."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fake_openai import FakeOpenAI
from server_support import API, Harness, harness

KEY = "sk-assistant-key-7f3a91c2"
TOKEN = "server-token-5b8e0d44"
ASSISTANT = f"{API}/assistant"


def llm_settings(fake: FakeOpenAI, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "llm_base_url": fake.base_url,
        "llm_api_key": KEY,
        "llm_timeout_s": 0.5,
        "llm_connect_timeout_s": 0.5,
        "llm_max_retries": 0,
        "llm_retry_base_delay_s": 0.0,
    }
    values.update(overrides)
    return values


@contextmanager
def app_with(tmp_path, **settings: Any) -> Iterator[Harness]:
    with harness(tmp_path, **settings) as h:
        if settings.get("api_token"):
            h.client.headers["Authorization"] = f"Bearer {settings['api_token']}"
        yield h


def sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    """(event, data) pairs of an event-stream body; every message must have both lines."""
    events = []
    for block in text.strip().split("\n\n"):
        lines = block.split("\n")
        assert len(lines) == 2 and lines[0].startswith("event: ") and lines[1].startswith("data: "), block
        events.append((lines[0][len("event: ") :], json.loads(lines[1][len("data: ") :])))
    return events


def chat(h: Harness, message: str, **body: Any) -> list[tuple[str, dict[str, Any]]]:
    response = h.client.post(f"{ASSISTANT}/chat", json={"message": message, **body})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse(response.text)
    check_contract(events)
    return events


def check_contract(events: list[tuple[str, dict[str, Any]]]) -> None:
    names = [name for name, _ in events]
    assert names[0] == "conversation" and names[-1] == "done"
    assert names.count("conversation") == 1 and names.count("done") == 1 and names.count("error") <= 1
    assert set(names) <= {"conversation", "text", "suggestion", "error", "done"}
    conversation_id = events[0][1]["conversation_id"]
    assert events[0][1] == {"conversation_id": conversation_id}
    done = events[-1][1]
    assert done["type"] == "done" and done["conversation_id"] == conversation_id
    assert set(done) == {"type", "source", "reply", "conversation_id"}
    for name, data in events[1:-1]:
        assert data["type"] == name
    streamed = "".join(d["text"] for n, d in events if n == "text")
    assert streamed == done["reply"]["content"]
    assert [d["suggestion"] for n, d in events if n == "suggestion"] == done["reply"]["suggestions"]


def image_context(image_id: str, query: str = "red, yellow", **params: Any) -> dict[str, Any]:
    return {"image_id": image_id, "query": query, "params": params}


def sent_context(fake: FakeOpenAI) -> dict[str, Any]:
    system = fake.chat_requests[-1].system_prompt
    text = system.split("CONTEXT (what the user is looking at, JSON):\n", 1)[1].split("\n\n", 1)[0]
    return json.loads(text)
