"""Fonts for labels and legends: Pillow's default font, a system CJK font for Chinese,
Japanese and Korean text, a broad-coverage system font for the rest. Never fails for lack
of a font: the default font always draws something."""

from __future__ import annotations

import functools
from pathlib import Path

from PIL import ImageFont

__all__ = ["Font", "default_font", "font_for", "line_box", "text_width"]

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
_Font = Font

# Searched in order when a text needs CJK glyphs: known files first, then name patterns.
_CJK_FONT_FILES: tuple[str, ...] = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/System/Library/Fonts/PingFang.ttc",
    "C:/Windows/Fonts/msyh.ttc",
)
_CJK_FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts")
_CJK_FONT_GLOBS = ("NotoSansCJK*", "NotoSerifCJK*", "SourceHanSans*", "wqy-*", "DroidSansFallback*")
# Broad-coverage fonts for text the default font has no glyphs for (it lacks even "é"
# and "—"); Pillow looks bare names up in the system font directories.
_UNICODE_FONT_NAMES = ("DejaVuSans.ttf", "NotoSans-Regular.ttf", "Arial Unicode.ttf", "arial.ttf")
# Hangul Jamo, CJK radicals to unified ideographs (kana included), Hangul syllables,
# compatibility ideographs, full-width forms, supplementary ideographs.
_CJK_RANGES: tuple[tuple[int, int], ...] = (
    *((0x1100, 0x11FF), (0x2E80, 0x9FFF), (0xA960, 0xA97F), (0xAC00, 0xD7AF)),
    *((0xF900, 0xFAFF), (0xFF00, 0xFFEF), (0x20000, 0x3FFFF)),
)


def _needs_cjk(text: str) -> bool:
    return any(lo <= ord(ch) <= hi for ch in text for lo, hi in _CJK_RANGES)


@functools.lru_cache(maxsize=1)
def _find_cjk_font() -> str | None:
    for candidate in _CJK_FONT_FILES:
        if Path(candidate).is_file():
            return candidate
    for directory in _CJK_FONT_DIRS:
        root = Path(directory)
        if not root.is_dir():
            continue
        for pattern in _CJK_FONT_GLOBS:
            for path in sorted(root.rglob(pattern)):
                if path.suffix.lower() in (".ttf", ".ttc", ".otf", ".otc"):
                    return str(path)
    return None


@functools.lru_cache(maxsize=32)
def default_font(size: int) -> _Font:
    """Pillow's default font at `size` pixels, or its fixed-size bitmap font when Pillow has no
    FreeType."""
    try:
        return ImageFont.load_default(size=size)
    except (OSError, ImportError, ValueError):
        # Pillow without FreeType: the fixed-size bitmap font still draws text.
        return ImageFont.load_default()


@functools.lru_cache(maxsize=32)
def _cjk_font(size: int) -> _Font:
    path = _find_cjk_font()
    if path is not None:
        try:
            return ImageFont.truetype(path, size=size)
        except (OSError, ValueError):
            pass
    return default_font(size)


@functools.lru_cache(maxsize=32)
def _unicode_font(size: int) -> _Font:
    for name in _UNICODE_FONT_NAMES:
        try:
            return ImageFont.truetype(name, size=size)
        except (OSError, ValueError):
            continue
    return default_font(size)


@functools.lru_cache(maxsize=4096)
def _has_glyph(font: _Font, char: str) -> bool:
    """Whether `font` draws `char` as something other than its missing-glyph box."""
    if char.isspace():
        return True
    missing, glyph = font.getmask("\U0010fffd"), font.getmask(char)
    return bool(glyph.size != missing.size or bytes(glyph) != bytes(missing))


def font_for(text: str, size: int) -> _Font:
    """The first of (a system CJK font when `text` has CJK characters,) the default font
    and a broad-coverage system font that has every glyph of `text`; else the first."""
    candidates = [_cjk_font(size)] if _needs_cjk(text) else []
    candidates += [default_font(size), _unicode_font(size)]
    chars = set(text)
    for font in candidates:
        if all(_has_glyph(font, char) for char in chars):
            return font
    return candidates[0]


def line_box(font: _Font) -> tuple[int, int]:
    """(top offset, height) of a line of text drawn at y = 0 with `font`."""
    _, top, _, bottom = font.getbbox("Ag")
    return int(top), max(1, int(bottom - top))


def text_width(font: _Font, text: str) -> int:
    """The width in pixels of `text` drawn in `font` (0 for empty text)."""
    left, _, right, _ = font.getbbox(text)
    return max(0, int(right - left))
