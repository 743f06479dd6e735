"""`prompt_batch.PromptBatchDecoder` computes transformers' mask decoder (SAM and SAM 2,
multimask point prompts) to float rounding, on the tiny models' real transformers code."""

from __future__ import annotations

import pytest
import torch

from seglens.models.loading import load_model
from seglens.models.prompt_batch import PromptBatchDecoder, image_inputs

EVERY = torch.tensor([float("-inf")])  # no IoU floor: every prompt is upscaled


@pytest.fixture(scope="module", params=["tiny-sam", "tiny-sam2"])
def backend(request, models_dir):
    return load_model(request.param, models_dir, device="cpu", dtype="float32", backend="torch")


def _embedding(backend, seed: int):
    side = backend.pad_size if backend.family == "sam" else backend.input_size
    pixels = torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(seed))
    return backend.encode_pixels(pixels), side


@pytest.mark.parametrize(("prompts", "points"), [(1, 1), (5, 1), (3, 2)])
def test_decoder_matches_transformers(backend, prompts, points):
    payload, side = _embedding(backend, 0)
    generator = torch.Generator().manual_seed(prompts * 10 + points)
    coords = torch.rand(1, prompts, points, 2, generator=generator) * (side - 1)
    labels = torch.ones(1, prompts, points, dtype=torch.int64)
    labels[..., 1:] = 0  # a second point is a negative click
    with torch.inference_mode():
        want = backend.model(
            image_embeddings=payload, input_points=coords, input_labels=labels, multimask_output=True
        )
        masks, iou = PromptBatchDecoder(backend.model).eval()(coords, labels, EVERY, *image_inputs(payload))
    assert masks.shape == want.pred_masks[0].shape and iou.shape == want.iou_scores[0].shape
    scale = float(want.pred_masks.abs().max())
    assert float((masks - want.pred_masks[0]).abs().max()) <= 1e-4 * scale
    assert float((iou - want.iou_scores[0]).abs().max()) <= 1e-5
    # Not a copy of one prompt's answer: the prompts' masks differ from each other.
    if prompts > 1:
        assert not torch.allclose(masks[0], masks[1])


def test_decoder_upscales_only_prompts_above_the_iou_floor(backend):
    """The prompts whose best predicted IoU is at or below the floor get zero masks; the
    others get the masks they get with no floor, and every prompt gets its IoUs."""
    payload, side = _embedding(backend, 0)
    coords = torch.rand(1, 6, 1, 2, generator=torch.Generator().manual_seed(7)) * (side - 1)
    labels = torch.ones(1, 6, 1, dtype=torch.int64)
    decoder = PromptBatchDecoder(backend.model).eval()
    with torch.inference_mode():
        every, iou = decoder(coords, labels, EVERY, *image_inputs(payload))
        best = iou.amax(dim=1)
        floor = best.median()
        masks, iou_floored = decoder(coords, labels, floor.reshape(1), *image_inputs(payload))
    kept = best > floor
    assert 0 < int(kept.sum()) < 6
    assert torch.equal(iou_floored, iou)
    assert not masks[~kept].any()
    assert torch.allclose(masks[kept], every[kept], atol=1e-5 * float(every.abs().max()))


def test_image_inputs_follow_the_payload(backend):
    """Two images give two sets of inputs (the runtime keys them on the payload), and
    SAM 2's high-resolution levels come laid out by output offset, coarser first."""
    first, _ = _embedding(backend, 0)
    second, _ = _embedding(backend, 1)
    a, b = image_inputs(first), image_inputs(second)
    assert len(a) == (3 if backend.family == "sam2" else 1)
    assert not torch.equal(a[0], b[0])
    if backend.family == "sam2":
        h, w = a[0].shape[-2:]
        assert a[1].shape == (4, h * w, first[1].shape[1]) and a[2].shape == (16, h * w, first[0].shape[1])
        # Offset by offset: the fine level's offset (1, 0, 0, 1) (row 4y + 2 + 0, column
        # 4x + 0 + 1) is the pixel grid taken from there with a stride of 4.
        assert torch.equal(a[2][8 + 1].reshape(h, w, -1), first[0][0, :, 2::4, 1::4].permute(1, 2, 0))
        assert torch.equal(a[1][2].reshape(h, w, -1), first[1][0, :, 1::2, 0::2].permute(1, 2, 0))
