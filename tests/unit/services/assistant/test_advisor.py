"""The offline advisor's rules on synthetic screens whose right answer is known."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from fakes import regions_from_masks
from seglens.core.exports import ImageRecord
from seglens.core.matching import match_regions
from seglens.core.types import Query, QueryParams, RegionScores
from seglens.services.assistant.advisor import (
    Suggestion,
    advise,
    build_context,
    floor_2dp,
    foreign_script,
    suggestion_from_arguments,
)
from seglens.services.assistant.offline import describe_context
from synthetic_results import match_of as _match
from synthetic_results import query_result as _result


def _rules(suggestions: tuple[Suggestion, ...]) -> list[str]:
    return [s.rule for s in suggestions]


def _only(suggestions: tuple[Suggestion, ...], rule: str) -> Suggestion:
    found = [s for s in suggestions if s.rule == rule]
    assert len(found) == 1, _rules(suggestions)
    return found[0]


# -- helpers ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("score", "expected"),
    [(0.437, 0.43), (0.42, 0.42), (float(np.float32(0.42)), 0.41), (0.5, 0.5), (0.0, 0.0), (0.999, 0.99)],
)
def test_floor_2dp_never_exceeds_the_score(score: float, expected: float) -> None:
    assert floor_2dp(score) == expected
    assert floor_2dp(score) <= score


def test_foreign_script_by_embedder_language() -> None:
    assert foreign_script("狗", "en") == "zh"
    assert foreign_script("狗", "zh") is None
    assert foreign_script("собака", "en") == "other"
    assert foreign_script("café crème", "en") is None
    assert foreign_script("狗", "multi") is None
    assert foreign_script("狗", None) is None


# -- context ----------------------------------------------------------------------------
def test_build_context_summarises_scores_near_the_threshold() -> None:
    first = _result(
        ("dog", "cat"),
        [_match("dog", 0.91), _match("dog", 0.52, (50, 50, 60, 60))],
        {"cat": 0.44},
        regions=30,
    )
    second = _result(("dog", "cat"), [_match("cat", 0.61)], {"dog": 0.47}, regions=50, size_hw=(200, 300))
    records = [
        ImageRecord("a.jpg", result=first, timings_ms={"image_encoder": 1000.0, "mask_decoder": 3000.0}),
        ImageRecord("b.jpg", result=second, timings_ms={"image_encoder": 2000.0, "mask_decoder": 5000.0}),
        ImageRecord("c.jpg", error="cannot decode", error_code="image_decode_error"),
    ]
    ctx = build_context(records, subject_id="job-1", device="cpu", points_per_side=16, profile="cpu-fast")

    assert (ctx.scope, ctx.images_total, ctx.images_done, ctx.images_failed) == ("job", 3, 2, 1)
    assert ctx.images_matched == 2 and ctx.regions_mean == 40 and ctx.regions_max == 50
    dog, cat = ctx.keyword_stats
    assert (dog.matches, dog.images_matched, dog.best_score) == (2, 1, pytest.approx(0.91))
    assert dog.lowest_matches == pytest.approx((0.52, 0.91)) and dog.barely_above == 1
    assert dog.best_below == pytest.approx((0.47,))
    assert cat.best_below == pytest.approx((0.44,)) and cat.matches == 1
    assert ctx.largest_image_hw == (200, 300)
    assert ctx.timings_ms == {"image_encoder": 1500.0, "mask_decoder": 4000.0}
    assert ctx.mask_generation_ms == 5500.0
    assert ctx.failures[0].code == "image_decode_error"

    data = ctx.to_dict()
    json.dumps(data)
    assert data["keyword_stats"][1]["best_below"] == [0.44]
    assert "exclusions" not in data  # empty fields are left out


def test_build_context_of_one_result_is_an_image_scope() -> None:
    ctx = build_context([_result(("dog",), [_match("dog", 0.8)])])
    assert ctx.scope == "image" and ctx.keywords == ("dog",) and ctx.threshold == 0.5


def test_describe_context_gives_counts_and_scores() -> None:
    ctx = build_context([_result(("dog", "cat"), [_match("dog", 0.91)], {"cat": 0.437})], profile="cpu-fast")
    text = describe_context(ctx)
    assert "dog: 1 match" in text and "0.910" in text
    assert "cat: no match; best score 0.437" in text
    assert "threshold 0.50" in text and "profile cpu-fast" in text


def test_describe_context_says_why_images_do_not_match() -> None:
    base = build_context([_result(("dog",), [_match("dog", 0.91)])])
    excluded = replace(base, images_matched=0, exclusions=("grass",), exclusion_hits={"grass": 1})
    assert "0 of 1 images match (1 excluded by -grass)" in describe_context(excluded)
    nothing = build_context([_result(("dog",), [], {"dog": 0.2})])
    assert "0 of 1 images match (no region reaches the threshold 0.50)" in describe_context(nothing)
    assert "1 of 1 images match;" in describe_context(base)
    # the UI in 中文 gets the same account, written by the server in Chinese
    assert "1 张图片中有 0 张匹配（1 张被排除词 -grass 排除）" in describe_context(excluded, "zh")


# -- rules ------------------------------------------------------------------------------
def test_advise_lowers_threshold_to_a_keyword_just_under_it() -> None:
    ctx = build_context([_result(("dog", "cat"), [_match("dog", 0.91)], {"cat": 0.437})])
    suggestion = _only(advise(ctx), "lower_threshold")
    assert suggestion.threshold == 0.43
    assert suggestion.threshold is not None and suggestion.threshold <= 0.437  # the cat now matches
    assert "'cat'" in suggestion.reason and "0.437" in suggestion.reason
    assert suggestion.confidence >= 0.8 and suggestion.actionable


def test_advise_lowers_threshold_below_every_near_miss_of_a_job() -> None:
    # the example: the two dogs scored 0.42 and 0.44 (float32 scores)
    results = [
        _result(("dog",), [], {"dog": float(np.float32(0.44))}),
        _result(("dog",), [], {"dog": float(np.float32(0.42))}),
        _result(("dog",), [], {"dog": 0.1}),
    ]
    suggestion = _only(advise(build_context(results)), "lower_threshold")
    assert suggestion.threshold == 0.41


def test_advise_ignores_scores_far_under_the_threshold_and_suggests_rephrasing() -> None:
    ctx = build_context([_result(("dog", "zebra"), [_match("dog", 0.9)], {"zebra": 0.12})])
    suggestions = advise(ctx)
    assert "lower_threshold" not in _rules(suggestions)
    rephrase = _only(suggestions, "rephrase_keyword")
    assert "'zebra'" in rephrase.reason and "0.120" in rephrase.reason and not rephrase.actionable


def test_advise_lowers_merge_threshold_for_overlapping_matches() -> None:
    # IoU(a, b) = IoU(b, c) = 0.667, IoU(a, c) = 0.429: three overlapping pairs
    matches = [
        _match("dog", 0.9, (0, 0, 50, 50)),
        _match("dog", 0.8, (10, 0, 60, 50)),
        _match("dog", 0.7, (20, 0, 70, 50)),
    ]
    ctx = build_context([_result(("dog",), matches, merge_threshold=0.7)])
    stats = ctx.keyword_stats[0]
    assert stats.overlapping_pairs == 3
    assert stats.overlap_iou_min == pytest.approx(30 / 70)
    suggestion = _only(advise(ctx), "lower_merge_threshold")
    assert suggestion.merge_threshold == 0.42  # just below the smallest overlap, 0.4286
    assert "3 pairs" in suggestion.reason


def test_advise_leaves_merging_alone_for_one_overlap() -> None:
    matches = [
        _match("dog", 0.9, (0, 0, 50, 50)),
        _match("dog", 0.8, (10, 0, 60, 50)),
        _match("dog", 0.7, (80, 60, 100, 90)),
    ]
    assert "lower_merge_threshold" not in _rules(advise(build_context([_result(("dog",), matches)])))


@pytest.mark.parametrize(
    ("device", "points", "decoder_ms", "expected"),
    [
        ("cpu", 32, 20_000.0, 16),
        ("cpu", 16, 12_000.0, 8),
        ("cuda", 32, 20_000.0, None),
        ("cpu", 32, 2_000.0, None),
        ("cpu", 8, 60_000.0, None),
    ],
)
def test_advise_fewer_points_only_for_slow_cpu_mask_generation(
    device: str, points: int, decoder_ms: float, expected: int | None
) -> None:
    record = ImageRecord(
        "big.jpg",
        result=_result(("dog",), [_match("dog", 0.9)], size_hw=(3000, 4000)),
        timings_ms={"image_encoder": 3000.0, "mask_decoder": decoder_ms},
    )
    suggestions = advise(build_context([record], device=device, points_per_side=points))
    found = [s for s in suggestions if s.rule == "fewer_points"]
    if expected is None:
        assert not found
    else:
        assert found[0].points_per_side == expected
        assert "re-runs mask generation" in found[0].reason


def test_advise_raises_threshold_when_most_matches_barely_pass() -> None:
    weak = [
        _match("car", s, (i * 10, 0, i * 10 + 8, 8))
        for i, s in enumerate([0.51, 0.52, 0.52, 0.53, 0.54, 0.51])
    ]
    strong = [_match("car", 0.93, (0, 50, 20, 70)), _match("car", 0.88, (40, 50, 60, 70))]
    suggestion = _only(advise(build_context([_result(("car",), weak + strong)])), "raise_threshold")
    assert suggestion.threshold == 0.55
    assert "6 of them" in suggestion.reason


def test_advise_does_not_raise_threshold_when_it_would_remove_every_match() -> None:
    weak = [
        _match("car", s, (i * 10, 0, i * 10 + 8, 8)) for i, s in enumerate([0.51, 0.52, 0.52, 0.53, 0.54])
    ]
    assert "raise_threshold" not in _rules(advise(build_context([_result(("car",), weak)])))


def test_advise_points_chinese_keywords_at_the_zh_profile_for_an_english_embedder() -> None:
    ctx = build_context([_result(("狗",), [], {"狗": 0.45})], embedder_language="en", embedder="clip-vit-b32")
    suggestions = advise(ctx)
    mismatch = _only(suggestions, "language_mismatch")
    assert mismatch.profile == "zh" and "'狗'" in mismatch.reason and "Translate" in mismatch.reason
    # its score is noise, so no threshold advice on it
    assert "lower_threshold" not in _rules(suggestions)


def test_advise_other_scripts_go_to_the_multilingual_profile() -> None:
    ctx = build_context([_result(("собака",), [], {"собака": 0.2})], embedder_language="en")
    assert _only(advise(ctx), "language_mismatch").profile == "multilingual"


def test_advise_accepts_chinese_keywords_with_the_zh_embedder() -> None:
    ctx = build_context([_result(("狗",), [_match("狗", 0.8)])], embedder_language="zh")
    assert "language_mismatch" not in _rules(advise(ctx))


def test_advise_when_every_image_failed_says_check_the_inputs() -> None:
    records = [
        ImageRecord(f"{n}.heic", error="unsupported format", error_code="unsupported_image") for n in "ab"
    ]
    suggestions = advise(build_context(records, query=Query(("dog",))))
    assert _rules(suggestions) == ["all_failed"]
    assert "a.heic" in suggestions[0].reason and "unsupported_image" in suggestions[0].reason
    assert "Check the inputs" in suggestions[0].reason


def test_advise_reports_some_failures_and_still_tunes() -> None:
    records = [
        ImageRecord("ok.jpg", result=_result(("cat",), [], {"cat": 0.45})),
        ImageRecord("bad.jpg", error="truncated", error_code="image_decode_error"),
    ]
    rules = _rules(advise(build_context(records)))
    assert "some_failed" in rules and "lower_threshold" in rules


def test_advise_tiny_profile_says_results_are_random_and_nothing_else() -> None:
    ctx = build_context(
        [_result(("cat",), [], {"cat": 0.45})], meaningless=True, profile="tiny", device="cpu"
    )
    suggestions = advise(ctx)
    assert _rules(suggestions) == ["tiny_profile"]
    assert suggestions[0].profile == "cpu-fast" and "random" in suggestions[0].reason


def test_advise_without_keywords_asks_for_them() -> None:
    assert _rules(advise(build_context([_result((), [])]))) == ["no_keywords"]


def test_advise_is_quiet_when_results_look_right() -> None:
    ctx = build_context(
        [_result(("dog", "cat"), [_match("dog", 0.93), _match("cat", 0.88, (50, 50, 90, 90))])]
    )
    assert advise(ctx) == ()


def test_advise_orders_by_confidence() -> None:
    records = [
        ImageRecord("ok.jpg", result=_result(("cat", "zebra"), [], {"cat": 0.45, "zebra": 0.05})),
        ImageRecord("bad.jpg", error="truncated", error_code="image_decode_error"),
    ]
    confidences = [s.confidence for s in advise(build_context(records))]
    assert confidences == sorted(confidences, reverse=True) and len(confidences) == 3


# -- validation of the LLM's suggestions -----------------------------------------------
def test_suggestion_from_arguments_keeps_valid_fields() -> None:
    suggestion = suggestion_from_arguments(
        {
            "threshold": 0.41,
            "merge_threshold": 0.5,
            "points_per_side": 16,
            "keywords": ["dog ", "dog", "puppy"],
            "reason": "x",
        }
    )
    assert suggestion is not None
    assert (suggestion.threshold, suggestion.merge_threshold, suggestion.points_per_side) == (0.41, 0.5, 16)
    assert suggestion.keywords == ("dog", "puppy") and suggestion.ignored == () and suggestion.source == "llm"


def test_suggestion_from_arguments_drops_or_clamps_invalid_values() -> None:
    suggestion = suggestion_from_arguments(
        {
            "threshold": 45,
            "merge_threshold": "low",
            "points_per_side": 300.4,
            "keywords": "cat, , dog",
            "reason": " a  b ",
        }
    )
    assert suggestion is not None
    assert suggestion.threshold is None and suggestion.merge_threshold is None
    assert suggestion.points_per_side == 128
    assert suggestion.keywords == ("cat", "dog")
    assert suggestion.reason == "a b"
    assert set(suggestion.ignored) == {"threshold", "merge_threshold"}


@pytest.mark.parametrize("bad", [float("nan"), True, -0.1, None])
def test_suggestion_from_arguments_rejects_non_numbers(bad: object) -> None:
    suggestion = suggestion_from_arguments({"threshold": bad, "reason": "r"})
    assert suggestion is not None and suggestion.threshold is None


def test_suggestion_from_arguments_with_nothing_valid_is_none() -> None:
    assert suggestion_from_arguments({"threshold": 7, "keywords": []}) is None


def test_suggestion_round_trips_through_a_dict() -> None:
    original = Suggestion("r", rule="lower_threshold", confidence=0.85, threshold=0.43, keywords=("a",))
    data = json.loads(json.dumps(original.to_dict()))
    assert Suggestion.from_dict(data) == original


# -- applying a suggestion fixes the screen it came from -------------------------------
def _boxes(*boxes: tuple[int, int, int, int]) -> list[np.ndarray]:
    masks = []
    for x0, y0, x1, y1 in boxes:
        mask = np.zeros((100, 120), bool)
        mask[y0:y1, x0:x1] = True
        masks.append(mask)
    return masks


def test_applying_the_lower_threshold_suggestion_finds_the_missing_keyword() -> None:
    regions = regions_from_masks(_boxes((0, 0, 30, 30), (50, 50, 90, 90)))
    probabilities = np.array([[0.91, 0.05, 0.04], [0.30, 0.437, 0.263]], np.float32)
    scores = RegionScores(("dog", "cat", "background"), 2, 0, probabilities, probabilities.copy())
    query = Query(("dog", "cat"))
    before = match_regions(regions, scores, query, QueryParams(threshold=0.5))
    assert before.missing_keywords == ("cat",)

    suggestion = _only(advise(build_context([before])), "lower_threshold")
    assert suggestion.threshold is not None
    after = match_regions(regions, scores, query, QueryParams(threshold=suggestion.threshold))
    assert after.missing_keywords == () and set(after.keywords_found()) == {"dog", "cat"}


def test_applying_the_merge_suggestion_merges_the_duplicates() -> None:
    regions = regions_from_masks(_boxes((0, 0, 50, 50), (10, 0, 60, 50), (20, 0, 70, 50)))
    probabilities = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3]], np.float32)
    scores = RegionScores(("dog", "background"), 1, 0, probabilities, probabilities.copy())
    query = Query(("dog",))
    before = match_regions(regions, scores, query, QueryParams(merge_threshold=0.7))
    assert len(before.matches) == 3

    suggestion = _only(advise(build_context([before])), "lower_merge_threshold")
    assert suggestion.merge_threshold is not None
    after = match_regions(regions, scores, query, QueryParams(merge_threshold=suggestion.merge_threshold))
    assert len(after.matches) == 1 and after.matches[0].score == pytest.approx(0.9)


def test_pipeline_facts_feed_build_context() -> None:
    from fakes import FakeProposer, OracleEmbedder
    from seglens.services.assistant.screen_context import pipeline_facts
    from seglens.services.segment.pipeline import Pipeline

    pipe = Pipeline(FakeProposer([]), OracleEmbedder(), profile="cpu-fast")
    facts = pipeline_facts(pipe)
    assert facts["embedder"] == "oracle@1" and facts["embedder_language"] == "en"
    assert facts["points_per_side"] == 32 and facts["meaningless"] is False and facts["device"] is None
    ctx = build_context([_result(("dog",), [_match("dog", 0.9)])], **facts)
    assert ctx.profile == "cpu-fast" and ctx.points_per_side == 32
