"""The offline advisor's answers: the guide section that fits the question, the UI's
language (Chinese from Chinese templates), concrete numbers, no repeated summary, no
cut-off words."""

from __future__ import annotations

import re

import pytest

from seglens.core.exports import ImageRecord
from seglens.services.assistant.advisor import advise
from seglens.services.assistant.chat import Assistant, ChatMessage, SuggestionEvent, TextEvent
from seglens.services.assistant.guide import (
    BUILTIN_GUIDE,
    BUILTIN_GUIDE_ZH,
    guide_excerpt,
    load_user_guide,
    rank_sections,
)
from seglens.services.assistant.screen_context import build_context
from synthetic_results import match_of, query_result

# Typical questions of a new user and the guide section that should answer them.
QUESTIONS = [
    ("What threshold should I use?", "threshold"),
    ("Why is the cat not found?", "threshold"),
    ("I get too many wrong matches", "threshold"),
    ("How can I find more dogs?", "threshold"),
    ("The same dog is found twice", "merging"),
    ("What does the merging threshold do?", "merging"),
    ("Boxes overlap and look like duplicates", "merging"),
    ("Segmentation is very slow on my laptop", "points"),
    ("How do I find small objects?", "points"),
    ("Which profile should I use with a GPU?", "profiles"),
    ("Can I search with Chinese words?", "profiles"),
    ("How do I download the model weights?", "profiles"),
    ("How do I exclude grass from the results?", "query"),
    ("How do I search for several keywords at once?", "query"),
    ("How do I export the results to COCO?", "jobs"),
    ("My batch job was interrupted, what now?", "jobs"),
    ("阈值应该设多少？", "threshold"),
    ("为什么找不到猫？", "threshold"),
    ("同一只狗被找到了两次", "merging"),
    ("处理太慢了怎么办", "points"),
    ("怎么用中文关键词？", "profiles"),
    ("如何导出结果？", "jobs"),
    ("怎么排除草地？", "query"),
]


@pytest.mark.parametrize(("question", "topic"), QUESTIONS)
def test_typical_questions_retrieve_the_expected_guide_section(question: str, topic: str) -> None:
    for guide in (load_user_guide(), BUILTIN_GUIDE, BUILTIN_GUIDE_ZH):
        ranked = rank_sections(guide, question)
        assert ranked and ranked[0][1].topic == topic, (question, [(s, x.title) for s, x in ranked[:3]])


def test_a_question_about_nothing_in_the_guide_gets_no_excerpt() -> None:
    assert guide_excerpt(BUILTIN_GUIDE, "cat") is None and guide_excerpt(BUILTIN_GUIDE, "") is None


def test_excerpts_are_cut_at_a_sentence_end_never_inside_a_word() -> None:
    full = guide_excerpt(BUILTIN_GUIDE, "What threshold should I use?")
    assert full is not None and full.title == "Scores and threshold" and full.text.endswith("(cached).")
    for limit in (120, 200, 300, 350):
        cut = guide_excerpt(BUILTIN_GUIDE, "What threshold should I use?", max_chars=limit)
        assert cut is not None and len(cut.text) <= limit and "…" not in cut.text
        assert full.text.startswith(cut.text) and full.text[len(cut.text)].isspace()
    sentence = guide_excerpt(BUILTIN_GUIDE, "What threshold should I use?", max_chars=300)
    assert sentence is not None and sentence.text.endswith("no match.")


def _screen() -> object:
    records = [
        ImageRecord(
            "kitchen.jpg",
            result=query_result(
                ("cat", "cup"), [match_of("cup", 0.81), match_of("cup", 0.64)], {"cat": 0.213}
            ),
        ),
        ImageRecord(
            "garden.jpg", result=query_result(("cat", "cup"), [match_of("cup", 0.55)], {"cat": 0.467})
        ),
    ]
    return build_context(records, profile="cpu-fast")


def _answer(question: str, *, lang: str | None = None, history: tuple[ChatMessage, ...] = ()) -> str:
    events = Assistant(None, guide=BUILTIN_GUIDE).chat(question, _screen(), history, lang=lang)  # type: ignore[arg-type]
    return "".join(e.text for e in events if isinstance(e, TextEvent))


def test_a_question_about_a_keyword_gets_its_numbers_and_the_threshold_that_includes_it() -> None:
    text = _answer("Why is the cat not found?")
    assert "'cat': no region reaches the threshold 0.50. Its best score is 0.467 in garden.jpg" in text
    assert "A threshold of 0.46 would include it: 1 image would then match at least once." in text
    assert "Lower the threshold to 0.46" in text
    assert "From the user guide (Scores and threshold)" in text and "Merging threshold" not in text


def test_a_threshold_question_reports_every_keyword_and_what_a_higher_one_keeps() -> None:
    text = _answer("What threshold should I use?")
    assert "The threshold is 0.50" in text
    assert "'cup': 3 matches in 2 of 2 images (threshold 0.50), best 0.810 in kitchen.jpg" in text
    assert "At 0.60, 2 of the matches would remain." in text


def _han_share(text: str) -> float:
    letters = re.findall(
        r"[A-Za-z]|[\u4e00-\u9fff]", re.sub(r"[\w.-]+\.jpg|cpu-fast|'?\b(cat|cup)\b'?", "", text)
    )
    return sum(bool(re.match(r"[\u4e00-\u9fff]", c)) for c in letters) / max(1, len(letters))


@pytest.mark.parametrize(
    ("question", "lang"),
    [("为什么找不到猫？", None), ("为什么找不到猫？", "en"), ("Why is the cat not found?", "zh")],
)
def test_chinese_questions_or_a_chinese_ui_get_chinese_answers(question: str, lang: str | None) -> None:
    text = _answer(question, lang=lang)
    assert "AI 助手未开启" in text and "阈值" in text and "用户指南（分数和阈值）" in text
    assert "The threshold" not in text and "Lower the threshold" not in text
    assert _han_share(text) > 0.8, text


def test_advice_is_written_in_the_requested_language() -> None:
    screen = _screen()
    english = advise(screen)  # type: ignore[arg-type]
    chinese = advise(screen, "zh")  # type: ignore[arg-type]
    assert [s.rule for s in english] == [s.rule for s in chinese]
    assert all(_han_share(s.reason) > 0.8 for s in chinese)


def test_the_screen_summary_is_not_repeated_in_a_follow_up() -> None:
    first = _answer("How are my results?")
    assert "Looking at 2 images" in first
    history = (ChatMessage("user", "How are my results?"), ChatMessage("assistant", first, source="advisor"))
    again = _answer("Anything else?", history=history)
    assert "Looking at 2 images" not in again


def test_profile_advice_is_not_applicable() -> None:
    tiny = build_context([query_result(("cat",), [match_of("cat", 0.9)])], meaningless=True)
    events = list(Assistant(None, guide=BUILTIN_GUIDE).chat("what now?", tiny))
    (suggestion,) = [e.suggestion for e in events if isinstance(e, SuggestionEvent)]
    assert suggestion.profile == "cpu-fast" and suggestion.to_dict()["applicable"] is False
    assert "Start a new job with a real profile" in suggestion.reason
