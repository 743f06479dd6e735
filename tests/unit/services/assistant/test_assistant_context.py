"""The assistant's screen context stays bounded whatever the job: few, short mask
comparisons, fixed-size statistics, a prompt under the token budget."""

from __future__ import annotations

import json

import pytest

import seglens.services.jobs.summary as item_summary
from seglens.core.exports import ImageRecord
from seglens.core.types import Query
from seglens.services.assistant.advisor import advise
from seglens.services.assistant.guide import load_user_guide
from seglens.services.assistant.prompt import (
    PROMPT_TOKEN_BUDGET,
    build_messages,
    estimate_tokens,
    prompt_tokens,
)
from seglens.services.assistant.screen_context import OVERLAP_TOP_K, build_context
from synthetic_results import match_of, query_result


def _crowded_image(matches: int, keyword: str = "grass") -> ImageRecord:
    """One image with `matches` heavily overlapping matches of `keyword`."""
    found = [
        match_of(keyword, 0.5 + 0.4 * i / matches, (i % 20, i % 15, 60 + i % 20, 50 + i % 15))
        for i in range(matches)
    ]
    return ImageRecord("IMG_0001.jpg", result=query_result((keyword, "cat"), found, {"cat": 0.21}))


def test_context_build_compares_few_mask_pairs_however_many_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    # pycocotools holds the GIL for a whole call: the old code compared all 600 matches
    # of a keyword in one 600 x 600 call, freezing the server's other threads.
    calls: list[tuple[int, int]] = []
    real = item_summary.rle_iou_matrix

    def counting(a, b):  # type: ignore[no-untyped-def]
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(item_summary, "rle_iou_matrix", counting)
    context = build_context([_crowded_image(600)])
    assert calls, "overlaps are still measured"
    assert max(a * b for a, b in calls) == 1
    assert len(calls) <= OVERLAP_TOP_K * (OVERLAP_TOP_K - 1) // 2
    grass = context.stats_for("grass")
    assert grass is not None and grass.matches == 600 and grass.overlapping_pairs > 0


def test_keyword_stats_carry_a_histogram_and_the_best_image_file_name() -> None:
    records = [
        ImageRecord(
            "a.jpg",
            result=query_result(("dog", "cat"), [match_of("dog", 0.55), match_of("dog", 0.93)], {"cat": 0.2}),
        ),
        ImageRecord("b.jpg", result=query_result(("dog", "cat"), [match_of("dog", 0.71)], {"cat": 0.44})),
    ]
    context = build_context(records)
    dog, cat = context.stats_for("dog"), context.stats_for("cat")
    assert dog is not None and cat is not None
    assert dog.score_histogram == (0, 0, 0, 0, 0, 1, 0, 1, 0, 1) and dog.best_image == "a.jpg"
    assert dog.matches_at_or_above(0.6) == 2 and dog.matches_at_or_above(0.65) is None
    assert cat.best_image == "b.jpg" and cat.best_below == (0.44, 0.2) and cat.score_histogram == ()
    data = context.to_dict()
    assert data["threshold"] == 0.5 and data["mode"] == "any" and "params" not in data


def test_image_context_is_named_by_file_name() -> None:
    record = ImageRecord("IMG_0042.jpg", result=query_result(("cat",), [], {"cat": 0.3}))
    context = build_context([record], subject_id="15d43fe4df00aa")
    assert context.subject_name == "IMG_0042.jpg"
    assert "IMG_0042.jpg" in json.dumps(context.to_dict())


def _job(images: int, keywords: tuple[str, ...]) -> list[ImageRecord]:
    records = []
    for n in range(images):
        found = [match_of(keywords[(n + k) % len(keywords)], 0.5 + (n % 40) / 100) for k in range(3)]
        best = {kw: 0.1 + (n % 30) / 100 for kw in keywords}
        records.append(ImageRecord(f"photo-{n:05d}.jpg", result=query_result(keywords, found, best)))
    for n in range(12):
        records.append(
            ImageRecord(f"broken-{n}.jpg", error="cannot decode " + "x" * 300, error_code="corrupt")
        )
    return records


def test_context_size_does_not_grow_with_the_job() -> None:
    keywords = tuple(f"thing{i}" for i in range(8))
    small = json.dumps(build_context(_job(10, keywords)).to_dict())
    large = json.dumps(build_context(_job(1000, keywords)).to_dict())
    assert len(large) < len(small) * 1.2


def test_the_prompt_for_a_1000_image_job_stays_under_the_token_budget() -> None:
    keywords = tuple(f"keyword number {i}" for i in range(32))
    context = build_context(_job(1000, keywords), query=Query(keywords), images_total=1000)
    facts = advise(context)
    history = [("user" if i % 2 == 0 else "assistant", "长" * 4000) for i in range(12)]
    question = "为什么找不到猫？" * 500  # 4000 Chinese characters, the longest message allowed
    guide = load_user_guide()
    messages = build_messages(question[:4000], context, facts, history, guide=guide, lang="zh")
    assert prompt_tokens(messages) <= PROMPT_TOKEN_BUDGET
    assert messages[-1].content == question[:4000]
    # An ordinary question about that job keeps everything: context details and guide.
    plain = build_messages("Why is the cat not found?", context, facts, [], guide=guide)
    assert prompt_tokens(plain) <= PROMPT_TOKEN_BUDGET
    assert '"score_histogram"' in plain[0].content and "Scores and threshold" in plain[0].content


def test_token_estimate_counts_chinese_characters_one_each() -> None:
    assert estimate_tokens("abcdef") == 2 and estimate_tokens("阈值") == 2 and estimate_tokens("") == 0
