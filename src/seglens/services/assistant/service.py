"""The assistant as the server offers it: chat turns persisted in conversations, advice
without the LLM, keyword translation, status.

`AssistantService.start_chat` does everything that can fail with a plain error first
(message, conversation, capacity, screen context), stores the question, and only then
hands back a `ChatTurn` whose `events` stream the answer. The stream never raises: LLM
trouble becomes an `ErrorEvent` and the advisor's answer (see `Assistant.chat`), and an
unexpected failure becomes an ``assistant_failed`` error; it always ends with one
`DoneEvent`, after the answer has been stored.

At most `max_concurrent` chats and translations talk to the LLM at once (each holds a
thread while it waits on the LLM); more get `Busy` (HTTP 429).
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from sqlalchemy.exc import SQLAlchemyError

from seglens.services.assistant.advisor import ScreenContext, Suggestion, advise
from seglens.services.assistant.chat import (
    MAX_MESSAGE_CHARS,
    Assistant,
    AssistantEvent,
    AssistantStatus,
    ChatMessage,
    DoneEvent,
    ErrorEvent,
    KeywordTranslation,
    SuggestionEvent,
    TextEvent,
)
from seglens.services.assistant.context import ContextRequest, ScreenContexts
from seglens.services.assistant.conversations import ConversationService
from seglens.services.assistant.offline import describe_context
from seglens.services.errors import Busy, InvalidInput

__all__ = ["Advice", "AssistantService", "ChatTurn"]

log = logging.getLogger("seglens.assistant")

_FAILED_TEXT = "_The assistant failed unexpectedly; the server's log says why._"


class _Slots:
    """A counter of LLM conversations in flight with a hard limit."""

    def __init__(self, limit: int):
        self.limit = max(1, limit)
        self.used = 0
        self._lock = threading.Lock()

    def take(self) -> None:
        with self._lock:
            if self.used >= self.limit:
                raise Busy(
                    "assistant_busy",
                    f"{self.used} assistant requests are already running (limit {self.limit}); try again shortly",
                    5,
                )
            self.used += 1

    def give(self) -> None:
        with self._lock:
            self.used = max(0, self.used - 1)


class _Release:
    """Gives one slot back, once, whoever calls first."""

    def __init__(self, slots: _Slots):
        self._slots = slots
        self._lock = threading.Lock()
        self._done = False

    def __call__(self) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
        self._slots.give()


def _close(iterator: Iterator[object]) -> None:
    close = getattr(iterator, "close", None)
    if close is not None:
        close()


@dataclass
class ChatTurn:
    """One answer on its way. Iterate `events` (blocking: run it in a worker thread), then
    `close()`, also when the client went away: it stops the LLM stream and frees the slot
    (so does the end of the stream, or dropping the turn)."""

    conversation_id: str
    events: Iterator[AssistantEvent]
    release: Callable[[], None] = field(repr=False)

    def close(self) -> None:
        _close(self.events)
        self.release()


@dataclass(frozen=True)
class Advice:
    """The offline advisor's view: the context, its suggestions and a plain account."""

    context: ScreenContext
    suggestions: tuple[Suggestion, ...]
    summary: str


class AssistantService:
    def __init__(
        self,
        assistant: Assistant,
        conversations: ConversationService,
        contexts: ScreenContexts,
        *,
        max_concurrent: int = 8,
    ):
        self.assistant = assistant
        self.conversations = conversations
        self.contexts = contexts
        self._slots = _Slots(max_concurrent)

    def close(self) -> None:
        self.assistant.close()

    def status(self) -> AssistantStatus:
        return self.assistant.status()

    # -- chat --------------------------------------------------------------------------
    def start_chat(
        self,
        message: str,
        *,
        conversation_id: str | None = None,
        context: ContextRequest | None = None,
        lang: str | None = None,
    ) -> ChatTurn:
        """Check everything, store the question and return the turn to stream; the
        answer is in the UI's language `lang` (``en``, ``zh``) or the question's.

        Raises `InvalidInput` (empty or too long message, bad context), `NotFound`
        (unknown conversation, job or image), `Busy` (too many at once) and, for an image
        context, `ModelsUnavailable` like ``POST /query``.
        """
        text = message.strip()
        if not text:
            raise InvalidInput("invalid_message", "the message is empty: ask a question")
        if len(text) > MAX_MESSAGE_CHARS:
            raise InvalidInput(
                "invalid_message", f"the message is longer than {MAX_MESSAGE_CHARS} characters"
            )
        if conversation_id is not None:
            self.conversations.get(conversation_id)
        self._slots.take()
        release = _Release(self._slots)
        try:
            screen = self.contexts.build(context)
            history = self.conversations.history(conversation_id) if conversation_id else []
            snapshot = None
            if context is not None and context.scope is not None and screen is not None:
                snapshot = {**context.to_dict(), "screen": screen.to_dict()}
            question = ChatMessage("user", text)
            stored = self.conversations.begin(conversation_id, question, snapshot)
        except BaseException:
            release()
            raise
        answer = self._answer(stored.id, question, screen, history, release, lang)
        turn = ChatTurn(stored.id, answer, release)
        weakref.finalize(turn, release)
        return turn

    def _answer(
        self,
        conversation_id: str,
        question: ChatMessage,
        context: ScreenContext | None,
        history: Sequence[ChatMessage],
        release: Callable[[], None],
        lang: str | None,
    ) -> Iterator[AssistantEvent]:
        parts: list[str] = []
        suggestions: list[Suggestion] = []
        events: Iterator[AssistantEvent] = iter(())
        try:
            events = self.assistant.chat(question.content, context, history, lang=lang)
            for event in events:
                if isinstance(event, DoneEvent):
                    yield from self._finish(conversation_id, event)
                    return
                if isinstance(event, TextEvent):
                    parts.append(event.text)
                elif isinstance(event, SuggestionEvent):
                    suggestions.append(event.suggestion)
                yield event
        except Exception:
            log.exception("the assistant failed", extra={"fields": {"conversation_id": conversation_id}})
            yield ErrorEvent("assistant_failed", "The assistant failed unexpectedly.", fallback=False)
            text = ("\n\n" if parts else "") + _FAILED_TEXT
            parts.append(text)
            yield TextEvent(text)
            reply = ChatMessage(
                "assistant", "".join(parts), tuple(suggestions), "advisor", "assistant_failed"
            )
            yield from self._finish(conversation_id, DoneEvent(question, reply))
        finally:
            _close(events)
            release()

    def _finish(self, conversation_id: str, done: DoneEvent) -> Iterator[AssistantEvent]:
        try:
            saved = self.conversations.add_reply(conversation_id, done.reply)
        except SQLAlchemyError:
            log.exception(
                "could not store the answer", extra={"fields": {"conversation_id": conversation_id}}
            )
            yield ErrorEvent(
                "conversation_not_saved", "The answer could not be saved in the conversation.", fallback=False
            )
        else:
            if not saved:
                log.info(
                    "conversation deleted while answering",
                    extra={"fields": {"conversation_id": conversation_id}},
                )
        yield done

    # -- no LLM ------------------------------------------------------------------------
    def advice(self, request: ContextRequest, lang: str = "en") -> Advice:
        """The advisor's suggestions for a job or an image, written in `lang`; never
        calls the LLM. The context comes from the cache when the screen is unchanged."""
        context = self.contexts.build(request)
        if context is None:
            raise InvalidInput("invalid_context", "give job_id, or image_id with query")
        return Advice(context, advise(context, lang), describe_context(context, lang))

    def translate(
        self, keywords: Sequence[str], *, check_all: bool = False
    ) -> tuple[KeywordTranslation, str]:
        """Keywords the loaded embedder cannot read, translated by the LLM; returns the
        translation and the embedder's language."""
        language = self.contexts.embedder_language()
        self._slots.take()
        try:
            translation = self.assistant.translate_keywords(
                keywords, embedder_language=language, check_all=check_all
            )
        finally:
            self._slots.give()
        return translation, language
