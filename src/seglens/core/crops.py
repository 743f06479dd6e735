"""Region crops for the image-text embedder: cut a region out, neutralise its background,
pad it square.

CLIP-family models embed a whole picture, so a region is shown to them as a crop of its box
in which every pixel outside the mask is replaced (by CLIP's mean colour, or by a blurred
copy of the crop that keeps some context), padded to a square so that the model's
resize-and-centre-crop preprocessing sees the whole region undistorted.

Images are (H, W, 3) uint8 RGB; masks are (H, W) bool (any nonzero value counts as inside);
boxes are pixel ``[x0, y0, x1, y1)`` with exclusive right/bottom edges, as everywhere in
SegLens. Pure numpy + PIL.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Literal, cast

import numpy as np
from PIL import Image, ImageFilter

from seglens.core.masks import decode_rle, mask_boxes_xyxy
from seglens.core.types import CocoRle

__all__ = ["NEUTRAL_GREY_RGB", "CropFill", "region_crop", "region_crops"]

CropFill = Literal["grey", "blur"]

# CLIP's per-channel image mean (0.4815, 0.4578, 0.4082) in 0-255: after the model's
# normalisation these pixels are ~0, the least informative input it can see.
NEUTRAL_GREY_RGB: tuple[int, int, int] = (124, 116, 104)

# Gaussian blur radius for fill="blur", as a fraction of the crop's longer side (min 1 px):
# strong enough to remove texture and edges, weak enough to keep the colour layout.
_BLUR_RADIUS_FRACTION = 0.05


def region_crop(
    image: np.ndarray,
    mask: np.ndarray,
    box_xyxy: Sequence[float] | np.ndarray | None,
    *,
    fill: CropFill = "grey",
    context: float = 0.0,
    out_size: int | None = None,
) -> np.ndarray:
    """Crop one region to its box, replace what lies outside its mask, and pad it square.

    - `image`: (H, W, 3) uint8 RGB.
    - `mask`: (H, W) bool (or any integer/float array; nonzero is inside).
    - `box_xyxy`: ``[x0, y0, x1, y1)`` in pixels, exclusive right/bottom; fractional values
      are widened outward to whole pixels and the box is clipped to the image. ``None`` uses
      the mask's own bounding box.
    - `context`: relative margin added on every side, as a fraction of the box's width (left
      and right) and height (top and bottom); ``0.2`` widens a 100 px box to 140 px. It shows
      surroundings for ``fill="blur"`` and shrinks the region in the frame for ``"grey"``.
    - `fill`: ``"grey"`` paints pixels outside the mask `NEUTRAL_GREY_RGB`; ``"blur"`` paints
      them from a Gaussian-blurred copy of the crop. The square padding is always grey.
    - `out_size`: resize the square to ``out_size`` px with PIL bicubic; ``None`` keeps the
      side ``max(crop height, crop width)``.

    Returns a C-contiguous (S, S, 3) uint8 array, the crop centred (odd leftover padding
    goes to the bottom/right). A box that is empty after clipping, or a mask with no pixel
    inside the box, gives a plain grey square (side `out_size`, else the crop's side, else
    1). Raises ValueError for malformed inputs.
    """
    _check_image(image)
    inside = _check_mask(mask, image.shape[:2])
    _check_options(fill, context, out_size)
    box = mask_boxes_xyxy(inside[None])[0].astype(np.float64) if box_xyxy is None else _check_box(box_xyxy)
    return _crop(image, inside, box, fill, context, out_size)


def region_crops(
    image: np.ndarray,
    masks: Sequence[CocoRle | np.ndarray] | np.ndarray,
    boxes_xyxy: Sequence[Sequence[float]] | np.ndarray | None = None,
    *,
    fill: CropFill = "grey",
    context: float = 0.0,
    out_size: int | None = None,
) -> list[np.ndarray]:
    """`region_crop` for many regions of one image.

    `masks` is a sequence of COCO RLEs (decoded one at a time, so memory stays at one mask)
    or of (H, W) arrays, or a (N, H, W) stack; `boxes_xyxy` is (N, 4) or ``None`` (each mask's
    own box). Returns N arrays of shape (S_i, S_i, 3) uint8 (all (out_size, out_size, 3) when
    `out_size` is given). Raises ValueError for malformed inputs, a length mismatch, or an
    RLE whose size is not the image's.
    """
    _check_image(image)
    _check_options(fill, context, out_size)
    n = len(masks)
    boxes: np.ndarray | None = None
    if boxes_xyxy is not None:
        boxes = np.asarray(boxes_xyxy, dtype=np.float64)
        if boxes.ndim != 2 or boxes.shape[1] != 4 or boxes.shape[0] != n:
            raise ValueError(f"boxes_xyxy must have shape ({n}, 4) for {n} masks, got {boxes.shape}")
        if not np.isfinite(boxes).all():
            raise ValueError("boxes_xyxy must be finite")
    height, width = image.shape[:2]
    crops: list[np.ndarray] = []
    for i in range(n):
        item = masks[i]
        if isinstance(item, dict):
            size = [int(v) for v in item.get("size", ())]
            if size != [height, width]:
                raise ValueError(f"RLE {i} has size {size}, the image is {[height, width]}")
            inside = decode_rle(cast(CocoRle, item))
        else:
            inside = _check_mask(np.asarray(item), (height, width), name=f"masks[{i}]")
        box = mask_boxes_xyxy(inside[None])[0].astype(np.float64) if boxes is None else boxes[i]
        crops.append(_crop(image, inside, box, fill, context, out_size))
    return crops


def _crop(
    image: np.ndarray,
    inside: np.ndarray,
    box: np.ndarray,
    fill: CropFill,
    context: float,
    out_size: int | None,
) -> np.ndarray:
    height, width = image.shape[:2]
    out_size = None if out_size is None else int(out_size)
    x0, y0, x1, y1 = (float(v) for v in box)
    box_w, box_h = max(0.0, x1 - x0), max(0.0, y1 - y0)
    x0, x1 = x0 - context * box_w, x1 + context * box_w
    y0, y1 = y0 - context * box_h, y1 + context * box_h
    ix0, iy0 = max(0, math.floor(x0)), max(0, math.floor(y0))
    ix1, iy1 = min(width, math.ceil(x1)), min(height, math.ceil(y1))
    if ix1 <= ix0 or iy1 <= iy0 or box_w <= 0 or box_h <= 0:
        return _grey_square(out_size or 1)
    crop_mask = inside[iy0:iy1, ix0:ix1]
    side = max(iy1 - iy0, ix1 - ix0)
    if not crop_mask.any():
        return _grey_square(out_size or side)
    crop = image[iy0:iy1, ix0:ix1]
    if out_size is not None and side > out_size:
        # Shrink before composing: the work then scales with the output, not the region.
        scale = out_size / side
        new_w = max(1, round(crop.shape[1] * scale))
        new_h = max(1, round(crop.shape[0] * scale))
        crop = np.asarray(
            Image.fromarray(crop).resize((new_w, new_h), Image.Resampling.BILINEAR, reducing_gap=2.0)
        )
        rows = np.minimum(((np.arange(new_h) + 0.5) / scale).astype(np.intp), crop_mask.shape[0] - 1)
        cols = np.minimum(((np.arange(new_w) + 0.5) / scale).astype(np.intp), crop_mask.shape[1] - 1)
        crop_mask = crop_mask[np.ix_(rows, cols)]
        side = out_size
        if not crop_mask.any():
            return _grey_square(out_size)
    background = np.asarray(NEUTRAL_GREY_RGB, dtype=np.uint8) if fill == "grey" else _blur(crop)
    composed = np.where(crop_mask[..., None], crop, background).astype(np.uint8)
    square = _grey_square(side)
    top = (side - composed.shape[0]) // 2
    left = (side - composed.shape[1]) // 2
    square[top : top + composed.shape[0], left : left + composed.shape[1]] = composed
    if out_size is not None and out_size != side:
        resized = Image.fromarray(square).resize((out_size, out_size), Image.Resampling.BICUBIC)
        square = np.asarray(resized, dtype=np.uint8)
    return np.ascontiguousarray(square)


def _blur(crop: np.ndarray) -> np.ndarray:
    radius = max(1.0, _BLUR_RADIUS_FRACTION * max(crop.shape[0], crop.shape[1]))
    blurred = Image.fromarray(crop).filter(ImageFilter.GaussianBlur(radius))
    return np.asarray(blurred, dtype=np.uint8)


def _grey_square(side: int) -> np.ndarray:
    square = np.empty((side, side, 3), dtype=np.uint8)
    square[...] = NEUTRAL_GREY_RGB
    return square


def _check_image(image: object) -> None:
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a numpy array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must have shape (H, W, 3), got {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 RGB, got dtype {image.dtype}")


def _check_mask(mask: object, image_hw: tuple[int, ...], name: str = "mask") -> np.ndarray:
    if not isinstance(mask, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(mask).__name__}")
    if mask.shape != tuple(image_hw):
        raise ValueError(f"{name} has shape {mask.shape}, the image is {tuple(image_hw)}")
    if mask.dtype == bool:
        return mask
    if not (np.issubdtype(mask.dtype, np.integer) or np.issubdtype(mask.dtype, np.floating)):
        raise ValueError(f"{name} must be bool or numeric, got dtype {mask.dtype}")
    return mask != 0


def _check_box(box_xyxy: Sequence[float] | np.ndarray) -> np.ndarray:
    try:
        box = np.asarray(box_xyxy, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"box_xyxy must be 4 numbers, got {box_xyxy!r}") from exc
    if box.shape != (4,):
        raise ValueError(f"box_xyxy must be 4 numbers [x0, y0, x1, y1], got shape {box.shape}")
    if not np.isfinite(box).all():
        raise ValueError(f"box_xyxy must be finite, got {box.tolist()}")
    return box


def _check_options(fill: str, context: float, out_size: int | None) -> None:
    if fill not in ("grey", "blur"):
        raise ValueError(f"fill must be 'grey' or 'blur', got {fill!r}")
    if not (isinstance(context, numbers.Real) and math.isfinite(context) and context >= 0):
        raise ValueError(f"context must be a finite number >= 0, got {context!r}")
    if out_size is not None and (
        isinstance(out_size, bool) or not isinstance(out_size, numbers.Integral) or out_size < 1
    ):
        raise ValueError(f"out_size must be a positive integer or None, got {out_size!r}")
