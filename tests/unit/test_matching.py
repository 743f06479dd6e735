"""Matching semantics pinned down on synthetic shapes with an oracle embedder."""

import numpy as np
import pytest

from fakes import FakeProposer, OracleEmbedder, shapes_scene
from seglens.core.masks import decode_rle, rle_iou_matrix
from seglens.services.segment.pipeline import Pipeline


def _pipeline(masks, logit_scale=100.0):
    return Pipeline(FakeProposer(list(masks)), OracleEmbedder(logit_scale=logit_scale), cache=None)


@pytest.fixture
def scene():
    image, masks = shapes_scene()
    return image, masks


def test_query_matches_the_region_of_each_keyword(scene):
    image, masks = scene
    pipe = _pipeline(masks.values())
    result = pipe.query(image, "red, blue", threshold=0.5)
    assert result.image_matched
    assert sorted(m.keyword for m in result.matches) == ["blue", "red"]
    for m in result.matches:
        np.testing.assert_array_equal(decode_rle(m.rle), masks[m.keyword])
        assert 0.5 <= m.score <= 1.0
        assert m.cosine > 0.9


def test_query_for_an_absent_keyword_matches_nothing(scene):
    # Scores are per region over keywords + background, never a softmax across regions:
    # no region is "the most purple", so nothing matches.
    image, masks = scene
    result = _pipeline(masks.values()).query(image, "purple", threshold=0.5)
    assert result.matches == ()
    assert not result.image_matched
    assert result.best_scores["purple"] < 0.5


def test_threshold_above_the_best_score_removes_the_match(scene):
    image, masks = scene
    pipe = _pipeline(masks.values(), logit_scale=5.0)
    best = pipe.query(image, "red", threshold=0.0).best_scores["red"]
    assert 0.1 < best < 0.99
    assert len(pipe.query(image, "red", threshold=best).matches) == 1
    assert pipe.query(image, "red", threshold=min(1.0, best + 1e-4)).matches == ()


def test_merge_threshold_merges_overlapping_matches_of_one_keyword(scene):
    image, masks = scene
    red = masks["red"]
    shifted = np.roll(red, 3, axis=1)  # IoU with red is 0.87
    iou = rle_iou_matrix([_rle(red)], [_rle(shifted)])[0, 0]
    assert 0.8 < iou < 0.9
    pipe = _pipeline([red, shifted, masks["blue"]])
    assert len([m for m in pipe.query(image, "red", merge_threshold=0.95).matches]) == 2
    merged = pipe.query(image, "red", merge_threshold=0.7).matches
    assert len(merged) == 1 and len(merged[0].region_indices) == 1
    union = pipe.query(image, "red", merge_threshold=0.7, merge_strategy="union").matches
    assert len(union) == 1
    assert union[0].area == int((red | shifted).sum())
    assert sorted(union[0].region_indices) == [0, 1]


def test_merging_never_crosses_keywords(scene):
    image, masks = scene
    red = masks["red"]
    pipe = _pipeline([red, masks["blue"]])
    result = pipe.query(image, "red, blue", merge_threshold=0.0)
    assert {m.keyword for m in result.matches} == {"red", "blue"}


def test_mode_all_needs_every_keyword(scene):
    image, masks = scene
    pipe = _pipeline(masks.values())
    any_result = pipe.query(image, "red, yellow", mode="any")
    all_result = pipe.query(image, "red, yellow", mode="all")
    assert any_result.image_matched
    assert not all_result.image_matched
    assert all_result.missing_keywords == ("yellow",)
    assert [m.keyword for m in all_result.matches] == ["red"]
    assert pipe.query(image, "red, green", mode="all").image_matched


def test_exclusion_present_vetoes_the_image(scene):
    image, masks = scene
    pipe = _pipeline(masks.values())
    result = pipe.query(image, "red, -green")
    assert result.excluded_by == ("green",)
    assert not result.image_matched
    assert [m.keyword for m in result.matches] == ["red"]


def test_exclusion_absent_keeps_the_image(scene):
    image, masks = shapes_scene(colours=("red", "blue"))
    result = _pipeline(masks.values()).query(image, "red, -green")
    assert result.excluded_by == ()
    assert result.image_matched


def test_exclusion_region_is_never_a_keyword_match(scene):
    image, masks = scene
    # "green" as keyword and as exclusion of a near-synonym: the green region is taken by
    # the exclusion it resembles more, never highlighted as the keyword.
    result = _pipeline(masks.values()).query(image, "red, -green")
    assert all(m.keyword != "green" for m in result.matches)


def test_matches_are_sorted_best_first(scene):
    image, masks = scene
    result = _pipeline(masks.values()).query(image, "red, green, blue", threshold=0.0)
    scores = [m.score for m in result.matches]
    assert scores == sorted(scores, reverse=True)


def _rle(mask):
    from seglens.core.masks import encode_mask

    return encode_mask(mask)


def test_coarse_overlap_iou_agrees_with_exact_rle_iou():
    from seglens.core.masks import coarse_iou_matrix, coarse_masks, encode_mask

    masks = []
    for dx, size in [(0, 300), (25, 300), (120, 200), (600, 90)]:
        m = np.zeros((683, 1024), bool)
        m[100 : 100 + size, 200 + dx : 200 + dx + size] = True
        masks.append(m)
    rles = [encode_mask(m) for m in masks]
    exact = rle_iou_matrix(rles, rles)
    coarse = coarse_iou_matrix(coarse_masks(rles))
    assert coarse.shape == exact.shape
    np.testing.assert_allclose(coarse, exact, atol=0.03)


def test_match_regions_exact_and_coarse_overlaps_merge_alike(scene):
    from seglens.core.masks import coarse_masks
    from seglens.core.matching import match_regions
    from seglens.core.query import parse_query
    from seglens.core.types import QueryParams

    image, masks = scene
    red = masks["red"]
    pipe = _pipeline([red, np.roll(red, 3, axis=1), masks["blue"]])
    segmentation = pipe.segment(image)
    query = parse_query("red, blue")
    scores = pipe.score(segmentation.region_embeddings, query)
    for merge in (0.95, 0.7):
        params = QueryParams(merge_threshold=merge)
        exact = match_regions(segmentation.regions, scores, query, params)
        coarse = match_regions(
            segmentation.regions, scores, query, params, coarse_masks(segmentation.regions.rles)
        )
        assert [m.region_indices for m in exact.matches] == [m.region_indices for m in coarse.matches]
