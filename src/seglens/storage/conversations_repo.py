"""AI-assistant conversations and their messages in the database.

A conversation's messages are kept in the order they were written (ascending ids); its
`updated_at` moves with every message, so lists are newest-activity first. Deleting a
conversation deletes its messages (``ON DELETE CASCADE``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select

from seglens.storage.db import Database
from seglens.storage.tables import ConversationMessageRow, ConversationRow, utcnow

__all__ = ["ConversationRecord", "ConversationRepository", "MessageRecord", "NewMessage"]


@dataclass(frozen=True)
class NewMessage:
    """A message to store. `suggestions` are plain JSON dicts; `source` is ``user``,
    ``llm`` or ``advisor``."""

    role: str
    content: str
    source: str
    suggestions: list[dict[str, Any]] = field(default_factory=list)
    error_code: str | None = None


@dataclass(frozen=True)
class MessageRecord:
    id: int
    conversation_id: str
    role: str
    content: str
    suggestions: list[dict[str, Any]]
    source: str
    error_code: str | None
    created_at: datetime


@dataclass(frozen=True)
class ConversationRecord:
    id: str
    title: str
    created_at: datetime
    updated_at: datetime
    context: dict[str, Any] | None
    message_count: int


def _message(row: ConversationMessageRow) -> MessageRecord:
    return MessageRecord(
        id=row.id,
        conversation_id=row.conversation_id,
        role=row.role,
        content=row.content,
        suggestions=list(row.suggestions or []),
        source=row.source,
        error_code=row.error_code,
        created_at=row.created_at,
    )


def _conversation(row: ConversationRow, count: int) -> ConversationRecord:
    return ConversationRecord(
        id=row.id,
        title=row.title,
        created_at=row.created_at,
        updated_at=row.updated_at,
        context=dict(row.context) if row.context is not None else None,
        message_count=int(count),
    )


def _rows(conversation_id: str, messages: Sequence[NewMessage], at: datetime) -> list[ConversationMessageRow]:
    return [
        ConversationMessageRow(
            conversation_id=conversation_id,
            role=m.role,
            content=m.content,
            suggestions=list(m.suggestions),
            source=m.source,
            error_code=m.error_code,
            created_at=at,
        )
        for m in messages
    ]


class ConversationRepository:
    """Safe to share between threads; every method is one transaction."""

    _UNSET: Any = object()

    def __init__(self, db: Database):
        self.db = db

    def _count(self, session: Any, conversation_id: str) -> int:
        return int(
            session.scalar(
                select(func.count())
                .select_from(ConversationMessageRow)
                .where(ConversationMessageRow.conversation_id == conversation_id)
            )
            or 0
        )

    def create(
        self,
        conversation_id: str,
        title: str,
        *,
        context: dict[str, Any] | None = None,
        messages: Sequence[NewMessage] = (),
    ) -> ConversationRecord:
        now = utcnow()
        with self.db.write() as session:
            row = ConversationRow(
                id=conversation_id, title=title, created_at=now, updated_at=now, context=context
            )
            session.add(row)
            session.flush()
            session.add_all(_rows(conversation_id, messages, now))
            return _conversation(row, len(messages))

    def append(
        self,
        conversation_id: str,
        messages: Sequence[NewMessage],
        *,
        context: dict[str, Any] | None = _UNSET,
    ) -> ConversationRecord | None:
        """Add `messages` (and replace the context snapshot when `context` is given);
        None when the conversation no longer exists."""
        now = utcnow()
        with self.db.write() as session:
            row = session.get(ConversationRow, conversation_id)
            if row is None:
                return None
            row.updated_at = now
            if context is not self._UNSET:
                row.context = context
            session.add_all(_rows(conversation_id, messages, now))
            session.flush()
            return _conversation(row, self._count(session, conversation_id))

    def get(self, conversation_id: str) -> ConversationRecord | None:
        with self.db.read() as session:
            row = session.get(ConversationRow, conversation_id)
            return None if row is None else _conversation(row, self._count(session, conversation_id))

    def messages(self, conversation_id: str, *, last: int | None = None) -> list[MessageRecord]:
        """Oldest first; with `last`, only the last `last` messages."""
        query = select(ConversationMessageRow).where(
            ConversationMessageRow.conversation_id == conversation_id
        )
        with self.db.read() as session:
            if last is None:
                rows = session.scalars(query.order_by(ConversationMessageRow.id)).all()
            else:
                rows = session.scalars(query.order_by(ConversationMessageRow.id.desc()).limit(last)).all()
                rows = list(reversed(rows))
            return [_message(r) for r in rows]

    def page(self, *, limit: int, offset: int) -> tuple[list[ConversationRecord], int]:
        """Most recently active first."""
        counts = (
            select(ConversationMessageRow.conversation_id, func.count().label("n"))
            .group_by(ConversationMessageRow.conversation_id)
            .subquery()
        )
        with self.db.read() as session:
            total = session.scalar(select(func.count()).select_from(ConversationRow))
            rows = session.execute(
                select(ConversationRow, func.coalesce(counts.c.n, 0))
                .outerjoin(counts, counts.c.conversation_id == ConversationRow.id)
                .order_by(
                    ConversationRow.updated_at.desc(), ConversationRow.created_at.desc(), ConversationRow.id
                )
                .limit(limit)
                .offset(offset)
            ).all()
            return [_conversation(row, n) for row, n in rows], int(total or 0)

    def delete(self, conversation_id: str) -> bool:
        with self.db.write() as session:
            deleted = session.execute(delete(ConversationRow).where(ConversationRow.id == conversation_id))
            return bool(deleted.rowcount)  # type: ignore[attr-defined]

    def delete_all(self) -> int:
        """Delete every conversation; returns how many there were."""
        with self.db.write() as session:
            session.execute(delete(ConversationMessageRow))
            deleted = session.execute(delete(ConversationRow))
            return int(deleted.rowcount)  # type: ignore[attr-defined]
