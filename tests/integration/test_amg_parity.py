"""Parity of SegLens' mask generation with transformers' pipeline("mask-generation").

The pipeline's last step (box NMS) imports torchvision, which SegLens does not need, so the
reference runs the pipeline's own `preprocess` and `forward` stages (pre-NMS candidates)
and applies no NMS; SegLens runs with `box_nms_thresh=1.0` (NMS off). Tolerance: the two
must give the same number of regions in the same order, predicted IoUs within 1e-6, every
mask with IoU >= 0.999 against its reference (decoding and bilinear upscaling a different
number of prompts at once rounds differently in the last bit, which flips an occasional pixel whose
logit sits at the threshold: random weights put many there) and boxes within 1 px
(SegLens' boxes are exclusive, SAM's inclusive).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from seglens.core.masks import decode_rle
from seglens.core.types import GenerationParams
from seglens.models.device import select_device
from seglens.models.sam import load_sam
from seglens.models.tiny import build_tiny_sam


def _uncompressed_to_mask(rle: dict) -> np.ndarray:
    h, w = rle["size"]
    flat = np.zeros(h * w, dtype=bool)
    pos, value = 0, False
    for count in rle["counts"]:
        flat[pos : pos + count] = value
        pos += count
        value = not value
    return flat.reshape(w, h).T


def _reference(model_dir, image: np.ndarray, params: GenerationParams):
    from transformers import pipeline

    generator = pipeline("mask-generation", model=str(model_dir), device="cpu")
    masks, scores, boxes = [], [], []
    chunks = generator.preprocess(
        Image.fromarray(image),
        points_per_batch=params.points_per_batch,
        points_per_crop=params.points_per_side,
        crops_n_layers=params.crop_n_layers,
        crop_overlap_ratio=params.crop_overlap_ratio,
    )
    for chunk in chunks:
        out = generator.forward(
            chunk,
            pred_iou_thresh=params.pred_iou_thresh,
            stability_score_thresh=params.stability_score_thresh,
            mask_threshold=params.mask_threshold,
            stability_score_offset=params.stability_score_offset,
        )
        masks.extend(_uncompressed_to_mask(r) for r in out["masks"])
        scores.append(out["iou_scores"].float())
        boxes.append(out["boxes"])
    return masks, torch.cat(scores).numpy(), torch.cat(boxes).numpy()


@pytest.fixture(scope="module")
def tiny_sam_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "tiny-sam"
    path.mkdir()
    build_tiny_sam(path)
    return path


@pytest.mark.parametrize(
    "params",
    [
        GenerationParams(
            points_per_side=8,
            pred_iou_thresh=0.0,
            stability_score_thresh=0.0,
            min_region_area=0,
            box_nms_thresh=1.0,
        ),
        # Random weights predict IoUs near 0: a threshold of 0.0005 keeps about half.
        GenerationParams(
            points_per_side=6,
            points_per_batch=16,
            pred_iou_thresh=0.0005,
            stability_score_thresh=0.0,
            min_region_area=0,
            box_nms_thresh=1.0,
        ),
        GenerationParams(
            points_per_side=4,
            pred_iou_thresh=0.0,
            stability_score_thresh=0.0,
            min_region_area=0,
            box_nms_thresh=1.0,
            crop_n_layers=1,
        ),
    ],
    ids=["grid8", "iou-filter", "crop-layer"],
)
def test_generate_regions_matches_transformers_pipeline(tiny_sam_dir, params):
    import skimage.data

    image = skimage.data.chelsea()
    backend = load_sam(tiny_sam_dir, select_device("cpu"))
    regions = backend.propose(image, params).regions
    ref_masks, ref_scores, ref_boxes = _reference(tiny_sam_dir, image, params)

    assert len(regions) == len(ref_masks) > 0
    order = np.argsort(-ref_scores, kind="stable")
    np.testing.assert_allclose(regions.predicted_iou, ref_scores[order], atol=1e-6)
    worst_iou = 1.0
    for i, j in enumerate(order):
        ours, ref = decode_rle(regions.rles[i]), ref_masks[j]
        union = np.logical_or(ours, ref).sum()
        worst_iou = min(worst_iou, np.logical_and(ours, ref).sum() / union if union else 1.0)
    assert worst_iou >= 0.999
    np.testing.assert_allclose(regions.boxes_xyxy, ref_boxes[order] + np.array([0, 0, 1, 1]), atol=1)
    if params.pred_iou_thresh > 0:
        assert len(regions) < 3 * params.points_per_side**2
