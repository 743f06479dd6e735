"""What a client-side viewer needs to redo matching and painting itself.

A browser viewer receives an image's candidate regions once and then recomputes
thresholding and merging (`seglens.core.matching.match_regions`) on every slider move
without asking the server. Two things here make that exact and cheap:

- `display_runs`: every region's mask at display resolution as row-major run lengths
  (a compact form a canvas can paint from without decoding COCO's column-major RLE);
- `overlap_pairs`: the integer overlaps of the coarse masks that `match_regions` merges by
  (`seglens.core.masks.coarse_masks`), as a sparse list of the pairs that overlap at all.
  The client computes ``inter / (area_i + area_j - inter)`` in float64, which is the very
  number `coarse_iou_matrix` compares with the merging threshold.

Pure numpy; arrays are little-endian so they can be sent as raw bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pycocotools import mask as mask_utils

from seglens.core.types import CocoRle

__all__ = ["DisplayRuns", "OverlapPairs", "display_runs", "display_size", "overlap_pairs"]

_CHUNK = 16


@dataclass(frozen=True)
class DisplayRuns:
    """Region masks at ``(height, width)`` display size as row-major run lengths.

    Region ``i``'s runs are ``runs[offsets[i]:offsets[i + 1]]``: alternating lengths of
    outside and inside pixels over the flattened (row-major) display grid, starting with
    outside (possibly 0) and summing to ``height * width``. `offsets` (N + 1,) and `runs`
    are uint32.
    """

    size_hw: tuple[int, int]
    offsets: np.ndarray
    runs: np.ndarray


@dataclass(frozen=True)
class OverlapPairs:
    """Sparse overlaps of the N coarse masks: for each pair ``first[k] < second[k]`` whose
    masks share at least one coarse pixel, `intersection[k]` pixels; `areas` (N,) is each
    coarse mask's pixel count. All uint32; IoU = inter / (areas[i] + areas[j] - inter)."""

    first: np.ndarray
    second: np.ndarray
    intersection: np.ndarray
    areas: np.ndarray


def display_size(size_hw: tuple[int, int], max_side_px: int) -> tuple[int, int]:
    """The (height, width) of an image of `size_hw` shrunk so its longer side is at most
    `max_side_px` (never enlarged; each side at least 1)."""
    height, width = int(size_hw[0]), int(size_hw[1])
    if max_side_px < 1:
        raise ValueError(f"max_side_px must be >= 1, got {max_side_px}")
    scale = min(1.0, max_side_px / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def display_runs(rles: Sequence[CocoRle], size_hw: tuple[int, int]) -> DisplayRuns:
    """Sample every mask at the centres of a `size_hw` grid (nearest neighbour) and
    run-length encode it row-major. RLEs must share one size; decoded `_CHUNK` at a time so
    memory stays bounded on large images."""
    height, width = int(size_hw[0]), int(size_hw[1])
    if height < 1 or width < 1:
        raise ValueError(f"display size must be positive, got {size_hw}")
    offsets = np.zeros(len(rles) + 1, np.uint32)
    if not rles:
        return DisplayRuns((height, width), offsets, np.zeros(0, np.uint32))
    full_h, full_w = (int(v) for v in rles[0]["size"])
    if any(tuple(r["size"]) != (full_h, full_w) for r in rles):
        raise ValueError("display_runs needs RLEs of one size")
    ys = np.minimum(((np.arange(height) + 0.5) * full_h / height).astype(np.int64), full_h - 1)
    xs = np.minimum(((np.arange(width) + 0.5) * full_w / width).astype(np.int64), full_w - 1)
    parts: list[np.ndarray] = []
    total = 0
    for start in range(0, len(rles), _CHUNK):
        chunk = [
            {"size": list(r["size"]), "counts": r["counts"].encode("ascii")}
            for r in rles[start : start + _CHUNK]
        ]
        decoded = mask_utils.decode(chunk)  # (H, W, n) Fortran-ordered
        sampled = decoded[ys][:, xs]  # (h, w, n)
        for k in range(sampled.shape[2]):
            runs = _row_major_runs(sampled[:, :, k])
            parts.append(runs)
            total += len(runs)
            offsets[start + k + 1] = total
    return DisplayRuns((height, width), offsets, np.concatenate(parts).astype(np.uint32))


def _row_major_runs(mask: np.ndarray) -> np.ndarray:
    flat = np.ascontiguousarray(mask).reshape(-1).astype(np.int8)
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate(([0], changes, [flat.size]))
    runs = np.diff(bounds)
    if flat.size and flat[0]:
        runs = np.concatenate(([0], runs))
    return runs.astype(np.uint32)


def overlap_pairs(coarse: np.ndarray) -> OverlapPairs:
    """The overlapping pairs of (N, h, w) bool coarse masks (from `coarse_masks`).

    The counts are exact integers (a coarse grid has at most 256 x 256 cells, far below
    float32's 2**24), computed a block of rows at a time."""
    if coarse.ndim != 3:
        raise ValueError(f"expected (N, h, w) masks, got shape {coarse.shape}")
    n = len(coarse)
    flat = coarse.reshape(n, -1).astype(np.float32)
    areas = flat.sum(axis=1).astype(np.uint32)
    firsts, seconds, inters = [], [], []
    block = 256
    for start in range(0, n, block):
        inter = flat[start : start + block] @ flat.T  # (b, N)
        rows, cols = np.nonzero(inter > 0)
        rows = rows + start
        keep = cols > rows
        firsts.append(rows[keep])
        seconds.append(cols[keep])
        inters.append(inter[rows[keep] - start, cols[keep]])
    if not firsts:
        empty = np.zeros(0, np.uint32)
        return OverlapPairs(empty, empty, empty, areas)
    return OverlapPairs(
        first=np.concatenate(firsts).astype(np.uint32),
        second=np.concatenate(seconds).astype(np.uint32),
        intersection=np.rint(np.concatenate(inters)).astype(np.uint32),
        areas=areas,
    )
