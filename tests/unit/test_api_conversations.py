"""Assistant conversations: stored across restarts, listed, read, cleared, exported; the
schema migration from the previous head; the chat turn's life cycle in the service."""

from __future__ import annotations

import gc
import json
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import inspect

from assistant_support import ASSISTANT, KEY, app_with, chat, image_context, llm_settings
from fake_openai import FakeOpenAI, Reply
from seglens.core.types import JobParams, QueryParams
from seglens.services.assistant.chat import DoneEvent, ErrorEvent, TextEvent
from seglens.services.assistant.guide import BUILTIN_GUIDE, load_user_guide
from seglens.storage.db import MIGRATIONS_DIR, Database
from seglens.storage.images_repo import ImageRepository
from seglens.storage.jobs_repo import JobRepository, NewJob
from seglens.storage.records import StoredImage
from seglens.storage.tables import utcnow


@pytest.fixture(autouse=True)
def _no_llm_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DEEPSEEK_API_KEY", "SEGLENS_LLM_API_KEY", "SEGLENS_LLM_BASE_URL", "SEGLENS_LLM_ENABLED"):
        monkeypatch.delenv(name, raising=False)


def _suggest(threshold: float) -> Reply:
    return Reply.tool_call(
        "suggest_parameters", {"threshold": threshold, "reason": f"try {threshold}"}, text="Try this."
    )


def test_conversations_persist_across_restarts_and_list_get_export_clear(tmp_path):
    with FakeOpenAI() as llm:
        llm.enqueue(_suggest(0.14), Reply.text("Second answer."), Reply.text("Other topic."))
        with app_with(tmp_path / "data", **llm_settings(llm)) as h:
            image = h.upload(1)[0]
            first = chat(h, "Why is yellow not found?", context=image_context(image))
            conversation_id = first[0][1]["conversation_id"]
            second = chat(h, "And now?", conversation_id=conversation_id)
            other = chat(h, "How do I resume a batch?")
        continued = llm.chat_requests[1].body["messages"]
        # The same SQLite file, a new app: everything is still there.
        with app_with(tmp_path / "data", **llm_settings(llm)) as h:
            page = h.client.get(f"{ASSISTANT}/conversations").json()
            paged = h.client.get(f"{ASSISTANT}/conversations", params={"limit": 1, "offset": 1}).json()
            detail = h.client.get(f"{ASSISTANT}/conversations/{conversation_id}").json()
            as_json = h.client.get(f"{ASSISTANT}/conversations/{conversation_id}/export")
            as_md = h.client.get(
                f"{ASSISTANT}/conversations/{conversation_id}/export", params={"format": "md"}
            )
            bad_format = h.client.get(
                f"{ASSISTANT}/conversations/{conversation_id}/export", params={"format": "pdf"}
            )
            deleted = h.client.delete(f"{ASSISTANT}/conversations/{conversation_id}")
            gone = h.client.get(f"{ASSISTANT}/conversations/{conversation_id}")
            again = h.client.delete(f"{ASSISTANT}/conversations/{conversation_id}")
            cleared = h.client.delete(f"{ASSISTANT}/conversations").json()
            empty = h.client.get(f"{ASSISTANT}/conversations").json()

    assert second[0][1]["conversation_id"] == conversation_id
    assert other[0][1]["conversation_id"] != conversation_id
    # the second question went out with the first turn as history
    assert [m["role"] for m in continued] == ["system", "user", "assistant", "user"]
    assert continued[1]["content"] == "Why is yellow not found?"
    assert continued[2]["content"].startswith("Try this.") and "threshold=0.14" in continued[2]["content"]

    assert page["total"] == 2 and [c["id"] for c in page["items"]][1] == conversation_id  # newest first
    assert page["items"][1]["title"] == "Why is yellow not found?" and page["items"][1]["message_count"] == 4
    assert paged["items"] == [page["items"][1]] and paged["limit"] == 1 and paged["offset"] == 1

    messages = detail["messages"]
    assert [(m["role"], m["source"]) for m in messages] == [
        ("user", "user"),
        ("assistant", "llm"),
        ("user", "user"),
        ("assistant", "llm"),
    ]
    assert messages[1]["content"] == "Try this." and messages[1]["suggestions"][0]["threshold"] == 0.14
    assert messages[3]["content"] == "Second answer."
    assert detail["context"] is None  # the latest turn had no context

    assert as_json.status_code == 200 and as_json.headers["content-type"] == "application/json"
    assert 'filename="seglens-conversation-' in as_json.headers["content-disposition"]
    document = json.loads(as_json.content)
    assert document["id"] == conversation_id and len(document["messages"]) == 4
    assert document["messages"][1]["suggestions"][0]["reason"] == "try 0.14"
    assert as_md.headers["content-type"].startswith("text/markdown")
    markdown = as_md.text
    assert markdown.startswith("# Why is yellow not found?\n")
    assert "## You · " in markdown and "## Assistant (LLM) · " in markdown
    assert "- **threshold = 0.14**: try 0.14" in markdown
    assert bad_format.status_code == 422

    assert deleted.status_code == 204 and gone.status_code == 404 and again.status_code == 404
    assert gone.json()["error"]["code"] == "conversation_not_found"
    assert cleared == {"deleted": 1} and empty["total"] == 0
    everything = json.dumps([page, detail, document]) + markdown
    assert KEY not in everything


def test_the_context_snapshot_is_the_latest_turns(tmp_path):
    with app_with(tmp_path) as h:
        image = h.upload(1)[0]
        events = chat(h, "What is on screen?", context=image_context(image, "red", threshold=0.25))
        conversation_id = events[0][1]["conversation_id"]
        snapshot = h.client.get(f"{ASSISTANT}/conversations/{conversation_id}").json()["context"]
        chat(h, "Anything else?", conversation_id=conversation_id)
        cleared = h.client.get(f"{ASSISTANT}/conversations/{conversation_id}").json()["context"]
    assert snapshot["image_id"] == image and snapshot["query"] == "red"
    assert snapshot["params"]["threshold"] == 0.25
    assert snapshot["screen"]["keywords"] == ["red"] and snapshot["screen"]["threshold"] == 0.25
    assert cleared is None


def _alembic(db: Database) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def test_upgrade_from_the_previous_head_keeps_jobs_and_adds_conversations(tmp_path):
    db = Database(tmp_path / "seglens.db")
    config = _alembic(db)
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
    images = ImageRepository(db)
    images.add(StoredImage("a" * 64, "b" * 64, "a.png", "PNG", 4, 3, 10, utcnow()))
    jobs = JobRepository(db)
    jobs.create(
        NewJob("j1", "red", ("red",), JobParams(QueryParams(threshold=0.3)), "tiny", True, ("a" * 64,))
    )
    assert "assistant_conversations" not in inspect(db.engine).get_table_names()

    db.migrate()  # what the server does at start-up

    tables = set(inspect(db.engine).get_table_names())
    assert {"assistant_conversations", "assistant_messages", "jobs", "job_items"} <= tables
    job = jobs.get("j1")
    assert job is not None and job.params == JobParams(QueryParams(threshold=0.3)) and job.total == 1
    with db.engine.connect() as connection:
        assert (
            connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == "0003"
        )  # the newest revision (0003 adds job_item_summaries)
    # and back down again, leaving the jobs alone
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0001")
    assert "assistant_messages" not in inspect(db.engine).get_table_names()
    assert jobs.get("j1") is not None
    db.dispose()


def test_a_server_with_jobs_from_before_starts_and_chats_about_them(tmp_path):
    data = tmp_path / "data"
    with app_with(data) as h:
        ids = h.upload(1, 2)
        job = h.create_job(ids, "red")
        h.wait_for(job["id"])
    # Roll the schema back to the previous head, as an older SegLens left it.
    db = Database(data / "seglens.db")
    config = _alembic(db)
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0001")
    db.dispose()
    with app_with(data) as h:
        events = chat(h, "How did it go?", context={"job_id": job["id"]})
        listed = h.client.get(f"{ASSISTANT}/conversations").json()
        results = h.results(job["id"])
    assert events[-1][1]["source"] == "advisor" and "2 images" in events[-1][1]["reply"]["content"]
    assert listed["total"] == 1 and len(results) == 2


# -- the chat turn in the service ----------------------------------------------------------
def _service(h: Any) -> Any:
    return h.runtime.assistant


def test_closing_a_turn_early_stops_the_llm_stream_and_frees_the_slot(tmp_path):
    with FakeOpenAI() as llm:
        llm.enqueue(Reply.text("one two three four five six"))
        with app_with(tmp_path, **llm_settings(llm, llm_max_concurrent=1)) as h:
            service = _service(h)
            turn = service.start_chat("hello")
            assert service._slots.used == 1
            first = next(turn.events)
            turn.close()
            after_close = service._slots.used
            dropped = service.start_chat("never read")
            del dropped
            gc.collect()
            after_drop = service._slots.used
            stored = h.client.get(f"{ASSISTANT}/conversations/{turn.conversation_id}").json()
    assert isinstance(first, TextEvent)
    assert after_close == 0 and after_drop == 0
    assert [m["role"] for m in stored["messages"]] == ["user"]  # the answer never finished


def test_an_unexpected_failure_ends_in_an_error_event_and_done(tmp_path, monkeypatch):
    with app_with(tmp_path) as h:
        service = _service(h)

        def broken(*_args: Any, **_kwargs: Any) -> Any:
            yield TextEvent("Partial ")
            raise RuntimeError("bug")

        monkeypatch.setattr(service.assistant, "chat", broken)
        turn = service.start_chat("hello")
        events = list(turn.events)
        turn.close()
        stored = h.client.get(f"{ASSISTANT}/conversations/{turn.conversation_id}").json()
    assert [type(e) for e in events] == [TextEvent, ErrorEvent, TextEvent, DoneEvent]
    assert events[1].code == "assistant_failed" and events[1].fallback is False
    assert events[-1].reply.content.startswith("Partial ") and service._slots.used == 0
    assert stored["messages"][-1]["error_code"] == "assistant_failed"


def test_the_user_guide_falls_back_to_the_builtin_one(tmp_path, monkeypatch):
    assert load_user_guide(tmp_path / "missing") == BUILTIN_GUIDE.strip()
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "usage.md").write_text("# Usage\n\nPress the big button.\n")
    (tmp_path / "docs" / "architecture.md").write_text("# Internals\n")
    monkeypatch.setenv("SEGLENS_DOCS_DIR", str(tmp_path / "docs"))
    guide = load_user_guide()
    assert guide.startswith(BUILTIN_GUIDE.strip()) and "Press the big button." in guide
    assert "Internals" not in guide
