"""The AI assistant use case: a question + what is on screen → a stream of typed events.

`Assistant.chat` yields `TextEvent`s (answer deltas), `SuggestionEvent`s (validated
settings the user can apply with one click), an `ErrorEvent` when the LLM fails, and one
final `DoneEvent` carrying the two messages to store in the conversation. With an LLM it
sends a system prompt made of a short user guide, the `ScreenContext` as JSON and the
offline advisor's suggestions as facts, streams the answer and turns ``suggest_parameters``
tool calls into suggestions. Without one (not configured) or when it fails (wrong key,
timeout, broken stream...), the deterministic advisor answers instead and the text says
that the LLM is off or unavailable, and why. Answers are in the UI's language (``en`` or
``zh``; Chinese whenever the question is): the advisor from its own templates, the LLM as
instructed. The prompt stays under `PROMPT_TOKEN_BUDGET` (see `assistant_prompt`).

What leaves the machine: the guide, the context (keywords, scores, counts, sizes,
timings, file names of failed images), the conversation and the advisor's suggestions.
Never image pixels, never a server token; the API key only in the Authorization header.
No HTTP or UI types here; persistence is the caller's (store `DoneEvent`'s messages).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any, Literal

from seglens.llm import (
    SUGGEST_PARAMETERS,
    SUGGEST_PARAMETERS_NAME,
    LLMBadRequestError,
    LLMClient,
    LLMConfig,
    LLMError,
    LLMMessage,
    TextChunk,
    ToolCall,
)
from seglens.services.assistant.advisor import ScreenContext, Suggestion, advise, suggestion_from_arguments
from seglens.services.assistant.guide import load_user_guide
from seglens.services.assistant.i18n import language_of, say
from seglens.services.assistant.offline import offline_paragraphs
from seglens.services.assistant.prompt import MAX_HISTORY_MESSAGES, build_messages, fact_text
from seglens.services.assistant.translate import KeywordTranslation, needs_translation, translate_keywords
from seglens.settings import Settings

__all__ = [
    "Assistant",
    "AssistantEvent",
    "AssistantStatus",
    "ChatMessage",
    "DoneEvent",
    "ErrorEvent",
    "KeywordTranslation",
    "SuggestionEvent",
    "TextEvent",
    "needs_translation",
]

log = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 4000
MAX_SUGGESTIONS_PER_ANSWER = 3


@dataclass(frozen=True)
class ChatMessage:
    """One stored turn. `source` says who wrote an assistant turn (the LLM, or the offline
    advisor); `error_code` is set when the LLM failed during it."""

    role: Literal["user", "assistant"]
    content: str
    suggestions: tuple[Suggestion, ...] = ()
    source: Literal["user", "llm", "advisor"] = "user"
    error_code: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "content": self.content,
            "suggestions": [s.to_dict() for s in self.suggestions],
            "source": self.source,
            "error_code": self.error_code,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChatMessage:
        """Rebuild a stored message; raises ValueError for an unknown role."""
        role = data.get("role")
        if role not in ("user", "assistant"):
            raise ValueError(f"chat message role must be 'user' or 'assistant', got {role!r}")
        stored = data.get("source")
        source: Literal["user", "llm", "advisor"] = "user" if role == "user" else "llm"
        if stored == "advisor" and role == "assistant":
            source = "advisor"
        return cls(
            role=role,
            content=str(data.get("content") or ""),
            suggestions=tuple(Suggestion.from_dict(s) for s in data.get("suggestions") or ()),
            source=source,
            error_code=data.get("error_code"),
        )


@dataclass(frozen=True)
class TextEvent:
    """A piece of the answer, to append to what is shown."""

    text: str
    type: Literal["text"] = "text"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "text": self.text}


@dataclass(frozen=True)
class SuggestionEvent:
    suggestion: Suggestion
    type: Literal["suggestion"] = "suggestion"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "suggestion": self.suggestion.to_dict()}


@dataclass(frozen=True)
class ErrorEvent:
    """The LLM failed: `message` is for the user, `code` stable (``llm_timeout``...);
    `fallback` is True when the offline advisor answers next."""

    code: str
    message: str
    fallback: bool = True
    type: Literal["error"] = "error"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "code": self.code, "message": self.message, "fallback": self.fallback}


@dataclass(frozen=True)
class DoneEvent:
    """The end of one answer: store `user_message` then `reply` in the conversation."""

    user_message: ChatMessage
    reply: ChatMessage
    type: Literal["done"] = "done"

    @property
    def source(self) -> str:
        return self.reply.source

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "source": self.source, "reply": self.reply.to_dict()}


AssistantEvent = TextEvent | SuggestionEvent | ErrorEvent | DoneEvent


@dataclass(frozen=True)
class AssistantStatus:
    """Whether the LLM is on, and if not why (for the UI's "LLM off" badge)."""

    llm_on: bool
    reason: str | None
    base_url: str
    model: str

    def to_dict(self) -> dict[str, Any]:
        return {"llm_on": self.llm_on, "reason": self.reason, "base_url": self.base_url, "model": self.model}


@dataclass
class _Answer:
    parts: list[str] = field(default_factory=list)
    suggestions: list[Suggestion] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.parts)


class Assistant:
    """The chat use case. Thread-safe; build once (`from_settings`) and share.

    `llm` None means offline: the advisor answers every question.
    """

    def __init__(self, llm: LLMClient | None, *, guide: str | None = None) -> None:
        self.llm = llm
        self.guide = guide if guide is not None else load_user_guide()

    @classmethod
    def from_settings(cls, settings: Settings, *, guide: str | None = None) -> Assistant:
        """Reads the ``SEGLENS_LLM_*`` settings; makes no request."""
        return cls(LLMClient(LLMConfig.from_settings(settings)), guide=guide)

    def close(self) -> None:
        if self.llm is not None:
            self.llm.close()

    def status(self) -> AssistantStatus:
        if self.llm is None:
            return AssistantStatus(False, "no LLM client was set up", "", "")
        config = self.llm.config
        return AssistantStatus(config.configured, config.off_reason, config.display_url, config.model)

    # -- chat -------------------------------------------------------------------------
    def chat(
        self,
        message: str,
        context: ScreenContext | None = None,
        history: Sequence[ChatMessage] = (),
        *,
        lang: str | None = None,
    ) -> Iterator[AssistantEvent]:
        """Answer `message` about `context` after `history` (oldest first), in the UI's
        language `lang` (``en``, ``zh``; a question with Chinese characters is answered in
        Chinese whatever `lang` says).

        Yields text deltas, suggestion events, at most one error event, and ends with one
        `DoneEvent`. Never raises for LLM trouble (that becomes an `ErrorEvent` and the
        advisor's answer); raises ValueError at once for an empty message or one longer
        than 4000 characters.
        """
        text = message.strip()
        if not text:
            raise ValueError("the message is empty: ask a question")
        if len(text) > MAX_MESSAGE_CHARS:
            raise ValueError(f"the message is longer than {MAX_MESSAGE_CHARS} characters")
        return self._chat(text, context, tuple(history), language_of(text, lang))

    def _chat(
        self, message: str, context: ScreenContext | None, history: tuple[ChatMessage, ...], lang: str
    ) -> Iterator[AssistantEvent]:
        user = ChatMessage("user", message)
        facts = advise(context, lang) if context is not None else ()
        answer = _Answer()
        status = self.status()
        earlier = [turn.content for turn in history if turn.role == "assistant"]
        if not status.llm_on or self.llm is None:
            lead = say(lang, "llm_off", reason=(status.reason or "off").rstrip("."))
            yield from self._offline(answer, message, context, facts, lead, lang, earlier)
            yield DoneEvent(user, ChatMessage("assistant", answer.text, tuple(answer.suggestions), "advisor"))
            return

        llm = self.llm
        failure: LLMError | None = None
        messages = self._prompt(message, context, facts, history, lang)
        try:
            yield from self._stream(llm, answer, messages, tools=True)
        except LLMBadRequestError as exc:
            if answer.parts or not _refuses_tools(exc):
                failure = exc
            else:
                log.info("the LLM server refused tools (%s); asking again without them", exc.detail)
                try:
                    yield from self._stream(llm, answer, messages, tools=False)
                except LLMError as again:
                    failure = again
        except LLMError as exc:
            failure = exc

        if failure is not None:
            yield ErrorEvent(failure.code, failure.message)
            shown = {
                (s.threshold, s.merge_threshold, s.points_per_side, s.keywords) for s in answer.suggestions
            }
            remaining = tuple(
                s
                for s in facts
                if (s.threshold, s.merge_threshold, s.points_per_side, s.keywords) not in shown
            )
            lead = say(lang, "llm_failed", message=failure.message)
            yield from self._offline(answer, message, context, remaining, lead, lang, earlier)
            reply = ChatMessage("assistant", answer.text, tuple(answer.suggestions), "advisor", failure.code)
        else:
            if not answer.text.strip():
                summary = (
                    "\n".join(f"- {s.reason}" for s in answer.suggestions)
                    or "(The LLM sent an empty answer.)"
                )
                answer.parts.append(summary)
                yield TextEvent(summary)
            reply = ChatMessage("assistant", answer.text, tuple(answer.suggestions), "llm")
        yield DoneEvent(user, reply)

    def _stream(
        self, llm: LLMClient, answer: _Answer, messages: list[LLMMessage], *, tools: bool
    ) -> Iterator[AssistantEvent]:
        specs = (SUGGEST_PARAMETERS,) if tools else ()
        with closing(llm.stream_chat(messages, tools=specs, temperature=0.3)) as items:
            for item in items:
                if isinstance(item, TextChunk):
                    answer.parts.append(item.text)
                    yield TextEvent(item.text)
                elif isinstance(item, ToolCall):
                    suggestion = self._suggestion_from_call(item)
                    if suggestion is not None and len(answer.suggestions) < MAX_SUGGESTIONS_PER_ANSWER:
                        answer.suggestions.append(suggestion)
                        yield SuggestionEvent(suggestion)

    @staticmethod
    def _suggestion_from_call(call: ToolCall) -> Suggestion | None:
        if call.name != SUGGEST_PARAMETERS_NAME or call.arguments is None:
            log.warning(
                "ignored a tool call from the LLM: %s (%s)", call.name or "?", call.error or "unknown tool"
            )
            return None
        return suggestion_from_arguments(call.arguments)

    def _offline(
        self,
        answer: _Answer,
        message: str,
        context: ScreenContext | None,
        facts: Sequence[Suggestion],
        lead: str,
        lang: str,
        earlier: Sequence[str],
    ) -> Iterator[AssistantEvent]:
        paragraphs = offline_paragraphs(
            message, context, facts, guide=self.guide, lang=lang, lead=lead, earlier_answers=earlier
        )
        # After a partial LLM answer, a rule separates the advisor's part from it.
        separator = "\n\n---\n\n" if answer.parts else ""
        for paragraph in paragraphs:
            text = separator + paragraph
            separator = "\n\n"
            answer.parts.append(text)
            yield TextEvent(text)
        for suggestion in facts:
            answer.suggestions.append(suggestion)
            yield SuggestionEvent(suggestion)

    def _prompt(
        self,
        message: str,
        context: ScreenContext | None,
        facts: Sequence[Suggestion],
        history: Sequence[ChatMessage],
        lang: str,
    ) -> list[LLMMessage]:
        turns = []
        for turn in history[-MAX_HISTORY_MESSAGES:]:
            content = turn.content
            if turn.suggestions:
                content += "\n(suggested: " + "; ".join(fact_text(s) for s in turn.suggestions) + ")"
            turns.append((turn.role, content))
        return build_messages(message, context, facts, turns, guide=self.guide, lang=lang)

    # -- keywords ---------------------------------------------------------------------
    def translate_keywords(
        self, keywords: Sequence[str], *, embedder_language: str | None = "en", check_all: bool = False
    ) -> KeywordTranslation:
        """Keywords the embedder cannot read, translated to English by the LLM (see
        `seglens.services.assistant.translate.translate_keywords`)."""
        llm = self.llm if self.status().llm_on else None
        reason = None if llm is not None else self.status().reason
        return translate_keywords(
            llm, keywords, embedder_language=embedder_language, check_all=check_all, off_reason=reason
        )


def _refuses_tools(error: LLMBadRequestError) -> bool:
    """Whether a 4xx says the model or server cannot do tool calls (Ollama: "does not
    support tools"; vLLM without --enable-auto-tool-choice: "tool choice requires ...")."""
    return error.status in (400, 422) and "tool" in f"{error.message} {error.detail}".lower()
