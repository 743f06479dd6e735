"""Keyword queries: parsing, prompt templates and background prompts.

A query is keywords separated by commas or semicolons (ASCII or full-width); a keyword
written ``-grass`` is an exclusion. Each keyword is embedded through an ensemble of prompt
templates (the mean of the template embeddings, re-normalised), as in CLIP's zero-shot
recipe; background prompts give every region somewhere to go that is not a keyword.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from seglens.core.types import Query

__all__ = [
    "BACKGROUND_PROMPTS",
    "KEYWORD_PRESENT_PATTERN",
    "MAX_KEYWORDS",
    "MAX_KEYWORD_CHARS",
    "MAX_QUERY_CHARS",
    "QUERY_PATTERN",
    "TEMPLATES",
    "background_prompts",
    "parse_query",
    "templates_for",
]

MAX_KEYWORDS = 32
MAX_KEYWORD_CHARS = 80
MAX_QUERY_CHARS = 4000

# Character classes (regular-expression syntax, shared by the parser and the patterns).
_SEPARATORS = ",;，；、\\n"
# Control characters (Unicode Cc) other than tab, line feed and carriage return: never
# part of a keyword. Unpaired surrogates are refused too; a JSON Schema pattern cannot
# name them (validators compile patterns over Unicode scalar values), so they are left
# out of the patterns below.
_REFUSED = "\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f"
_SPLIT = re.compile(f"[{_SEPARATORS}]+")
_REFUSED_CHAR = re.compile(f"[{_REFUSED}\\ud800-\\udfff]")


def _query_patterns() -> tuple[str, str]:
    """Regular expressions (Python `re`; JSON Schema ``pattern`` semantics: a search) that
    hold exactly for the texts `parse_query` accepts (up to `MAX_QUERY_CHARS`): the first
    checks the terms, their lengths and their number, the second that one is a keyword."""
    sep = f"[{_SEPARATORS}]"
    dash = "[-−]"
    space = f"[^\\S\\n{_REFUSED}]"  # whitespace that separates nothing
    char = f"[^\\s{_SEPARATORS}{_REFUSED}]"  # a keyword's first and last character
    positive = f"[^\\s{_SEPARATORS}{_REFUSED}\\-−]"
    inner = f"[^{_SEPARATORS}{_REFUSED}]"
    words = f"{char}(?:{inner}{{0,{MAX_KEYWORD_CHARS - 2}}}{char})?"
    empty = f"{space}*(?:{dash}{space}*)?"
    term = f"{space}*(?:{dash}{space}*)?{words}{space}*"
    terms = (
        f"^(?:{empty}{sep})*{term}(?:{sep}(?:{empty}{sep})*{term}){{0,{MAX_KEYWORDS - 1}}}(?:{sep}{empty})*$"
    )
    return terms, f"(?:^|{sep}){space}*{positive}"


QUERY_PATTERN, KEYWORD_PRESENT_PATTERN = _query_patterns()

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
    """The background prompts scored with every query in `language` (an ISO code; English for a
    language without its own set)."""
    return BACKGROUND_PROMPTS.get(language, BACKGROUND_PROMPTS["en"])


def parse_query(text: str) -> Query:
    """Parse ``"cat, dog; -grass"`` into keywords and exclusions.

    Terms are separated by commas, semicolons (ASCII or full-width), ``、`` or line breaks;
    a term written ``-word`` is an exclusion. Whitespace inside a term is collapsed;
    duplicates (case-insensitive) are dropped, order kept, and a term given both ways is a
    keyword. Raises ValueError for a text with a control character (other than tab and line
    breaks), a term longer than `MAX_KEYWORD_CHARS` characters as written, more than
    `MAX_KEYWORDS` terms (counted before dropping duplicates) or no keyword at all.
    `QUERY_PATTERN` and `KEYWORD_PRESENT_PATTERN` state the same rules as regular
    expressions for the API's schema.
    """
    if not isinstance(text, str):
        raise ValueError("query must be a string")
    refused = _REFUSED_CHAR.search(text)
    if refused:
        code = ord(refused.group())
        kind = "an unpaired surrogate" if 0xD800 <= code <= 0xDFFF else "the control character"
        raise ValueError(
            f"the query contains {kind} U+{code:04X} at position {refused.start()}: keywords are plain text"
        )
    terms: list[tuple[str, bool]] = []
    for part in _SPLIT.split(text):
        term = part.strip()
        negative = term.startswith(("-", "−"))
        if negative:
            term = term[1:].strip()
        if not term:
            continue
        if len(term) > MAX_KEYWORD_CHARS:
            raise ValueError(f"keyword {term[:20]!r}... is longer than {MAX_KEYWORD_CHARS} characters")
        terms.append((" ".join(term.split()), negative))
    if len(terms) > MAX_KEYWORDS:
        raise ValueError(f"at most {MAX_KEYWORDS} keywords per query, got {len(terms)}")
    keywords = _unique(term for term, negative in terms if not negative)
    if not keywords:
        raise ValueError("the query has no keywords: type what to find, e.g. 'cat, dog'")
    wanted = {k.casefold() for k in keywords}
    exclusions = _unique(term for term, negative in terms if negative and term.casefold() not in wanted)
    return Query(keywords=keywords, exclusions=exclusions, raw=text)


def _unique(terms: Iterable[str]) -> tuple[str, ...]:
    """The first of each case-insensitive group, in order."""
    seen: dict[str, str] = {}
    for term in terms:
        seen.setdefault(term.casefold(), term)
    return tuple(seen.values())
