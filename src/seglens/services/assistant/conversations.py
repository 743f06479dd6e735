"""Stored assistant conversations: list, read, clear, export (JSON or Markdown).

A conversation is created by its first question; each answer is stored when it is
complete, with the suggestions it made, who wrote it (``llm`` or ``advisor``) and the
LLM's error code when the LLM failed during it. Its context snapshot is what the user was
looking at in the latest turn.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any, Literal

from seglens._version import __version__
from seglens.services.assistant.chat import ChatMessage
from seglens.services.errors import NotFound
from seglens.services.jobs.reports import Export
from seglens.storage.conversations_repo import (
    ConversationRecord,
    ConversationRepository,
    MessageRecord,
    NewMessage,
)

__all__ = ["ConversationService", "ExportFormat", "conversation_title"]

ExportFormat = Literal["json", "md"]
TITLE_CHARS = 80


def conversation_title(message: str) -> str:
    """The first line of `message`, whitespace collapsed, at most 80 characters."""
    line = next((ln for ln in message.strip().splitlines() if ln.strip()), "")
    text = " ".join(line.split())
    return text if len(text) <= TITLE_CHARS else text[: TITLE_CHARS - 1].rstrip() + "…"


def _new(message: ChatMessage) -> NewMessage:
    return NewMessage(
        role=message.role,
        content=message.content,
        source=message.source,
        suggestions=[s.to_dict() for s in message.suggestions],
        error_code=message.error_code,
    )


def _chat_message(record: MessageRecord) -> ChatMessage | None:
    try:
        return ChatMessage.from_dict(
            {
                "role": record.role,
                "content": record.content,
                "suggestions": record.suggestions,
                "source": record.source,
                "error_code": record.error_code,
            }
        )
    except ValueError:
        return None


class ConversationService:
    def __init__(self, repo: ConversationRepository):
        self.repo = repo

    # -- reads -------------------------------------------------------------------------
    def get(self, conversation_id: str) -> ConversationRecord:
        conversation = self.repo.get(conversation_id)
        if conversation is None:
            raise NotFound("conversation_not_found", f"no conversation with id {conversation_id[:80]!r}")
        return conversation

    def messages(self, conversation_id: str) -> list[MessageRecord]:
        """Oldest first."""
        self.get(conversation_id)
        return self.repo.messages(conversation_id)

    def history(self, conversation_id: str, *, last: int = 24) -> list[ChatMessage]:
        """The last `last` messages as `ChatMessage`s, oldest first, for the LLM."""
        return [m for r in self.repo.messages(conversation_id, last=last) if (m := _chat_message(r))]

    def page(self, *, limit: int, offset: int) -> tuple[list[ConversationRecord], int]:
        """Most recently active first."""
        return self.repo.page(limit=limit, offset=offset)

    # -- writes ------------------------------------------------------------------------
    def begin(
        self, conversation_id: str | None, question: ChatMessage, context: dict[str, Any] | None
    ) -> ConversationRecord:
        """Store `question` in conversation `conversation_id` (None: a new conversation,
        titled after the question), with the new context snapshot."""
        if conversation_id is None:
            return self.repo.create(
                uuid.uuid4().hex,
                conversation_title(question.content),
                context=context,
                messages=[_new(question)],
            )
        updated = self.repo.append(conversation_id, [_new(question)], context=context)
        if updated is None:
            raise NotFound("conversation_not_found", f"no conversation with id {conversation_id[:80]!r}")
        return updated

    def add_reply(self, conversation_id: str, reply: ChatMessage) -> bool:
        """Store an answer; False when the conversation was deleted meanwhile."""
        return self.repo.append(conversation_id, [_new(reply)]) is not None

    def delete(self, conversation_id: str) -> None:
        if not self.repo.delete(conversation_id):
            raise NotFound("conversation_not_found", f"no conversation with id {conversation_id[:80]!r}")

    def clear(self) -> int:
        """Delete every conversation; returns how many were deleted."""
        return self.repo.delete_all()

    # -- exports -----------------------------------------------------------------------
    def export(self, conversation_id: str, fmt: ExportFormat) -> Export:
        conversation = self.get(conversation_id)
        messages = self.repo.messages(conversation_id)
        stem = f"seglens-conversation-{conversation.id[:12]}"
        if fmt == "json":
            document = conversation_document(conversation, messages)
            text = json.dumps(document, indent=2, ensure_ascii=False)
            return Export("application/json", f"{stem}.json", content=text.encode())
        text = conversation_markdown(conversation, messages)
        return Export("text/markdown; charset=utf-8", f"{stem}.md", content=text.encode())


def _iso(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat(timespec="seconds")


def message_document(message: MessageRecord) -> dict[str, Any]:
    return {
        "id": message.id,
        "role": message.role,
        "content": message.content,
        "suggestions": message.suggestions,
        "source": message.source,
        "error_code": message.error_code,
        "created_at": _iso(message.created_at),
    }


def conversation_document(
    conversation: ConversationRecord, messages: Sequence[MessageRecord]
) -> dict[str, Any]:
    """The JSON export: the conversation, its context snapshot and every message."""
    return {
        "seglens_version": __version__,
        "exported_at": _iso(datetime.now(timezone.utc)),
        "id": conversation.id,
        "title": conversation.title,
        "created_at": _iso(conversation.created_at),
        "updated_at": _iso(conversation.updated_at),
        "context": conversation.context,
        "messages": [message_document(m) for m in messages],
    }


_SOURCE_NAMES = {"llm": "Assistant (LLM)", "advisor": "Assistant (offline advisor)", "user": "You"}
_SETTING_NAMES = ("threshold", "merge_threshold", "points_per_side", "keywords", "profile")


def _suggestion_line(suggestion: dict[str, Any]) -> str:
    settings = []
    for name in _SETTING_NAMES:
        value = suggestion.get(name)
        if value is not None:
            shown = ", ".join(value) if isinstance(value, list) else value
            settings.append(f"{name} = {shown}")
    reason = re.sub(r"\s+", " ", str(suggestion.get("reason") or "")).strip()
    head = "; ".join(settings) or "advice"
    return f"- **{head}**: {reason}" if reason else f"- **{head}**"


def _context_lines(context: dict[str, Any] | None) -> list[str]:
    if not context:
        return []
    lines = []
    if context.get("image_id"):
        lines.append(f"- Image: `{context['image_id']}`")
    if context.get("job_id"):
        lines.append(f"- Job: `{context['job_id']}`")
    screen = context.get("screen") or {}
    keywords = screen.get("keywords") or []
    if keywords:
        lines.append(f"- Keywords: {', '.join(keywords)}")
    if "threshold" in screen:
        lines.append(
            f"- Threshold {screen['threshold']}, merging threshold {screen.get('merge_threshold')}, "
            f"profile {screen.get('profile') or '?'}"
        )
    return lines


def conversation_markdown(conversation: ConversationRecord, messages: Sequence[MessageRecord]) -> str:
    """The Markdown export: a heading per message, its suggestions as a list."""
    lines = [
        f"# {conversation.title or 'Conversation'}",
        "",
        f"- Conversation: `{conversation.id}`",
        f"- Started: {_iso(conversation.created_at)}; last message: {_iso(conversation.updated_at)}",
        *_context_lines(conversation.context),
        "",
    ]
    for message in messages:
        who = _SOURCE_NAMES.get(message.source, message.role.capitalize())
        lines += [f"## {who} · {_iso(message.created_at)}", "", message.content.strip(), ""]
        if message.error_code:
            lines += [f"_The LLM failed: `{message.error_code}`._", ""]
        if message.suggestions:
            lines += ["Suggestions:", "", *(_suggestion_line(s) for s in message.suggestions), ""]
    return "\n".join(lines).rstrip() + "\n"
