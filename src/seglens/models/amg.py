"""Automatic mask generation on top of any `MaskDecoderBackend` (`models.sam.SamBackend`
is one; this module does not import it).

The algorithm is Segment Anything's (and transformers' ``pipeline("mask-generation")``):
a grid of single-point prompts per crop, three candidate masks per point, filters on the
predicted IoU and the stability score, removal of masks cut by a crop edge, then box NMS.
Two things differ, and neither changes the result:

- the predicted-IoU filter runs *before* the low-resolution logits are upscaled to the
  image size, so rejected candidates cost nothing (the pipeline upscales every candidate);
  a backend may go further and skip the decoder's own upscaling for a point whose three
  candidates all fail it (`iou_floor`; the ONNX backend does);
- upscaling runs in small chunks, so peak memory stays flat whatever `points_per_batch`.

SegLens also keeps generation-time NMS loose (`box_nms_thresh`, default 0.9) so that the
query-time region-merging threshold decides what merges.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import numpy as np

from seglens.core.geometry import box_nms, crop_boxes_xyxy, point_grid
from seglens.core.masks import encode_masks
from seglens.core.types import CocoRle, GenerationParams, Regions
from seglens.models.protocols import ImageEmbedding, Proposal

__all__ = ["MaskDecoderBackend", "PreparedImage", "generate_regions"]


class PreparedImage(Protocol):
    """An image ready for the image encoder: `pixel_values` (1, 3, S, S) tensor, the
    image's `original_hw` and the `reshaped_hw` it was resized to before padding."""

    @property
    def pixel_values(self) -> Any: ...

    @property
    def original_hw(self) -> tuple[int, int]: ...

    @property
    def reshaped_hw(self) -> tuple[int, int]: ...


class MaskDecoderBackend(Protocol):
    """What automatic mask generation needs of a SAM-family model: preprocess, encode
    once, decode point prompts in batches, upscale low-resolution logits."""

    @property
    def model_id(self) -> str: ...

    def prepare(self, image: np.ndarray) -> PreparedImage:
        """(H, W, 3) uint8 RGB → the encoder's input."""
        ...

    def encode_pixels(self, pixel_values: Any) -> Any:
        """The image embedding payload of `pixel_values`."""
        ...

    def to_input_coords(
        self, xy: np.ndarray, original_hw: tuple[int, int], reshaped_hw: tuple[int, int]
    ) -> np.ndarray:
        """(N, 2) pixel coordinates of the original image → the encoder's input frame."""
        ...

    def decode(
        self,
        payload: Any,
        points: Any,
        labels: Any,
        boxes: Any,
        multimask: bool,
        iou_floor: float | None = None,
    ) -> tuple[Any, Any]:
        """Low-resolution mask logits and predicted IoUs of the prompts. A prompt whose
        predicted IoUs are all at or below `iou_floor` may get zero logits (not computed):
        the predicted-IoU filter drops its masks anyway."""
        ...

    def upscale(self, low_res: Any, original_hw: tuple[int, int], reshaped_hw: tuple[int, int]) -> Any:
        """(K, h, w) low-resolution logits → (K, H, W) logits at the original size."""
        ...


_UPSCALE_CHUNK = 16
_EDGE_ATOL_PX = 20.0


def _stability(logits: Any, mask_threshold: float, offset: float) -> Any:
    import torch

    # Same arithmetic as SAM: one thresholded mask is always inside the other.
    inter = (logits > (mask_threshold + offset)).sum(-1, dtype=torch.int16).sum(-1, dtype=torch.int32)
    union = (logits > (mask_threshold - offset)).sum(-1, dtype=torch.int16).sum(-1, dtype=torch.int32)
    return inter / union


def _boxes_inclusive(masks: Any) -> Any:
    """(K, H, W) bool → (K, 4) int64 boxes with inclusive right/bottom (SAM's convention);
    zeros for an empty mask."""
    import torch

    _k, h, w = masks.shape
    rows = masks.any(dim=2)
    cols = masks.any(dim=1)
    ar_h = torch.arange(h, device=masks.device)
    ar_w = torch.arange(w, device=masks.device)
    bottom = (rows * ar_h).amax(dim=1)
    top = torch.where(rows, ar_h, h).amin(dim=1)
    right = (cols * ar_w).amax(dim=1)
    left = torch.where(cols, ar_w, w).amin(dim=1)
    boxes = torch.stack([left, top, right, bottom], dim=1)
    empty = ~rows.any(dim=1)
    boxes[empty] = 0
    return boxes


def _near_crop_edge(
    boxes: np.ndarray, crop: tuple[int, int, int, int], image_hw: tuple[int, int]
) -> np.ndarray:
    """Boxes (crop-relative, inclusive) touching a crop edge that is not an image edge."""
    x0, y0, _, _ = crop
    shifted = boxes.astype(np.float32) + np.asarray([x0, y0, x0, y0], np.float32)
    crop_arr = np.asarray(crop, np.float32)
    image_arr = np.asarray([0, 0, image_hw[1], image_hw[0]], np.float32)
    near_crop = np.abs(shifted - crop_arr) <= _EDGE_ATOL_PX
    near_image = np.abs(shifted - image_arr) <= _EDGE_ATOL_PX
    return (near_crop & ~near_image).any(axis=1)


class _Collected:
    def __init__(self) -> None:
        self.rles: list[CocoRle] = []
        self.areas: list[np.ndarray] = []
        self.boxes: list[np.ndarray] = []
        self.iou: list[np.ndarray] = []
        self.stability: list[np.ndarray] = []
        self.points: list[np.ndarray] = []


def generate_regions(backend: MaskDecoderBackend, image: np.ndarray, params: GenerationParams) -> Proposal:
    """Cut an (H, W, 3) uint8 image into candidate regions.

    Returns regions sorted by predicted IoU (best first), the full-image embedding (for
    later prompts) and timings in ms for ``preprocess``, ``image_encoder``,
    ``mask_decoder`` and ``postprocess``.
    """
    import torch

    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
    image_hw = (int(image.shape[0]), int(image.shape[1]))
    timings = {"preprocess": 0.0, "image_encoder": 0.0, "mask_decoder": 0.0, "postprocess": 0.0}
    crops, layers = crop_boxes_xyxy(image_hw, params.crop_n_layers, params.crop_overlap_ratio)
    grids = [
        point_grid(int(params.points_per_side / (params.crop_n_points_downscale_factor**i)))
        for i in range(params.crop_n_layers + 1)
    ]
    collected = _Collected()
    full_embedding: ImageEmbedding | None = None

    for crop, layer in zip(crops, layers, strict=True):
        x0, y0, x1, y1 = crop
        tick = time.perf_counter()
        crop_image = np.ascontiguousarray(image[y0:y1, x0:x1])
        prepared = backend.prepare(crop_image)
        timings["preprocess"] += (time.perf_counter() - tick) * 1000
        tick = time.perf_counter()
        payload = backend.encode_pixels(prepared.pixel_values)
        timings["image_encoder"] += (time.perf_counter() - tick) * 1000
        if layer == 0:
            full_embedding = ImageEmbedding(backend.model_id, image_hw, (payload, prepared.reshaped_hw))

        crop_hw = prepared.original_hw
        points_px = grids[layer] * np.asarray([crop_hw[1], crop_hw[0]], np.float32)
        points_in = backend.to_input_coords(points_px, crop_hw, prepared.reshaped_hw)
        for start in range(0, len(points_in), params.points_per_batch):
            batch = points_in[start : start + params.points_per_batch]
            tick = time.perf_counter()
            pts = torch.from_numpy(batch)[None, :, None, :]
            labels = torch.ones((1, len(batch), 1), dtype=torch.int64)
            floor = params.pred_iou_thresh if params.pred_iou_thresh > 0.0 else None
            low_res, iou = backend.decode(payload, pts, labels, None, multimask=True, iou_floor=floor)
            timings["mask_decoder"] += (time.perf_counter() - tick) * 1000

            tick = time.perf_counter()
            _filter_batch(
                backend,
                params,
                low_res,
                iou,
                points_px[start : start + len(batch)],
                crop,
                image_hw,
                prepared,
                collected,
            )
            timings["postprocess"] += (time.perf_counter() - tick) * 1000

    tick = time.perf_counter()
    regions = _assemble(collected, image_hw, params)
    timings["postprocess"] += (time.perf_counter() - tick) * 1000
    return Proposal(regions=regions, embedding=full_embedding, timings_ms=timings)


def _filter_batch(
    backend: MaskDecoderBackend,
    params: GenerationParams,
    low_res: Any,
    iou: Any,
    points_px: np.ndarray,
    crop: tuple[int, int, int, int],
    image_hw: tuple[int, int],
    prepared: PreparedImage,
    out: _Collected,
) -> None:
    import torch

    n_points, n_masks = iou.shape
    low_res = low_res.flatten(0, 1)
    iou = iou.flatten(0, 1)
    point_index = torch.arange(n_points).repeat_interleave(n_masks)
    keep = torch.ones_like(iou, dtype=torch.bool)
    if params.pred_iou_thresh > 0.0:
        keep &= iou > params.pred_iou_thresh
    if not bool(keep.any()):
        return
    low_res, iou, point_index = low_res[keep], iou[keep], point_index[keep.cpu()]

    for start in range(0, len(iou), _UPSCALE_CHUNK):
        logits = backend.upscale(
            low_res[start : start + _UPSCALE_CHUNK], prepared.original_hw, prepared.reshaped_hw
        )
        chunk_iou = iou[start : start + _UPSCALE_CHUNK]
        chunk_points = point_index[start : start + _UPSCALE_CHUNK]
        stability = _stability(logits, params.mask_threshold, params.stability_score_offset)
        keep = torch.ones_like(chunk_iou, dtype=torch.bool)
        if params.stability_score_thresh > 0.0:
            keep &= stability > params.stability_score_thresh
        if not bool(keep.any()):
            continue
        masks = logits[keep] > params.mask_threshold
        boxes = _boxes_inclusive(masks).cpu().numpy()
        edge = _near_crop_edge(boxes, crop, image_hw)
        areas = masks.sum(dim=(1, 2)).cpu().numpy()
        final = ~edge
        if params.min_region_area > 0:
            final &= areas >= params.min_region_area
        if not final.any():
            continue
        masks_np = masks.cpu().numpy()[final]
        x0, y0, x1, y1 = crop
        if (x0, y0, x1, y1) != (0, 0, image_hw[1], image_hw[0]):
            padded = np.zeros((len(masks_np), *image_hw), dtype=bool)
            padded[:, y0:y1, x0:x1] = masks_np
            masks_np = padded
        shift = np.asarray([x0, y0, x0, y0], np.int64)
        # Encode at once: a full-size boolean stack of every candidate would dominate memory.
        out.rles.extend(encode_masks(masks_np))
        out.areas.append(areas[final].astype(np.int64))
        out.boxes.append(boxes[final] + shift)
        out.iou.append(chunk_iou[keep].cpu().numpy()[final].astype(np.float32))
        out.stability.append(stability[keep].cpu().numpy()[final].astype(np.float32))
        out.points.append(
            points_px[chunk_points[keep.cpu()].numpy()[final]] + np.asarray([x0, y0], np.float32)
        )


def _assemble(collected: _Collected, image_hw: tuple[int, int], params: GenerationParams) -> Regions:
    if not collected.rles:
        return Regions.empty(image_hw)
    boxes_incl = np.concatenate(collected.boxes)
    iou = np.concatenate(collected.iou)
    # NMS on SAM's inclusive boxes, scored by predicted IoU: the order is best first even
    # when nothing is suppressed (box_nms_thresh 1.0).
    order = box_nms(boxes_incl.astype(np.float32), iou, params.box_nms_thresh)
    boxes_xyxy = boxes_incl[order].astype(np.float32) + np.asarray([0, 0, 1, 1], np.float32)
    return Regions(
        image_size_hw=image_hw,
        rles=tuple(collected.rles[i] for i in order),
        boxes_xyxy=boxes_xyxy,
        areas=np.concatenate(collected.areas)[order],
        predicted_iou=iou[order],
        stability=np.concatenate(collected.stability)[order],
        points_xy=np.concatenate(collected.points)[order].astype(np.float32),
    )
