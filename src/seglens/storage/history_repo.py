"""The history log (level 3): jobs and interactive requests in one time-ordered list."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Float, String, cast, delete, func, literal, null, select, union_all

from seglens.storage.db import Database
from seglens.storage.records import HistoryEntry, keywords_key
from seglens.storage.tables import InteractionRow, JobRow, UtcDateTime, utcnow

__all__ = ["HistoryFilter", "HistoryRepository"]


@dataclass(frozen=True)
class HistoryFilter:
    """`keyword` matches one whole keyword of the query, case-insensitively; `since` and
    `until` bound the creation time (inclusive, exclusive)."""

    keyword: str | None = None
    kind: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class HistoryRepository:
    """The history log (level 3): interactive requests as stored rows, listed together with
    jobs newest first."""

    def __init__(self, db: Database):
        self.db = db

    def add_interaction(
        self,
        *,
        kind: str,
        query: str = "",
        keywords: tuple[str, ...] = (),
        params: dict[str, Any] | None = None,
        image_id: str | None = None,
        image_count: int = 0,
        match_count: int = 0,
        duration_ms: float = 0.0,
        coalesce_within_s: float | None = None,
    ) -> None:
        """Add one entry. With `coalesce_within_s`, an entry that follows the newest one
        of the same kind on the same image within that many seconds, with no other request
        in between, replaces it instead (a slider dragged over one image is one entry with
        its final settings, not one per position)."""
        now = utcnow()
        values = {
            "created_at": now,
            "query": query,
            "keywords": keywords_key(keywords),
            "params": params or {},
            "match_count": match_count,
            "image_count": image_count,
            "duration_ms": duration_ms,
        }
        with self.db.write() as session:
            if coalesce_within_s is not None and image_id is not None:
                last = session.scalars(
                    select(InteractionRow).order_by(InteractionRow.id.desc()).limit(1)
                ).first()
                if (
                    last is not None
                    and last.kind == kind
                    and last.image_id == image_id
                    and (now - last.created_at).total_seconds() <= coalesce_within_s
                ):
                    for name, value in values.items():
                        setattr(last, name, value)
                    return
            session.add(InteractionRow(kind=kind, image_id=image_id, **values))

    def page(self, filters: HistoryFilter, *, limit: int, offset: int) -> tuple[list[HistoryEntry], int]:
        """Newest first."""
        jobs = select(
            literal("job").label("kind"),
            JobRow.id.label("ref"),
            JobRow.created_at.label("created_at"),
            JobRow.query.label("query"),
            JobRow.keywords.label("keywords"),
            JobRow.params.label("params"),
            JobRow.status.label("status"),
            JobRow.total.label("image_count"),
            JobRow.matches.label("match_count"),
            cast(null(), Float).label("duration_ms"),
            JobRow.started_at.label("started_at"),
            JobRow.finished_at.label("finished_at"),
            cast(null(), String).label("image_id"),
        )
        interactions = select(
            InteractionRow.kind,
            cast(InteractionRow.id, String),
            InteractionRow.created_at,
            InteractionRow.query,
            InteractionRow.keywords,
            InteractionRow.params,
            literal("completed"),
            InteractionRow.image_count,
            InteractionRow.match_count,
            InteractionRow.duration_ms,
            cast(null(), UtcDateTime),
            cast(null(), UtcDateTime),
            InteractionRow.image_id,
        )
        union = union_all(jobs, interactions).subquery()
        where: list[ColumnElement[bool]] = []
        if filters.keyword:
            pattern = "%" + _escape_like(keywords_key([filters.keyword.strip()])) + "%"
            where.append(union.c.keywords.like(pattern, escape="\\"))
        if filters.kind:
            where.append(union.c.kind == filters.kind)
        if filters.since:
            where.append(union.c.created_at >= filters.since)
        if filters.until:
            where.append(union.c.created_at < filters.until)
        with self.db.read() as session:
            total = session.scalar(select(func.count()).select_from(union).where(*where))
            rows = session.execute(
                select(union)
                .where(*where)
                .order_by(union.c.created_at.desc(), union.c.ref.desc())
                .limit(limit)
                .offset(offset)
            ).all()
        entries = []
        for row in rows:
            duration = row.duration_ms
            if row.kind == "job" and row.started_at and row.finished_at:
                duration = (row.finished_at - row.started_at).total_seconds() * 1000
            entries.append(
                HistoryEntry(
                    kind=row.kind,
                    ref=str(row.ref),
                    created_at=row.created_at,
                    query=row.query,
                    params=dict(row.params or {}),
                    status=row.status,
                    image_count=int(row.image_count),
                    match_count=int(row.match_count),
                    duration_ms=None if duration is None else float(duration),
                    image_id=row.image_id,
                )
            )
        return entries, int(total or 0)

    def delete_interactions(self, filters: HistoryFilter) -> int:
        """Delete the interactive entries (query, prompt, search) that `filters` match;
        returns how many. Jobs are not touched here (they own results)."""
        if filters.kind == "job":
            return 0
        where: list[ColumnElement[bool]] = []
        if filters.keyword:
            pattern = "%" + _escape_like(keywords_key([filters.keyword.strip()])) + "%"
            where.append(InteractionRow.keywords.like(pattern, escape="\\"))
        if filters.kind:
            where.append(InteractionRow.kind == filters.kind)
        if filters.since:
            where.append(InteractionRow.created_at >= filters.since)
        if filters.until:
            where.append(InteractionRow.created_at < filters.until)
        with self.db.write() as session:
            result = session.execute(delete(InteractionRow).where(*where))
            return int(getattr(result, "rowcount", 0) or 0)
