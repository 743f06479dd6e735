"""Keyword queries: parsing, prompt templates and background prompts.

A query is keywords separated by commas or semicolons (ASCII or full-width); a keyword
written ``-grass`` is an exclusion. Each keyword is embedded through an ensemble of prompt
templates (the mean of the template embeddings, re-normalised), as in CLIP's zero-shot
recipe; background prompts give every region somewhere to go that is not a keyword.
"""

from __future__ import annotations

import re

from seglens.core.types import Query

__all__ = [
    "BACKGROUND_PROMPTS",
    "MAX_KEYWORDS",
    "TEMPLATES",
    "background_prompts",
    "parse_query",
    "templates_for",
]

MAX_KEYWORDS = 32
MAX_KEYWORD_CHARS = 80

_SPLIT = re.compile(r"[,;，；、\n]+")

TEMPLATES: dict[str, tuple[str, ...]] = {
    "en": (
        "a photo of a {}.",
        "a photo of the {}.",
        "a cropped photo of a {}.",
        "a close-up photo of a {}.",
        "a photo of a small {}.",
        "a photo of a large {}.",
        "a good photo of the {}.",
        "a bright photo of a {}.",
    ),
    "zh": (
        "一张{}的照片。",
        "{}的照片。",
        "一张{}的特写照片。",
        "一张裁剪过的{}的照片。",
    ),
}

BACKGROUND_PROMPTS: dict[str, tuple[str, ...]] = {
    "en": (
        "a photo of the background.",
        "a photo of an object.",
        "a photo of a texture.",
        "a blurry photo.",
        "a photo of a part of something.",
    ),
    "zh": (
        "背景的照片。",
        "一个物体的照片。",
        "纹理的照片。",
        "一张模糊的照片。",
        "某物一部分的照片。",
    ),
}


def templates_for(language: str) -> tuple[str, ...]:
    """Prompt templates for an embedder language (``en``, ``zh``; ``multi`` uses English)."""
    return TEMPLATES.get(language, TEMPLATES["en"])


def background_prompts(language: str) -> tuple[str, ...]:
    return BACKGROUND_PROMPTS.get(language, BACKGROUND_PROMPTS["en"])


def parse_query(text: str) -> Query:
    """Parse ``"cat, dog; -grass"`` into keywords and exclusions.

    Whitespace is collapsed, duplicates (case-insensitive) dropped, order kept. Raises
    ValueError for an empty query, a query of only exclusions, more than `MAX_KEYWORDS`
    terms or a term longer than `MAX_KEYWORD_CHARS` characters.
    """
    if not isinstance(text, str):
        raise ValueError("query must be a string")
    keywords: list[str] = []
    exclusions: list[str] = []
    seen: set[str] = set()
    for part in _SPLIT.split(text):
        term = " ".join(part.split())
        negative = term.startswith(("-", "−"))
        if negative:
            term = term[1:].strip()
        if not term:
            continue
        if len(term) > MAX_KEYWORD_CHARS:
            raise ValueError(f"keyword {term[:20]!r}... is longer than {MAX_KEYWORD_CHARS} characters")
        key = term.casefold()
        if key in seen:
            continue
        seen.add(key)
        (exclusions if negative else keywords).append(term)
    if not keywords:
        raise ValueError("the query has no keywords: type what to find, e.g. 'cat, dog'")
    if len(keywords) + len(exclusions) > MAX_KEYWORDS:
        raise ValueError(f"at most {MAX_KEYWORDS} keywords per query")
    return Query(keywords=tuple(keywords), exclusions=tuple(exclusions), raw=text)
