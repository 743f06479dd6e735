"""Point grids, crop boxes and box non-maximum suppression (numpy)."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["box_iou_matrix", "box_nms", "crop_boxes_xyxy", "point_grid"]


def point_grid(n_per_side: int) -> np.ndarray:
    """(n*n, 2) float32 points evenly spaced in [0, 1]^2, cell centres, x varying fastest."""
    if n_per_side < 1:
        raise ValueError("n_per_side must be >= 1")
    offset = 1.0 / (2 * n_per_side)
    side = np.linspace(offset, 1 - offset, n_per_side, dtype=np.float32)
    xs = np.tile(side[None, :], (n_per_side, 1))
    ys = np.tile(side[:, None], (1, n_per_side))
    return np.stack([xs, ys], axis=-1).reshape(-1, 2)


def crop_boxes_xyxy(
    image_size_hw: tuple[int, int], n_layers: int, overlap_ratio: float
) -> tuple[list[tuple[int, int, int, int]], list[int]]:
    """Crop boxes for multi-layer mask generation: layer 0 is the whole image, layer i has
    (2**i)**2 overlapping crops. Returns boxes ``(x0, y0, x1, y1)`` and their layer index,
    in the order Segment Anything and transformers use."""
    height, width = image_size_hw
    boxes = [(0, 0, width, height)]
    layers = [0]
    short_side = min(height, width)
    for i_layer in range(n_layers):
        n_per_side = 2 ** (i_layer + 1)
        overlap = int(overlap_ratio * short_side * (2 / n_per_side))
        crop_w = math.ceil((overlap * (n_per_side - 1) + width) / n_per_side)
        crop_h = math.ceil((overlap * (n_per_side - 1) + height) / n_per_side)
        x0s = [int((crop_w - overlap) * i) for i in range(n_per_side)]
        y0s = [int((crop_h - overlap) * i) for i in range(n_per_side)]
        for x0 in x0s:
            for y0 in y0s:
                boxes.append((x0, y0, min(x0 + crop_w, width), min(y0 + crop_h, height)))
                layers.append(i_layer + 1)
    return boxes, layers


def box_iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) IoU of xyxy boxes (any consistent edge convention)."""
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def box_nms(boxes_xyxy: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS: indices of kept boxes, best score first. A box is dropped when its IoU
    with a kept, better box exceeds `iou_threshold`; a threshold of 1.0 keeps everything."""
    order = np.argsort(-scores, kind="stable")
    if iou_threshold >= 1.0 or len(order) <= 1:
        return order
    iou = box_iou_matrix(boxes_xyxy[order], boxes_xyxy[order])
    suppressed = np.zeros(len(order), dtype=bool)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(order[i])
        suppressed |= iou[i] > iou_threshold
    return np.asarray(keep, dtype=np.int64)
