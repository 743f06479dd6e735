"""Tests for seglens.core.render: overlays, colours, cut-outs and mask exports."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from skimage.morphology import diamond, erosion
from skimage.segmentation import find_boundaries

from seglens.core import fonts
from seglens.core.masks import encode_mask, rle_boxes_xyxy
from seglens.core.render import (
    PALETTE,
    keyword_colors,
    render_cutouts,
    render_mask_png,
    render_overlay,
)
from seglens.core.types import Match, Query, QueryParams, QueryResult

H, W = 120, 160
GREY = (128, 128, 128)


def _ellipse(cx: float, cy: float, rx: float, ry: float, shape: tuple[int, int] = (H, W)):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0


def _match(keyword: str, score: float, mask: np.ndarray, index: int = 0) -> Match:
    rle = encode_mask(mask)
    x0, y0, x1, y1 = (float(v) for v in rle_boxes_xyxy([rle])[0])
    return Match(keyword, score, 0.3, rle, (x0, y0, x1, y1), int(mask.sum()), (index,))


def _result(matches: list[Match], keywords: tuple[str, ...] | None = None, shape=(H, W)) -> QueryResult:
    if keywords is None:
        keywords = tuple(dict.fromkeys(m.keyword for m in matches))
    return QueryResult(
        query=Query(keywords),
        params=QueryParams(),
        image_size_hw=shape,
        num_regions=len(matches),
        matches=tuple(matches),
        image_matched=bool(matches),
    )


def _noise_image(shape=(H, W), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)


def _grey_image(shape=(H, W)) -> np.ndarray:
    return np.full((*shape, 3), GREY, np.uint8)


PLAIN = {"contours": False, "labels": False, "legend": False}


def _render(image, result, **kwargs) -> np.ndarray:
    out = render_overlay(image, result, **kwargs)
    assert out.mode == "RGB"
    assert out.size == (image.shape[1], image.shape[0])
    return np.asarray(out)


# --------------------------------------------------------------------------- colours


def test_keyword_colors_follow_palette_order():
    colors = keyword_colors(["dog", "cat", "tree"])
    assert list(colors) == ["dog", "cat", "tree"]
    assert [colors[k] for k in ("dog", "cat", "tree")] == list(PALETTE[:3])


def test_keyword_colors_stable_across_calls():
    keywords = [f"k{i}" for i in range(30)]
    assert keyword_colors(keywords) == keyword_colors(list(keywords))


def test_keyword_colors_distinct_beyond_palette():
    assert len(PALETTE) >= 12
    keywords = [f"k{i}" for i in range(40)]
    colors = keyword_colors(keywords)
    assert len(set(colors.values())) == 40
    for color in colors.values():
        assert len(color) == 3
        assert all(isinstance(c, int) and 0 <= c <= 255 for c in color)


def test_keyword_colors_position_not_name_decides():
    assert keyword_colors(["cat", "dog"])["cat"] == keyword_colors(["dog", "cat"])["dog"]


def test_keyword_colors_repeated_keyword_keeps_first_colour():
    colors = keyword_colors(["a", "b", "a", "c"])
    assert colors == {"a": PALETTE[0], "b": PALETTE[1], "c": PALETTE[3]}


def test_render_two_keywords_get_different_colours():
    left = _ellipse(40, 60, 20, 20)
    right = _ellipse(120, 60, 20, 20)
    result = _result([_match("dog", 0.9, left), _match("cat", 0.8, right, 1)])
    out = _render(_grey_image(), result, alpha=1.0, **PLAIN)
    assert tuple(out[60, 40]) == PALETTE[0]
    assert tuple(out[60, 120]) == PALETTE[1]
    assert tuple(out[60, 40]) != tuple(out[60, 120])


def test_render_colours_stable_across_calls():
    result = _result([_match("dog", 0.9, _ellipse(80, 60, 30, 20))])
    image = _noise_image()
    first = _render(image, result)
    second = _render(image, result)
    np.testing.assert_array_equal(first, second)


def test_render_colour_override():
    mask = _ellipse(80, 60, 30, 20)
    result = _result([_match("dog", 0.9, mask)])
    out = _render(_grey_image(), result, alpha=1.0, colors={"dog": (1, 2, 3)}, **PLAIN)
    assert np.all(out[mask] == (1, 2, 3))


def test_render_bad_colour_override_raises():
    result = _result([_match("dog", 0.9, _ellipse(80, 60, 30, 20))])
    with pytest.raises(ValueError, match="colour"):
        render_overlay(_grey_image(), result, colors={"dog": (1, 2, 300)})


# --------------------------------------------------------------------------- blending


def test_render_alpha_zero_leaves_image_unchanged():
    image = _noise_image()
    result = _result([_match("dog", 0.9, _ellipse(80, 60, 40, 30))])
    out = _render(image, result, alpha=0.0, **PLAIN)
    np.testing.assert_array_equal(out, image)


def test_render_alpha_zero_with_decorations_keeps_mask_interior():
    image = _noise_image()
    mask = _ellipse(60, 70, 30, 25)
    result = _result([_match("dog", 0.9, mask)])
    out = _render(image, result, alpha=0.0)
    # Well inside the mask and away from the label (top-left) and legend (top-right).
    interior = erosion(mask, diamond(6))
    interior[:70] = False
    assert interior.sum() > 100
    np.testing.assert_array_equal(out[interior], image[interior])


def test_render_alpha_one_paints_exact_colour():
    mask = _ellipse(80, 60, 40, 30)
    result = _result([_match("dog", 0.9, mask)])
    out = _render(_noise_image(), result, alpha=1.0, **PLAIN)
    assert np.all(out[mask] == PALETTE[0])


def test_render_alpha_half_blends():
    image = _noise_image()
    mask = _ellipse(80, 60, 40, 30)
    result = _result([_match("dog", 0.9, mask)])
    out = _render(image, result, alpha=0.5, **PLAIN)
    expected = np.floor(image[mask] * 0.5 + np.array(PALETTE[0]) * 0.5 + 0.5)
    np.testing.assert_allclose(out[mask].astype(float), expected, atol=1)


@pytest.mark.parametrize("alpha", [0.2, 0.5, 0.8])
def test_render_pixels_outside_masks_unchanged(alpha):
    image = _noise_image()
    a = _ellipse(50, 60, 30, 25)
    b = _ellipse(110, 50, 25, 30)
    result = _result([_match("dog", 0.9, a), _match("cat", 0.4, b, 1)])
    out = _render(image, result, alpha=alpha, **PLAIN)
    outside = ~(a | b)
    np.testing.assert_array_equal(out[outside], image[outside])
    assert np.any(out[a] != image[a])


def test_render_does_not_modify_input():
    image = _noise_image()
    before = image.copy()
    render_overlay(image, _result([_match("dog", 0.9, _ellipse(80, 60, 40, 30))]), alpha=1.0)
    np.testing.assert_array_equal(image, before)


def test_render_best_score_drawn_on_top():
    low = _ellipse(70, 60, 35, 30)
    high = _ellipse(90, 60, 35, 30)
    overlap = low & high
    for order in ([("cat", 0.3, low), ("dog", 0.9, high)], [("dog", 0.9, high), ("cat", 0.3, low)]):
        matches = [_match(k, s, m, i) for i, (k, s, m) in enumerate(order)]
        result = _result(matches, keywords=("dog", "cat"))
        out = _render(_grey_image(), result, alpha=1.0, **PLAIN)
        assert np.all(out[overlap] == PALETTE[0])  # "dog", the higher score
        assert np.all(out[low & ~high] == PALETTE[1])


def test_render_accepts_pil_image():
    image = _noise_image()
    result = _result([_match("dog", 0.9, _ellipse(80, 60, 40, 30))])
    from_pil = render_overlay(Image.fromarray(image).convert("RGBA"), result)
    from_array = render_overlay(image, result)
    assert from_pil.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(from_pil), np.asarray(from_array))


def test_render_no_matches_plain_returns_copy():
    image = _noise_image()
    out = _render(image, _result([], keywords=()), **PLAIN)
    np.testing.assert_array_equal(out, image)


def test_render_empty_mask_is_skipped():
    image = _noise_image()
    result = _result([_match("dog", 0.9, np.zeros((H, W), bool))])
    out = _render(image, result, alpha=1.0, contours=True, labels=True, legend=False)
    np.testing.assert_array_equal(out, image)


def test_render_match_keyword_missing_from_query_gets_colour():
    mask = _ellipse(80, 60, 30, 20)
    result = _result([_match("other", 0.9, mask)], keywords=("dog",))
    out = _render(_grey_image(), result, alpha=1.0, **PLAIN)
    assert np.all(out[mask] == PALETTE[1])


# --------------------------------------------------------------------------- contours


def test_render_contour_pixels_on_mask_boundary():
    mask = _ellipse(80, 60, 40, 30)
    result = _result([_match("dog", 0.9, mask)])
    out = _render(_grey_image(), result, alpha=0.0, contours=True, labels=False, legend=False)
    changed = np.any(out != GREY, axis=-1)
    band = mask & ~erosion(mask, diamond(2))
    assert changed.any()
    assert np.all(mask[changed]), "contour must stay on the mask"
    np.testing.assert_array_equal(changed, band)
    # The outermost ring of the mask is fully drawn, in the keyword colour.
    edge = find_boundaries(mask, mode="inner")
    assert np.all(changed[edge])
    assert np.all(out[changed] == PALETTE[0])


def test_render_contour_outlines_mask_at_image_edge():
    mask = np.zeros((H, W), bool)
    mask[:40, :50] = True
    result = _result([_match("dog", 0.9, mask)])
    out = _render(_grey_image(), result, alpha=0.0, contours=True, labels=False, legend=False)
    changed = np.any(out != GREY, axis=-1)
    assert np.all(mask[changed])
    assert changed[0, 10] and changed[10, 0] and changed[39, 10] and changed[10, 49]
    assert not changed[20, 20]


# --------------------------------------------------------------------------- labels, legend


def test_render_label_drawn_near_box_and_inside_image():
    mask = np.zeros((H, W), bool)
    mask[50:90, 120:160] = True  # touches the right edge: the label must shift left
    result = _result([_match("dog", 0.87, mask)])
    image = _grey_image()
    out = _render(image, result, alpha=0.0, contours=False, labels=True, legend=False)
    changed = np.any(out != GREY, axis=-1)
    ys, xs = np.nonzero(changed)
    assert ys.size > 0
    assert ys.min() >= 20 and ys.max() < 90, "the label sits just above the box"
    assert changed[:50].any(), "above the box, where there is room"
    assert xs.min() < 120, "shifted left so that it fits"
    assert changed[:50, W - 1].any(), "flush with the right edge, not cut off"
    # The label sits on a box of the keyword colour.
    assert np.sum(np.all(out == PALETTE[0], axis=-1)) > 50


def test_render_legend_draws_in_top_right():
    image = _grey_image()
    result = _result([_match("dog", 0.9, _ellipse(40, 90, 15, 15))])
    out = _render(image, result, alpha=0.0, contours=False, labels=False, legend=True)
    changed = np.any(out != GREY, axis=-1)
    assert changed[: H // 3, W // 2 :].sum() > 50
    assert not changed[:, : W // 4].any()
    assert not changed[H // 2 :, :].any()


def test_render_legend_lists_keywords_without_matches():
    image = _grey_image((300, 400))
    mask = _ellipse(100, 200, 40, 40, shape=(300, 400))
    one = _result([_match("dog", 0.9, mask)], keywords=("dog",), shape=(300, 400))
    three = _result([_match("dog", 0.9, mask)], keywords=("dog", "cat", "bird"), shape=(300, 400))

    def legend_height(result: QueryResult) -> int:
        out = _render(image, result, alpha=0.0, contours=False, labels=False, legend=True)
        rows = np.flatnonzero(np.any(out != GREY, axis=(1, 2)))
        return int(rows.max() - rows.min() + 1)

    assert legend_height(three) > legend_height(one) * 2


def test_render_cjk_keyword_without_error():
    mask = _ellipse(80, 60, 30, 20)
    result = _result([_match("宇航员", 0.77, mask), _match("犬", 0.5, _ellipse(40, 90, 10, 10))])
    out = _render(_noise_image(), result, banner="微型模型")
    assert out.shape == (H, W, 3)


def test_render_cjk_font_fallbacks_never_crash(monkeypatch, tmp_path):
    bogus = tmp_path / "NotoSansCJK-Broken.ttc"
    bogus.write_bytes(b"not a font")
    result = _result([_match("猫 cat", 0.77, _ellipse(80, 60, 30, 20))])
    for found in (str(bogus), None):
        monkeypatch.setattr(fonts, "_find_cjk_font", lambda found=found: found)
        fonts._cjk_font.cache_clear()
        try:
            _render(_noise_image(), result)
        finally:
            fonts._cjk_font.cache_clear()


def test_render_non_ascii_latin_keyword():
    result = _result([_match("café crème", 0.5, _ellipse(80, 60, 30, 20))])
    _render(_noise_image(), result, banner="TINY MODEL: random weights — results are meaningless")


def test_render_banner_changes_bottom_strip():
    image = _grey_image()
    result = _result([_match("dog", 0.9, _ellipse(80, 40, 20, 15))])
    plain = _render(image, result, alpha=0.5, **PLAIN)
    text = "TINY MODEL: random weights — results are meaningless"
    banner = _render(image, result, alpha=0.5, banner=text, **PLAIN)
    changed = np.any(banner != plain, axis=-1)
    assert changed[-5:, :].all(), "the strip spans the bottom edge"
    assert not changed[: H // 2].any()


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan")])
def test_render_bad_alpha_raises(alpha):
    result = _result([_match("dog", 0.9, _ellipse(80, 60, 30, 20))])
    with pytest.raises(ValueError, match="alpha"):
        render_overlay(_noise_image(), result, alpha=alpha)


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((H, W), np.uint8),
        np.zeros((H, W, 4), np.uint8),
        np.zeros((H, W, 3), np.float32),
        np.zeros((H + 1, W, 3), np.uint8),
        Image.new("RGB", (W + 1, H)),
    ],
    ids=["grey", "rgba", "float", "wrong-size", "pil-wrong-size"],
)
def test_render_bad_image_raises(image):
    result = _result([_match("dog", 0.9, _ellipse(80, 60, 30, 20))])
    with pytest.raises(ValueError, match="image"):
        render_overlay(image, result)
    with pytest.raises(ValueError, match="image"):
        render_cutouts(image, result)


def test_render_mask_size_mismatch_raises():
    small = _match("dog", 0.9, _ellipse(10, 10, 5, 5, shape=(20, 20)))
    result = _result([small])
    with pytest.raises(ValueError, match="size"):
        render_overlay(_noise_image(), result)


# --------------------------------------------------------------------------- exports


def test_render_cutouts_alpha_equals_mask():
    image = _noise_image()
    a = _ellipse(50, 60, 30, 25)
    b = np.zeros((H, W), bool)
    b[10:30, 100:150] = True
    b[25:40, 140:145] = True
    matches = [_match("dog", 0.9, a), _match("cat", 0.5, b, 1)]
    cutouts = render_cutouts(image, _result(matches))
    assert [m for m, _ in cutouts] == matches
    for (_, cutout), mask in zip(cutouts, (a, b), strict=True):
        ys, xs = np.nonzero(mask)
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        assert cutout.mode == "RGBA"
        assert cutout.size == (x1 - x0, y1 - y0)
        rgba = np.asarray(cutout)
        np.testing.assert_array_equal(rgba[..., 3], np.where(mask[y0:y1, x0:x1], 255, 0))
        np.testing.assert_array_equal(rgba[..., :3], image[y0:y1, x0:x1])


def test_render_cutouts_skip_empty_masks():
    matches = [_match("dog", 0.9, np.zeros((H, W), bool))]
    assert render_cutouts(_noise_image(), _result(matches)) == []


def test_render_mask_png_is_binary_l_image():
    mask = _ellipse(80, 60, 30, 20)
    png = render_mask_png(encode_mask(mask))
    assert png.mode == "L"
    assert png.size == (W, H)
    np.testing.assert_array_equal(np.asarray(png), np.where(mask, 255, 0))
