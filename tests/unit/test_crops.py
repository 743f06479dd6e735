"""Region crops: masking, square padding, centring, resizing, fills and input checks."""

from __future__ import annotations

import numpy as np
import pytest

from seglens.core.crops import NEUTRAL_GREY_RGB, region_crop, region_crops
from seglens.core.masks import encode_mask

GREY = np.asarray(NEUTRAL_GREY_RGB, dtype=np.uint8)
RED = np.asarray((255, 0, 0), dtype=np.uint8)


def _scene() -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    """A 60x80 image of random noise with a red 10x20 (h x w) rectangle at x 30..50,
    y 20..30; the mask is the rectangle, its box (30, 20, 50, 30)."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(60, 80, 3), dtype=np.uint8)
    mask = np.zeros((60, 80), dtype=bool)
    mask[20:30, 30:50] = True
    image[mask] = RED
    return image, mask, (30, 20, 50, 30)


def test_region_crop_returns_square_uint8():
    image, mask, box = _scene()
    crop = region_crop(image, mask, box)
    assert crop.shape == (20, 20, 3)
    assert crop.dtype == np.uint8
    assert crop.flags["C_CONTIGUOUS"]


def test_region_crop_pads_centred_with_grey_and_preserves_aspect():
    image, mask, box = _scene()
    crop = region_crop(image, mask, box)
    # The 10x20 region sits in rows 5..15 of the 20x20 square, full width.
    assert (crop[5:15] == RED).all()
    assert (crop[:5] == GREY).all()
    assert (crop[15:] == GREY).all()


def test_region_crop_paints_pixels_outside_mask_grey():
    image, _, _ = _scene()
    mask = np.zeros((60, 80), dtype=bool)
    mask[10:40, 10:40] = True
    mask[10:25, 10:25] = False  # an L shape: the top-left quarter of its box is not the region
    crop = region_crop(image, mask, (10, 10, 40, 40))
    assert crop.shape == (30, 30, 3)
    assert (crop[:15, :15] == GREY).all()
    np.testing.assert_array_equal(crop[15:, :], image[25:40, 10:40])
    np.testing.assert_array_equal(crop[:15, 15:], image[10:25, 25:40])


def test_region_crop_centres_tall_region_horizontally():
    image = np.full((50, 50, 3), 200, dtype=np.uint8)
    mask = np.zeros((50, 50), dtype=bool)
    mask[0:9, 0:4] = True
    crop = region_crop(image, mask, (0, 0, 4, 9))
    assert crop.shape == (9, 9, 3)
    # 5 columns of padding split 2 left, 3 right.
    assert (crop[:, :2] == GREY).all()
    assert (crop[:, 2:6] == 200).all()
    assert (crop[:, 6:] == GREY).all()


def test_region_crop_resizes_to_out_size():
    image, mask, box = _scene()
    crop = region_crop(image, mask, box, out_size=64)
    assert crop.shape == (64, 64, 3)
    assert crop.dtype == np.uint8
    # Centre stays red, corners stay grey after bicubic resizing.
    assert (crop[32, 32] == RED).all()
    assert (crop[0, 0] == GREY).all()


def test_region_crop_context_adds_margin():
    image, mask, box = _scene()
    crop = region_crop(image, mask, box, context=0.5)
    # 20x10 box widened by 10 px left/right and 5 px top/bottom: 40x20, padded to 40x40.
    assert crop.shape == (40, 40, 3)
    assert (crop[15:25, 10:30] == RED).all()
    assert (crop[15:25, :10] == GREY).all()


def test_region_crop_blur_fill_differs_from_grey_but_keeps_region():
    image, mask, box = _scene()
    grey = region_crop(image, mask, box, context=0.5)
    blur = region_crop(image, mask, box, context=0.5, fill="blur")
    assert blur.shape == grey.shape
    np.testing.assert_array_equal(blur[15:25, 10:30], grey[15:25, 10:30])
    background = np.ones((40, 40), dtype=bool)
    background[15:25, 10:30] = False
    background[:10] = background[30:] = False  # square padding rows are grey in both
    assert not np.array_equal(blur[background], grey[background])


def test_region_crop_clips_box_to_image_and_handles_fractional_box():
    image, mask, _ = _scene()
    crop = region_crop(image, mask, (25.5, 15.2, 200.0, 34.7))
    # Widened to whole pixels (25, 15, 80, 35) after clipping: 55x20, padded to 55x55.
    assert crop.shape == (55, 55, 3)


def test_region_crop_uses_mask_box_when_box_is_none():
    image, mask, box = _scene()
    np.testing.assert_array_equal(region_crop(image, mask, None), region_crop(image, mask, box))


@pytest.mark.parametrize("box", [(10, 10, 10, 20), (90, 90, 100, 100), (30, 20, 20, 10)])
def test_region_crop_returns_grey_square_for_empty_box(box):
    image, mask, _ = _scene()
    crop = region_crop(image, mask, box)
    assert crop.shape == (1, 1, 3)
    assert (crop == GREY).all()
    assert region_crop(image, mask, box, out_size=16).shape == (16, 16, 3)


def test_region_crop_returns_grey_square_for_empty_mask():
    image, _, box = _scene()
    empty = np.zeros((60, 80), dtype=bool)
    for fill in ("grey", "blur"):
        crop = region_crop(image, empty, box, fill=fill)  # type: ignore[arg-type]
        assert crop.shape == (20, 20, 3)
        assert (crop == GREY).all()
    assert (region_crop(image, empty, None, out_size=8) == GREY).all()


def test_region_crop_accepts_integer_mask():
    image, mask, box = _scene()
    np.testing.assert_array_equal(
        region_crop(image, mask.astype(np.uint8), box), region_crop(image, mask, box)
    )


@pytest.mark.parametrize(
    ("image", "mask", "box", "kwargs", "message"),
    [
        (np.zeros((10, 10), np.uint8), np.zeros((10, 10), bool), (0, 0, 5, 5), {}, "shape"),
        (np.zeros((10, 10, 3), np.float32), np.zeros((10, 10), bool), (0, 0, 5, 5), {}, "uint8"),
        ("image", np.zeros((10, 10), bool), (0, 0, 5, 5), {}, "numpy array"),
        (np.zeros((10, 10, 3), np.uint8), np.zeros((10, 11), bool), (0, 0, 5, 5), {}, "mask"),
        (np.zeros((10, 10, 3), np.uint8), np.zeros((10, 10), bool), (0, 0, 5), {}, "box_xyxy"),
        (
            np.zeros((10, 10, 3), np.uint8),
            np.zeros((10, 10), bool),
            (0, 0, 5, np.nan),
            {},
            "finite",
        ),
        (
            np.zeros((10, 10, 3), np.uint8),
            np.zeros((10, 10), bool),
            (0, 0, 5, 5),
            {"fill": "x"},
            "fill",
        ),
        (
            np.zeros((10, 10, 3), np.uint8),
            np.zeros((10, 10), bool),
            (0, 0, 5, 5),
            {"context": -1},
            "context",
        ),
        (
            np.zeros((10, 10, 3), np.uint8),
            np.zeros((10, 10), bool),
            (0, 0, 5, 5),
            {"out_size": 0},
            "out_size",
        ),
        (
            np.zeros((10, 10, 3), np.uint8),
            np.zeros((10, 10), bool),
            (0, 0, 5, 5),
            {"out_size": 2.5},
            "out_size",
        ),
    ],
)
def test_region_crop_rejects_bad_input(image, mask, box, kwargs, message):
    with pytest.raises(ValueError, match=message):
        region_crop(image, mask, box, **kwargs)


def test_region_crops_decodes_rles_and_matches_single_crops():
    image, mask, box = _scene()
    other = np.zeros((60, 80), dtype=bool)
    other[40:58, 5:15] = True
    rles = [encode_mask(mask), encode_mask(other)]
    boxes = np.asarray([box, (5, 40, 15, 58)], dtype=np.float32)
    crops = region_crops(image, rles, boxes, fill="blur", context=0.1)
    assert len(crops) == 2
    np.testing.assert_array_equal(crops[0], region_crop(image, mask, box, fill="blur", context=0.1))
    np.testing.assert_array_equal(
        crops[1], region_crop(image, other, (5, 40, 15, 58), fill="blur", context=0.1)
    )
    stacked = region_crops(image, np.stack([mask, other]), None, out_size=32)
    assert [c.shape for c in stacked] == [(32, 32, 3), (32, 32, 3)]


def test_region_crops_handles_no_regions():
    image, _, _ = _scene()
    assert region_crops(image, [], np.zeros((0, 4))) == []


def test_region_crops_rejects_mismatched_inputs():
    image, mask, box = _scene()
    with pytest.raises(ValueError, match="shape"):
        region_crops(image, [mask, mask], [box])
    wrong_size = encode_mask(np.zeros((10, 10), dtype=bool))
    with pytest.raises(ValueError, match="size"):
        region_crops(image, [wrong_size], [box])
