"""The messages sent to the LLM, kept under a fixed token budget whatever the job's size.

The system message holds the instructions, the built-in guide plus the documentation
sections that fit the question, the `ScreenContext` as JSON (fixed-size: summaries, not
matches) and the advisor's facts; then the conversation and the question. When the
estimate exceeds `PROMPT_TOKEN_BUDGET`, the oldest turns go first, then the
documentation sections, then the per-keyword details of the context.

Tokens are estimated, not counted: no tokenizer ships offline with the project, so
`estimate_tokens` takes one token per 3 ASCII characters (English prose runs ~4
characters a token in OpenAI-style BPE vocabularies, JSON with numbers ~3) and one per
other character (Chinese runs ~1 to 1.5 characters a token), an estimate on the high
side for the text sent here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from seglens.llm import LLMMessage
from seglens.services.assistant.advisor import ScreenContext, Suggestion
from seglens.services.assistant.guide import cut_text as _cut
from seglens.services.assistant.guide import guide_sections, rank_sections

__all__ = [
    "MAX_HISTORY_MESSAGES",
    "PROMPT_TOKEN_BUDGET",
    "SYSTEM_PROMPT",
    "build_messages",
    "estimate_tokens",
    "fact_text",
]

PROMPT_TOKEN_BUDGET = 12_000
MAX_HISTORY_MESSAGES = 12
MAX_TURN_CHARS = 4000
DOC_SECTIONS = 2
DOC_SECTION_CHARS = 1200

SYSTEM_PROMPT = """You are the SegLens assistant. SegLens finds things in images by words: \
Segment Anything (SAM) cuts each image into candidate regions, a CLIP-family model scores each \
region against the user's keywords (a probability in [0, 1]), and regions scoring at least the \
threshold are highlighted; overlapping matches of one keyword whose mask IoU exceeds the merging \
threshold are merged.

Answer briefly (a few sentences or a short list) in the user's language ({language}). Ground every \
statement about results in the numbers of CONTEXT (per keyword: best score and the file holding \
it, a histogram of match scores in bins of 0.1, the lowest matches, the best scores of images \
where it is missing); never invent scores. Name images by file name. When a change of settings \
would help, explain it and call the suggest_parameters tool with only the fields to change and a \
reason that cites the numbers: the user applies it with one click. ADVISOR FACTS were computed \
from the same numbers by deterministic rules: build on them, and say why if you disagree. \
Threshold, merging and keyword changes are instant (cached); points_per_side re-runs mask \
generation; a profile change needs a new job. If the profile is tiny, say that the results are \
meaningless. For how-to questions use USER GUIDE."""

_LANGUAGE_NAMES = {"en": "English", "zh": "Chinese (简体中文)"}


def estimate_tokens(text: str) -> int:
    """An estimate on the high side of `text`'s token count (see the module's note)."""
    ascii_chars = sum(1 for c in text if c < "\x80")
    return math.ceil(ascii_chars / 3) + (len(text) - ascii_chars)


def fact_text(suggestion: Suggestion) -> str:
    """A suggestion's settings in one short line (how earlier turns recall them)."""
    fields = ("threshold", "merge_threshold", "points_per_side", "keywords", "profile")
    values = [
        f"{name}={getattr(suggestion, name)!r}" for name in fields if getattr(suggestion, name) is not None
    ]
    return ", ".join(values) or " ".join(suggestion.reason.split())[:80]


def _fact(suggestion: Suggestion) -> dict[str, Any]:
    data = {k: v for k, v in suggestion.to_dict().items() if v not in (None, [], ())}
    for name in ("source", "ignored", "applicable"):
        data.pop(name, None)
    return data


def _guide_text(guide: str, question: str, *, docs: bool) -> str:
    """The built-in sections of `guide` (those with a topic) in order, then, with `docs`,
    the `DOC_SECTIONS` other sections that fit `question` best, each cut short."""
    sections = guide_sections(guide)
    parts = [section.text for section in sections if section.topic is not None]
    if docs:
        ranked = [section for _score, section in rank_sections(guide, question) if section.topic is None]
        parts.extend(_cut(section.text, DOC_SECTION_CHARS) for section in ranked[:DOC_SECTIONS])
    return "\n\n".join(parts)


def _context_json(context: ScreenContext | None, *, compact: bool) -> str:
    if context is None:
        return "none"
    data = context.to_dict()
    if compact:
        keep = ("keyword", "matches", "images_matched", "best_score", "best_image")
        data["keyword_stats"] = [{k: s[k] for k in keep if k in s} for s in data.get("keyword_stats", [])]
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def build_messages(
    question: str,
    context: ScreenContext | None,
    facts: Sequence[Suggestion],
    history: Sequence[tuple[str, str]],
    *,
    guide: str,
    lang: str = "en",
) -> list[LLMMessage]:
    """The chat messages for the LLM: system, the latest turns of `history` ((role,
    content) pairs, oldest first), then `question`; their estimated tokens stay within
    `PROMPT_TOKEN_BUDGET` for any context and a question of at most 4000 characters."""
    facts_json = (
        json.dumps([_fact(s) for s in facts], ensure_ascii=False) if facts else "none (no rule fired)"
    )
    turns = [(role, content[:MAX_TURN_CHARS]) for role, content in history[-MAX_HISTORY_MESSAGES:]]
    docs = True
    compact = False
    while True:
        guide_text = _guide_text(guide, question, docs=docs) or "none"
        system = (
            f"{SYSTEM_PROMPT.format(language=_LANGUAGE_NAMES.get(lang, 'English'))}\n\nUSER GUIDE:\n"
            f"{guide_text}\n\nCONTEXT (what the user is looking at, JSON):\n"
            f"{_context_json(context, compact=compact)}\n\nADVISOR FACTS (JSON):\n{facts_json}"
        )
        messages = [LLMMessage("system", system)]
        messages.extend(LLMMessage(role, content) for role, content in turns)  # type: ignore[arg-type]
        messages.append(LLMMessage("user", question))
        if prompt_tokens(messages) <= PROMPT_TOKEN_BUDGET:
            return messages
        if turns:
            turns = turns[2:] if len(turns) > 1 else []
        elif docs:
            docs = False
        elif not compact:
            compact = True
        else:
            return messages


def prompt_tokens(messages: Sequence[LLMMessage]) -> int:
    """The estimated tokens of `messages`, 4 per message for the chat format."""
    return sum(estimate_tokens(m.content) + 4 for m in messages)
