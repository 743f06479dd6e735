"""The assistant service with no LLM: the advisor answers; guide, messages, translation."""

from __future__ import annotations

from pathlib import Path

import pytest

from seglens.core.exports import ImageRecord
from seglens.services.assistant.advisor import Suggestion, build_context
from seglens.services.assistant.chat import (
    Assistant,
    ChatMessage,
    DoneEvent,
    ErrorEvent,
    SuggestionEvent,
    TextEvent,
    needs_translation,
)
from seglens.services.assistant.guide import BUILTIN_GUIDE, guide_excerpt, load_user_guide
from seglens.services.assistant.translate import translate_keywords
from synthetic_results import match_of, query_result


def _offline() -> Assistant:
    return Assistant(None, guide=BUILTIN_GUIDE)


def test_offline_chat_summarises_the_screen_and_suggests() -> None:
    ctx = build_context(
        [query_result(("dog", "cat"), [match_of("dog", 0.91)], {"cat": 0.437})], profile="cpu-fast"
    )
    events = list(_offline().chat("Why is the cat missing?", ctx))
    assert isinstance(events[-1], DoneEvent) and events[-1].source == "advisor"
    assert not any(isinstance(e, ErrorEvent) for e in events)
    text = "".join(e.text for e in events if isinstance(e, TextEvent))
    assert text.startswith(
        "_The AI assistant is off: no LLM client was set up. The built-in advisor answers._"
    )
    assert "'cat': no region reaches the threshold 0.50. Its best score is 0.437" in text
    assert "A threshold of 0.43 would include it" in text and "Lower the threshold to 0.43" in text
    (suggestion,) = [e.suggestion for e in events if isinstance(e, SuggestionEvent)]
    assert suggestion.rule == "lower_threshold" and suggestion.threshold == 0.43
    assert events[-1].reply.suggestions == (suggestion,)


def test_offline_chat_is_deterministic() -> None:
    ctx = build_context([query_result(("cat",), [], {"cat": 0.45})])
    first = [e.to_dict() for e in _offline().chat("tune it", ctx)]
    second = [e.to_dict() for e in _offline().chat("tune it", ctx)]
    assert first == second


def test_offline_chat_quotes_the_guide_for_how_to_questions() -> None:
    events = list(_offline().chat("How do I resume an interrupted batch job?"))
    text = "".join(e.text for e in events if isinstance(e, TextEvent))
    assert "From the user guide" in text and "resumes on start-up" in text
    assert "Open an image or a job" in text


def test_offline_chat_for_a_failed_job_says_check_the_inputs() -> None:
    ctx = build_context([ImageRecord("a.heic", error="unsupported", error_code="unsupported_image")])
    events = list(_offline().chat("what happened?", ctx))
    text = "".join(e.text for e in events if isinstance(e, TextEvent))
    assert "Check the inputs" in text


@pytest.mark.parametrize("message", ["", "   ", "x" * 4001])
def test_chat_rejects_empty_or_huge_messages_at_once(message: str) -> None:
    with pytest.raises(ValueError):
        _offline().chat(message)


def test_chat_message_round_trip_and_validation() -> None:
    reply = ChatMessage(
        "assistant", "Lower it.", (Suggestion("r", rule="llm", source="llm", threshold=0.4),), "llm", None
    )
    assert ChatMessage.from_dict(reply.to_dict()) == reply
    with pytest.raises(ValueError):
        ChatMessage.from_dict({"role": "system", "content": "x"})


def test_load_user_guide_keeps_user_pages_and_skips_internal_ones(tmp_path: Path) -> None:
    (tmp_path / "usage.md").write_text("# Usage\n\nRun <!-- hidden --> seglens serve.\n\n\n\nThen open it.")
    (tmp_path / "architecture.md").write_text("# Internals\nlayers")
    (tmp_path / "long.md").write_text("# Long\n\n" + "\n\n".join("word " * 50 for _ in range(100)))
    guide = load_user_guide(tmp_path, max_chars=4000)
    assert guide.startswith(BUILTIN_GUIDE.strip()[:40])
    assert "Run  seglens serve.\n\nThen open it." in guide and "hidden" not in guide
    assert "Internals" not in guide
    assert len(guide) <= 4000 + 10


def test_load_user_guide_without_docs_is_the_builtin_guide(tmp_path: Path) -> None:
    assert load_user_guide(tmp_path / "missing") == BUILTIN_GUIDE.strip()


def test_guide_excerpt_needs_two_shared_words() -> None:
    assert guide_excerpt(BUILTIN_GUIDE, "merging threshold overlapping matches") is not None
    assert guide_excerpt(BUILTIN_GUIDE, "cat") is None
    assert guide_excerpt(BUILTIN_GUIDE, "") is None


def test_needs_translation_by_script() -> None:
    assert needs_translation(["狗", "-草", "cat"], "en") == ("狗", "-草")
    assert needs_translation(["狗"], "zh") == ()


def test_translate_without_llm_returns_keywords_with_a_note() -> None:
    translation = translate_keywords(None, ["狗", "cat"], embedder_language="en", off_reason="no API key")
    assert translation.keywords == ("狗", "cat") and translation.translated_by is None
    assert "no API key" in (translation.note or "") and "'狗'" in (translation.note or "")
    assert translation.to_dict()["changed"] is False


def test_assistant_translate_offline() -> None:
    translation = _offline().translate_keywords(["狗"])
    assert translation.keywords == ("狗",) and "Not translated" in (translation.note or "")
