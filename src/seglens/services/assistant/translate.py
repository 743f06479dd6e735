"""Keywords in a language the embedder cannot read, translated to English by the LLM.

Shown to the user for editing before they are used; with no LLM they come back unchanged
with a note saying why. A ``zh`` or ``multi`` embedder reads its keywords as they are.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from seglens.core.query import MAX_KEYWORD_CHARS
from seglens.llm import LLMBadRequestError, LLMClient, LLMError, LLMMessage
from seglens.services.assistant.advisor import foreign_script

__all__ = ["KeywordTranslation", "needs_translation", "translate_keywords"]

log = logging.getLogger(__name__)

_PROMPT = (
    "You translate image-search keywords for an English-only CLIP model. Translate each keyword "
    "into a short, common English noun or noun phrase naming what is seen in a photo. Keep keywords "
    "that are already English unchanged. Answer with JSON only: "
    '{"translations": ["...", ...]} with exactly one entry per keyword, in the same order.'
)


@dataclass(frozen=True)
class KeywordTranslation:
    """`keywords` has one entry per `original` keyword, in order (exclusions keep their
    leading ``-``); `translated_by` is ``llm`` when the LLM translated, else None with a
    `note` for the user and, after an LLM failure, its `error_code`."""

    original: tuple[str, ...]
    keywords: tuple[str, ...]
    translated_by: Literal["llm"] | None = None
    note: str | None = None
    error_code: str | None = None

    @property
    def changed(self) -> bool:
        return self.keywords != self.original

    def to_dict(self) -> dict[str, Any]:
        return {
            "original": list(self.original),
            "keywords": list(self.keywords),
            "translated_by": self.translated_by,
            "changed": self.changed,
            "note": self.note,
            "error_code": self.error_code,
        }


def _split_sign(keyword: str) -> tuple[str, str]:
    stripped = keyword.strip()
    if stripped.startswith(("-", "−")):
        return "-", stripped[1:].strip()
    return "", stripped


def needs_translation(keywords: Sequence[str], embedder_language: str | None) -> tuple[str, ...]:
    """The keywords written in a script the embedder cannot read (see `foreign_script`)."""
    return tuple(k for k in keywords if foreign_script(_split_sign(k)[1], embedder_language))


def _parse(text: str, count: int) -> list[str] | None:
    match = re.search(r"\{.*\}", text, flags=re.S)
    try:
        data = json.loads(match.group(0) if match else text)
    except ValueError:
        return None
    items = data.get("translations") if isinstance(data, dict) else data
    if not isinstance(items, list) or len(items) != count:
        return None
    return [" ".join(i.split())[:MAX_KEYWORD_CHARS] if isinstance(i, str) else "" for i in items]


def translate_keywords(
    llm: LLMClient | None,
    keywords: Sequence[str],
    *,
    embedder_language: str | None = "en",
    check_all: bool = False,
    off_reason: str | None = None,
) -> KeywordTranslation:
    """Translate the keywords an English embedder cannot read (or, with `check_all`, let
    the LLM look at every keyword, for Latin-script languages such as Spanish).

    `llm` None means the assistant is off (`off_reason` says why). Never raises for LLM
    trouble: the keywords come back unchanged with a note and the error code.
    """
    original = tuple(k.strip() for k in keywords if k.strip())
    unchanged = KeywordTranslation(original, original)
    if embedder_language in ("zh", "multi"):
        return unchanged
    foreign = needs_translation(original, embedder_language or "en")
    targets = original if check_all else foreign
    if not targets:
        return unchanged
    unread = ", ".join(f"'{k}'" for k in foreign) or "these keywords"
    if llm is None:
        return KeywordTranslation(
            original,
            original,
            note=f"Not translated: the AI assistant is off ({off_reason or 'no LLM'}). The English-only "
            f"embedder cannot read {unread}: translate by hand, or use the zh or multilingual profile.",
        )
    bare = [_split_sign(k)[1] for k in targets]
    messages = [LLMMessage("system", _PROMPT), LLMMessage("user", json.dumps(bare, ensure_ascii=False))]
    failure: LLMError | None = None
    text = ""
    try:
        try:
            text = llm.complete(messages, json_mode=True, temperature=0.0)
        except LLMBadRequestError:
            # Servers without JSON mode still follow the instruction most of the time.
            text = llm.complete(messages, temperature=0.0)
    except LLMError as exc:
        failure = exc
    if failure is not None:
        return KeywordTranslation(
            original, original, note=f"Not translated: {failure.message}", error_code=failure.code
        )
    parsed = _parse(text, len(bare))
    if parsed is None:
        log.warning("unreadable keyword translation from the LLM (%d characters)", len(text))
        return KeywordTranslation(
            original,
            original,
            note="Not translated: the LLM's answer could not be read. Translate by hand.",
            error_code="translation_unreadable",
        )
    translated = dict(zip(targets, parsed, strict=True))
    result = []
    for keyword in original:
        sign, _ = _split_sign(keyword)
        english = translated.get(keyword)
        result.append(sign + english if english else keyword)
    return KeywordTranslation(original, tuple(result), translated_by="llm")
