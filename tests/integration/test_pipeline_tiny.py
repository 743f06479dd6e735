"""The Python API on the real transformers code paths, with tiny random-weight models."""

from __future__ import annotations

import numpy as np
import pytest

import seglens
from seglens.core.masks import decode_rle
from seglens.models.hub import ModelNotAvailableError, resolve_model


@pytest.fixture(scope="module", params=["tiny-sam", "tiny-sam2"])
def pipe(request, tiny_data_dir):
    return seglens.Pipeline.from_profile("tiny", data_dir=tiny_data_dir, proposer=request.param)


def test_pipeline_segments_queries_renders_and_labels_tiny(pipe, photos):
    image = photos["coffee"]
    segmentation = pipe.segment(image)
    assert len(segmentation.regions) > 10
    assert segmentation.region_embeddings.shape[0] == len(segmentation.regions)
    np.testing.assert_allclose(np.linalg.norm(segmentation.region_embeddings, axis=1), 1.0, atol=1e-4)
    result = pipe.query(segmentation, "cup, saucer", threshold=0.0, merge_threshold=1.0)
    assert {m.keyword for m in result.matches} <= {"cup", "saucer"}
    assert len(result.matches) == len(segmentation.regions)  # threshold 0, no merging: every region
    fewer = pipe.query(segmentation, "cup, saucer", threshold=0.0, merge_threshold=0.3)
    assert len(fewer.matches) < len(result.matches)
    for m in result.matches[:5]:
        assert decode_rle(m.rle).shape == image.shape[:2]
    overlay = pipe.render(segmentation, result, alpha=0.6)
    assert overlay.size == (image.shape[1], image.shape[0])
    assert pipe.meaningless and pipe.banner and "meaningless" in pipe.banner


def test_pipeline_prompt_points_and_box_return_masks(pipe, photos):
    image = photos["chelsea"]
    h, w = image.shape[:2]
    positive = pipe.prompt(image, points=[[w // 2, h // 2, 1]])
    assert decode_rle(positive.rle).shape == (h, w)
    assert positive.area == int(decode_rle(positive.rle).sum())
    both = pipe.prompt(image, points=[[w // 2, h // 2, 1], [10, 10, 0]], box=[20, 20, w - 20, h - 20])
    assert decode_rle(both.rle).shape == (h, w)
    with pytest.raises(ValueError, match="inside"):
        pipe.prompt(image, points=[[w + 5, 3, 1]])
    with pytest.raises(ValueError, match="box"):
        pipe.prompt(image, box=[50, 50, 10, 10])


def test_image_embedding_round_trips_through_the_disk_cache(pipe, photos, tiny_data_dir):
    image = photos["astronaut"][::2, ::2].copy()
    first, _ = pipe.image_embedding(image)
    fresh = seglens.Pipeline.from_profile(
        "tiny", data_dir=tiny_data_dir, proposer=pipe.proposer.model_id.split("@")[0]
    )
    second, from_cache = fresh.image_embedding(image)
    assert from_cache
    a = pipe.proposer.prompt(first, np.array([[100.0, 80.0]]), np.array([1]))
    b = fresh.proposer.prompt(second, np.array([[100.0, 80.0]]), np.array([1]))
    assert a.rle == b.rle


def test_tiny_model_is_built_once_and_marked(tiny_data_dir):
    resolved = resolve_model("tiny-clip", tiny_data_dir / "models")
    assert resolved.meaningless
    assert (resolved.path / "SEGLENS_RANDOM_WEIGHTS").exists() and (resolved.path / "SEGLENS_BUILD").exists()
    assert resolved.model_id.startswith("tiny-clip@")


def test_local_directory_works_where_a_name_does(tiny_data_dir, photos):
    local = str(tiny_data_dir / "models" / "tiny-sam")
    pipe = seglens.Pipeline.from_profile("tiny", data_dir=tiny_data_dir, proposer=local)
    assert pipe.proposer.meaningless
    assert len(pipe.segment(photos["coffee"][:200, :200].copy()).regions) > 0


def test_missing_directory_and_wrong_kind_are_clear_errors(tiny_data_dir):
    with pytest.raises(ModelNotAvailableError, match="does not exist"):
        seglens.Pipeline.from_profile("tiny", data_dir=tiny_data_dir, proposer="./no/such/dir")
    with pytest.raises(ValueError, match="not a proposer"):
        seglens.Pipeline.from_profile("tiny", data_dir=tiny_data_dir, proposer="tiny-clip")
