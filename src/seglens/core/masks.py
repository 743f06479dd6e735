"""Binary masks and COCO RLE: encode, decode, areas, boxes, IoU, unions.

All masks here are boolean or uint8 arrays of shape (H, W) or stacks (N, H, W); RLEs are
`CocoRle` dicts with string counts (JSON-ready). pycocotools does the run-length work in C.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pycocotools import mask as mask_utils

from seglens.core.types import CocoRle

__all__ = [
    "coarse_iou_matrix",
    "coarse_masks",
    "decode_rle",
    "decode_rles",
    "encode_mask",
    "encode_masks",
    "mask_boxes_xyxy",
    "rle_areas",
    "rle_boxes_xyxy",
    "rle_iou_matrix",
    "rle_union",
]


def _to_coco(rle: CocoRle) -> dict[str, object]:
    return {"size": list(rle["size"]), "counts": rle["counts"].encode("ascii")}


def _from_coco(rle: dict[str, object]) -> CocoRle:
    counts = rle["counts"]
    text = counts.decode("ascii") if isinstance(counts, bytes) else str(counts)
    size = rle["size"]
    assert isinstance(size, list | tuple)
    return CocoRle(size=[int(size[0]), int(size[1])], counts=text)


def encode_masks(masks: np.ndarray) -> list[CocoRle]:
    """Encode a (N, H, W) boolean/uint8 stack into N RLEs."""
    if masks.ndim != 3:
        raise ValueError(f"expected (N, H, W) masks, got shape {masks.shape}")
    if masks.shape[0] == 0:
        return []
    # A C-ordered (N, W, H) array has the memory layout of a Fortran-ordered (H, W, N) one.
    fortran = np.ascontiguousarray(masks.transpose(0, 2, 1), dtype=np.uint8).T
    return [_from_coco(r) for r in mask_utils.encode(fortran)]


def encode_mask(mask: np.ndarray) -> CocoRle:
    """Encode one (H, W) mask."""
    if mask.ndim != 2:
        raise ValueError(f"expected an (H, W) mask, got shape {mask.shape}")
    return encode_masks(mask[None])[0]


def decode_rle(rle: CocoRle) -> np.ndarray:
    """Decode one RLE into a (H, W) bool array."""
    return mask_utils.decode(_to_coco(rle)).astype(bool)


def decode_rles(rles: Sequence[CocoRle]) -> np.ndarray:
    """Decode RLEs of one size into a (N, H, W) bool array."""
    if not rles:
        raise ValueError("decode_rles needs at least one RLE (the size is unknown otherwise)")
    stack = mask_utils.decode([_to_coco(r) for r in rles])
    return np.ascontiguousarray(stack.transpose(2, 0, 1)).astype(bool)


def rle_areas(rles: Sequence[CocoRle]) -> np.ndarray:
    """(N,) int64 pixel counts."""
    if not rles:
        return np.zeros((0,), np.int64)
    return np.asarray(mask_utils.area([_to_coco(r) for r in rles]), dtype=np.int64)


def rle_boxes_xyxy(rles: Sequence[CocoRle]) -> np.ndarray:
    """(N, 4) float32 boxes, exclusive right/bottom; empty masks give zeros."""
    if not rles:
        return np.zeros((0, 4), np.float32)
    xywh = np.asarray(mask_utils.toBbox([_to_coco(r) for r in rles]), dtype=np.float32)
    xywh = xywh.reshape(-1, 4)
    return np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)


def mask_boxes_xyxy(masks: np.ndarray) -> np.ndarray:
    """(N, 4) float32 boxes of a (N, H, W) stack, exclusive right/bottom; zeros if empty."""
    n = masks.shape[0]
    out = np.zeros((n, 4), np.float32)
    rows: np.ndarray = np.asarray(masks.any(axis=2))
    cols: np.ndarray = np.asarray(masks.any(axis=1))
    for i in range(n):
        ys = np.flatnonzero(rows[i])
        xs = np.flatnonzero(cols[i])
        if ys.size and xs.size:
            out[i] = (xs[0], ys[0], xs[-1] + 1, ys[-1] + 1)
    return out


def rle_iou_matrix(a: Sequence[CocoRle], b: Sequence[CocoRle]) -> np.ndarray:
    """(len(a), len(b)) float64 mask IoU."""
    if not a or not b:
        return np.zeros((len(a), len(b)), np.float64)
    coco_a = [_to_coco(r) for r in a]
    coco_b = [_to_coco(r) for r in b]
    iou = mask_utils.iou(coco_a, coco_b, [0] * len(coco_b))
    return np.asarray(iou, dtype=np.float64).reshape(len(a), len(b))


def rle_union(rles: Sequence[CocoRle]) -> CocoRle:
    """Pixel union of RLEs of one size."""
    if not rles:
        raise ValueError("rle_union needs at least one RLE")
    if len(rles) == 1:
        return rles[0]
    return _from_coco(mask_utils.merge([_to_coco(r) for r in rles], intersect=False))


def coarse_masks(rles: Sequence[CocoRle], max_side: int = 256) -> np.ndarray:
    """(N, h, w) bool masks sampled on a grid whose longer side is at most `max_side`
    (every k-th pixel), for overlap tests that must take milliseconds. SAM predicts masks at
    256 px and upsamples them, so little is lost at that resolution."""
    if not rles:
        return np.zeros((0, 1, 1), bool)
    height, width = rles[0]["size"]
    step = max(1, -(-max(height, width) // max_side))
    # Sample the (H, W, n) decode before anything copies it at full resolution.
    chunks = [
        mask_utils.decode([_to_coco(r) for r in rles[i : i + 32]])[::step, ::step, :].transpose(2, 0, 1)
        for i in range(0, len(rles), 32)
    ]
    return np.concatenate(chunks).astype(bool)


def coarse_iou_matrix(masks: np.ndarray) -> np.ndarray:
    """(N, N) float64 IoU of the (N, h, w) bool masks from `coarse_masks`."""
    flat = masks.reshape(len(masks), -1).astype(np.float32)
    inter = (flat @ flat.T).astype(np.float64)
    areas = np.diag(inter)
    union = areas[:, None] + areas[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
