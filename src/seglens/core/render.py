"""Draw query results: coloured translucent masks, contours, labels, a legend, a banner.

Pure numpy + Pillow. Everything here runs on every query (nothing is cached), so the
per-match work is confined to the match's bounding box: each mask is decoded once, then
blended and outlined with vectorised numpy on its box only.

Colours are ``(r, g, b)`` tuples of ints in 0..255. Images are either PIL images (any
mode; converted to RGB) or ``(H, W, 3)`` uint8 numpy arrays whose size equals
``result.image_size_hw``.
"""

from __future__ import annotations

import colorsys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from seglens.core.fonts import Font as _Font
from seglens.core.fonts import default_font as _default_font
from seglens.core.fonts import font_for as _font_for
from seglens.core.fonts import line_box as _line_box
from seglens.core.fonts import text_width as _text_width
from seglens.core.masks import decode_rle, rle_boxes_xyxy
from seglens.core.types import DEFAULT_ALPHA, CocoRle, Match, QueryResult

__all__ = [
    "PALETTE",
    "Color",
    "keyword_colors",
    "render_cutouts",
    "render_mask_png",
    "render_overlay",
]

Color = tuple[int, int, int]


# Sasha Trubetskoy's distinct colours minus the pale, grey, black and navy ones, which
# vanish on photographs: saturated, mutually distinguishable, readable with dark or light
# text.
# fmt: off
PALETTE: tuple[Color, ...] = (
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (255, 225, 25),  # red green blue yellow
    (245, 130, 48), (145, 30, 180), (70, 240, 240), (240, 50, 230),  # orange purple cyan magenta
    (210, 245, 60), (0, 128, 128), (170, 110, 40), (128, 0, 0),  # lime teal brown maroon
)
# fmt: on

_GOLDEN_RATIO_CONJUGATE = 0.618033988749895
_LEGEND_BG: Color = (24, 24, 24)
_LEGEND_BG_OPACITY = 0.75
_BANNER_BG: Color = (150, 0, 0)
_WHITE: Color = (255, 255, 255)
_BLACK: Color = (0, 0, 0)
_GREY: Color = (150, 150, 150)


def _golden_color(i: int) -> Color:
    hue = (0.11 + i * _GOLDEN_RATIO_CONJUGATE) % 1.0
    saturation = 0.75 if i % 2 == 0 else 0.6
    value = 0.95 if i % 3 != 2 else 0.75
    r, g, b = colorsys.hsv_to_rgb(hue, saturation, value)
    return (round(r * 255), round(g * 255), round(b * 255))


def keyword_colors(keywords: Sequence[str]) -> dict[str, Color]:
    """One colour per keyword, a pure function of the keyword's position.

    The i-th keyword gets ``PALETTE[i]`` while the palette lasts (12 colours), then
    golden-ratio-spaced HSV hues. A repeated keyword keeps the colour of its first
    occurrence (its later positions are still consumed, so later keywords keep theirs).
    """
    colors: dict[str, Color] = {}
    for i, keyword in enumerate(keywords):
        if keyword in colors:
            continue
        if i < len(PALETTE):
            colors[keyword] = PALETTE[i]
        else:
            colors[keyword] = _golden_color(i - len(PALETTE))
    return colors


def _text_color_on(background: Color) -> Color:
    r, g, b = background
    luminance = 0.299 * r + 0.587 * g + 0.114 * b
    return _BLACK if luminance > 140 else _WHITE


def _font_size(height: int, width: int) -> int:
    return max(12, round(min(height, width) / 40))


def _as_rgb_array(image: np.ndarray | Image.Image, size_hw: tuple[int, int]) -> np.ndarray:
    """A writable (H, W, 3) uint8 copy of `image`, checked against `size_hw`."""
    if isinstance(image, Image.Image):
        array = np.array(image.convert("RGB"), dtype=np.uint8)
    elif isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image must have shape (H, W, 3), got {image.shape}")
        if image.dtype != np.uint8:
            raise ValueError(f"image must be uint8, got dtype {image.dtype}")
        array = np.array(image, dtype=np.uint8, order="C")
    else:
        raise ValueError(f"image must be a PIL image or a numpy array, got {type(image).__name__}")
    if tuple(array.shape[:2]) != tuple(size_hw):
        raise ValueError(
            f"image is {array.shape[0]}x{array.shape[1]} (HxW) but the result is for "
            f"{size_hw[0]}x{size_hw[1]}"
        )
    return array


def _check_rle_sizes(matches: Iterable[Match], size_hw: tuple[int, int]) -> None:
    for match in matches:
        if tuple(match.rle["size"]) != tuple(size_hw):
            raise ValueError(
                f"mask of {match.keyword!r} has size {match.rle['size']}, expected {list(size_hw)}"
            )


def _check_color(keyword: str, color: object) -> Color:
    if (
        not isinstance(color, tuple | list)
        or len(color) != 3
        or not all(isinstance(c, int | np.integer) and 0 <= c <= 255 for c in color)
    ):
        raise ValueError(f"colour of {keyword!r} must be three ints in 0..255, got {color!r}")
    return (int(color[0]), int(color[1]), int(color[2]))


def _resolve_colors(keywords: Sequence[str], overrides: Mapping[str, object] | None) -> dict[str, Color]:
    colors = keyword_colors(keywords)
    for keyword, color in (overrides or {}).items():
        colors[keyword] = _check_color(keyword, color)
    return colors


def _result_keywords(result: QueryResult) -> list[str]:
    """Query keywords in order, then any match keyword the query does not list."""
    return list(dict.fromkeys([*result.query.keywords, *(m.keyword for m in result.matches)]))


def _int_boxes(rles: Sequence[CocoRle], size_hw: tuple[int, int]) -> np.ndarray:
    """(N, 4) int64 tight mask boxes ``[x0, y0, x1, y1)`` clipped to the image."""
    boxes = np.rint(rle_boxes_xyxy(rles)).astype(np.int64).reshape(-1, 4)
    height, width = size_hw
    boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, width)
    boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, height)
    return boxes


def _inner_boundary(mask: np.ndarray, width: int) -> np.ndarray:
    """Pixels of `mask` within `width` 4-connected steps of a non-mask pixel; pixels
    outside the array count as non-mask, so a mask touching the image edge is outlined
    there too."""
    eroded = mask
    for _ in range(width):
        shrunk = eroded.copy()
        shrunk[1:, :] &= eroded[:-1, :]
        shrunk[:-1, :] &= eroded[1:, :]
        shrunk[:, 1:] &= eroded[:, :-1]
        shrunk[:, :-1] &= eroded[:, 1:]
        shrunk[[0, -1], :] = False
        shrunk[:, [0, -1]] = False
        eroded = shrunk
    return mask & ~eroded


def _paint(region: np.ndarray, mask: np.ndarray, color: Color) -> None:
    """``region[mask] = color``, in place; per-channel masked copies are several times
    faster than boolean indexing of (h, w, 3)."""
    for channel in range(3):
        np.copyto(region[..., channel], color[channel], where=mask)


def _blend_into(region: np.ndarray, mask: np.ndarray, color: Color, alpha: float) -> None:
    """``region[mask] = round(region * (1 - alpha) + color * alpha)``, in place.

    `region` is (h, w, 3) uint8, `mask` (h, w) bool, both C-contiguous for speed.
    """
    if alpha <= 0.0:
        return
    if alpha >= 1.0:
        _paint(region, mask, color)
        return
    # Per channel, a 256-entry table and a masked copy beat boolean fancy indexing of the
    # (K, 3) pixels by about 5x.
    levels = np.arange(256, dtype=np.float32)[None, :]
    shade = np.asarray(color, np.float32)[:, None] * alpha
    tables = np.floor(levels * (1.0 - alpha) + shade + 0.5).astype(np.uint8)  # (3, 256)
    for channel in range(3):
        plane = region[..., channel]
        np.copyto(plane, np.take(tables[channel], plane), where=mask)


def _contour_width(height: int, width: int) -> int:
    return max(2, round(min(height, width) / 400))


@dataclass(frozen=True)
class _Rect:
    x0: int
    y0: int
    x1: int
    y1: int

    def overlaps(self, other: _Rect) -> bool:
        return self.x0 < other.x1 and other.x0 < self.x1 and self.y0 < other.y1 and other.y0 < self.y1


def _shade(image: Image.Image, rect: _Rect, color: Color, opacity: float) -> None:
    size = (rect.x1 - rect.x0, rect.y1 - rect.y0)
    if size[0] <= 0 or size[1] <= 0:
        return
    mask = Image.new("L", size, round(opacity * 255))
    image.paste(color, (rect.x0, rect.y0, rect.x1, rect.y1), mask)


def _draw_legend(
    image: Image.Image,
    draw: ImageDraw.ImageDraw,
    keywords: Sequence[str],
    counts: Mapping[str, int],
    colors: Mapping[str, Color],
    font_px: int,
) -> _Rect:
    """A shaded panel in the top-right corner: swatch, keyword, match count per row."""
    pad, swatch = max(4, font_px // 3), font_px
    count_font = _default_font(font_px)
    fonts = [_font_for(keyword, font_px) for keyword in keywords]
    line_h = max(_line_box(font)[1] for font in [count_font, *fonts])
    row_h = max(swatch, line_h)
    name_w = max(_text_width(font, kw) for font, kw in zip(fonts, keywords, strict=True))
    count_w = max(_text_width(count_font, str(counts.get(kw, 0))) for kw in keywords)
    panel_w = 5 * pad + swatch + name_w + count_w
    panel_h = 2 * pad + len(keywords) * row_h + (len(keywords) - 1) * (pad // 2)
    x0 = max(0, image.size[0] - pad - panel_w)
    rect = _Rect(x0, pad, min(image.size[0], x0 + panel_w), pad + panel_h)
    _shade(image, rect, _LEGEND_BG, _LEGEND_BG_OPACITY)
    y = rect.y0 + pad
    for keyword, font in zip(keywords, fonts, strict=True):
        count = counts.get(keyword, 0)
        color, text_color = colors[keyword], (_WHITE if count else _GREY)
        sx, sy = rect.x0 + pad, y + (row_h - swatch) // 2
        swatch_xy = (sx, sy, sx + swatch - 1, sy + swatch - 1)
        # An empty swatch for keywords that matched nothing, so the eye skips them.
        draw.rectangle(swatch_xy, fill=color if count else None, outline=color, width=2)
        ty = y + (row_h - line_h) // 2
        draw.text((sx + swatch + pad, ty - _line_box(font)[0]), keyword, font=font, fill=text_color)
        cx = x0 + panel_w - pad - _text_width(count_font, str(count))
        draw.text((cx, ty - _line_box(count_font)[0]), str(count), font=count_font, fill=text_color)
        y += row_h + pad // 2
    return rect


def _draw_banner(image: Image.Image, draw: ImageDraw.ImageDraw, text: str, font_px: int) -> _Rect:
    width, height = image.size
    font = _font_for(text, font_px)
    top, line_h = _line_box(font)
    pad = max(3, font_px // 3)
    strip_h = min(height, line_h + 2 * pad)
    rect = _Rect(0, height - strip_h, width, height)
    draw.rectangle((rect.x0, rect.y0, rect.x1 - 1, rect.y1 - 1), fill=_BANNER_BG)
    shown = text
    while shown and _text_width(font, shown) > width - 2 * pad:
        shown = shown[:-2] + "…" if len(shown) > 1 else ""
    draw.text((pad, rect.y0 + pad - top), shown, font=font, fill=_WHITE)
    return rect


def _place_label(
    box: np.ndarray,
    size: tuple[int, int],
    image_size: tuple[int, int],
    taken: list[_Rect],
) -> _Rect:
    """Just above the box's top-left corner (inside it when there is no room above),
    nudged down past labels already placed, always inside the image."""
    label_w, label_h = size
    width, height = image_size
    x0 = int(min(max(int(box[0]), 0), max(0, width - label_w)))
    y = int(box[1]) - label_h
    if y < 0:
        y = int(box[1])
    y = min(max(y, 0), max(0, height - label_h))
    rect = _Rect(x0, y, x0 + label_w, y + label_h)
    for _ in range(8):
        clash = next((r for r in taken if r.overlaps(rect)), None)
        if clash is None:
            break
        y = clash.y1
        if y + label_h > height:
            break
        rect = _Rect(x0, y, x0 + label_w, y + label_h)
    return rect


def _draw_labels(
    draw: ImageDraw.ImageDraw,
    image_size: tuple[int, int],
    matches: Sequence[Match],
    boxes: np.ndarray,
    colors: Mapping[str, Color],
    font_px: int,
    taken: list[_Rect],
) -> None:
    """``"keyword 0.87"`` labels; `matches` and `boxes` are sorted by ascending score."""
    pad = max(2, font_px // 5)
    placed: list[tuple[_Rect, str, Color, _Font, int]] = []
    # Best first, so the best labels get their preferred spots; drawn worst first so the
    # best end up on top where they still overlap.
    for match, box in zip(reversed(matches), boxes[::-1], strict=True):
        if box[2] <= box[0] or box[3] <= box[1]:
            continue
        text = f"{match.keyword} {match.score:.2f}"
        font = _font_for(text, font_px)
        top, line_h = _line_box(font)
        label_size = (_text_width(font, text) + 2 * pad, line_h + 2 * pad)
        rect = _place_label(box, label_size, image_size, taken)
        taken.append(rect)
        placed.append((rect, text, colors[match.keyword], font, top))
    for rect, text, color, font, top in reversed(placed):
        draw.rectangle((rect.x0, rect.y0, rect.x1 - 1, rect.y1 - 1), fill=color)
        xy = (rect.x0 + pad, rect.y0 + pad - top)
        draw.text(xy, text, font=font, fill=_text_color_on(color))


def render_overlay(
    image: np.ndarray | Image.Image,
    result: QueryResult,
    *,
    alpha: float = DEFAULT_ALPHA,
    contours: bool = True,
    labels: bool = True,
    legend: bool = True,
    banner: str | None = None,
    colors: Mapping[str, tuple[int, int, int]] | None = None,
) -> Image.Image:
    """Draw `result`'s matches over `image` and return a new RGB image of the same size.

    - `image`: a PIL image (any mode) or an (H, W, 3) uint8 array, H x W equal to
      ``result.image_size_hw``; it is not modified.
    - `alpha` in [0, 1]: mask fill opacity; 0 leaves the pixels as they are, 1 paints the
      keyword colour exactly. Within the mask, each pixel becomes
      ``round(pixel * (1 - alpha) + colour * alpha)``.
    - `contours`: outline each mask with a band (2 px, more on large images) of its
      colour at full opacity, drawn on the inside of the mask boundary.
    - `labels`: ``"keyword 0.87"`` on a box of the keyword colour near the top-left of
      the match's box, inside the image.
    - `legend`: a panel in the top-right corner listing every keyword (query keywords in
      order, then any other match keyword) with its colour and match count; keywords
      without matches are greyed.
    - `banner`: when given, a strip along the bottom edge with this text.
    - `colors`: keyword -> (r, g, b) overrides; others come from :func:`keyword_colors`
      over the query's keywords.

    Matches are drawn from the lowest score to the highest, so the best sit on top.
    Raises ValueError for alpha outside [0, 1], a badly shaped image or mask sizes that
    do not match the result.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    size_hw = (int(result.image_size_hw[0]), int(result.image_size_hw[1]))
    canvas = _as_rgb_array(image, size_hw)
    _check_rle_sizes(result.matches, size_hw)
    height, width = size_hw
    keywords = _result_keywords(result)
    palette = _resolve_colors(keywords, colors)

    order = sorted(range(len(result.matches)), key=lambda i: result.matches[i].score)
    matches = [result.matches[i] for i in order]
    boxes = _int_boxes([m.rle for m in matches], size_hw)
    line_width = _contour_width(height, width)
    for match, (x0, y0, x1, y1) in zip(matches, boxes, strict=True):
        if x1 <= x0 or y1 <= y0:
            continue
        mask = np.ascontiguousarray(decode_rle(match.rle)[y0:y1, x0:x1])
        region = canvas[y0:y1, x0:x1]
        color = palette[match.keyword]
        _blend_into(region, mask, color, alpha)
        if contours:
            _paint(region, _inner_boundary(mask, line_width), color)

    out = Image.fromarray(canvas, "RGB")
    if not (labels or legend or banner):
        return out
    draw = ImageDraw.Draw(out)
    font_px = _font_size(height, width)
    taken: list[_Rect] = []
    if banner:
        taken.append(_draw_banner(out, draw, banner, font_px))
    if legend and keywords:
        counts: dict[str, int] = {}
        for match in result.matches:
            counts[match.keyword] = counts.get(match.keyword, 0) + 1
        taken.append(_draw_legend(out, draw, keywords, counts, palette, font_px))
    if labels:
        _draw_labels(draw, out.size, matches, boxes, palette, font_px, taken)
    return out


def render_cutouts(image: np.ndarray | Image.Image, result: QueryResult) -> list[tuple[Match, Image.Image]]:
    """Transparent RGBA cut-outs, one per match with a non-empty mask, in match order.

    Each is cropped to the mask's tight box ``[x0, y0, x1, y1)``; RGB are the image's
    pixels, alpha is 255 inside the mask and 0 outside. Same validation as
    :func:`render_overlay`.
    """
    size_hw = (int(result.image_size_hw[0]), int(result.image_size_hw[1]))
    rgb = _as_rgb_array(image, size_hw)
    _check_rle_sizes(result.matches, size_hw)
    boxes = _int_boxes([m.rle for m in result.matches], size_hw)
    cutouts: list[tuple[Match, Image.Image]] = []
    for match, (x0, y0, x1, y1) in zip(result.matches, boxes, strict=True):
        if x1 <= x0 or y1 <= y0:
            continue
        mask = decode_rle(match.rle)[y0:y1, x0:x1]
        rgba = np.empty((y1 - y0, x1 - x0, 4), np.uint8)
        rgba[..., :3] = rgb[y0:y1, x0:x1]
        rgba[..., 3] = np.where(mask, 255, 0)
        cutouts.append((match, Image.fromarray(rgba, "RGBA")))
    return cutouts


def render_mask_png(rle: CocoRle) -> Image.Image:
    """The mask as a mode ``"L"`` image of the RLE's size: 255 inside, 0 outside."""
    mask = decode_rle(rle)
    return Image.fromarray(np.where(mask, 255, 0).astype(np.uint8), "L")
