"""The history log (level 3): every job and every interactive request, searchable by
keyword and date, paginated, exportable as CSV."""

from __future__ import annotations

import csv
import io
import json
import logging
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from seglens.storage.history_repo import HistoryFilter, HistoryRepository
from seglens.storage.records import HistoryEntry

__all__ = ["CSV_COLUMNS", "HistoryFilter", "HistoryService"]

log = logging.getLogger(__name__)

CSV_COLUMNS = (
    "kind",
    "ref",
    "created_at",
    "status",
    "query",
    "image_count",
    "match_count",
    "duration_ms",
    "image_id",
    "params",
)
MAX_EXPORT_ROWS = 100_000


class HistoryService:
    def __init__(self, repo: HistoryRepository):
        self.repo = repo

    def record(
        self,
        kind: str,
        *,
        query: str = "",
        keywords: tuple[str, ...] = (),
        params: dict[str, Any] | None = None,
        image_id: str | None = None,
        image_count: int = 0,
        match_count: int = 0,
        duration_ms: float = 0.0,
        coalesce_within_s: float | None = None,
    ) -> None:
        """Log an interactive request. With `coalesce_within_s`, one that follows the newest
        entry of its kind on the same image within that time replaces it. A failure to
        write is logged, never raised: the request it describes has already succeeded."""
        try:
            self.repo.add_interaction(
                coalesce_within_s=coalesce_within_s,
                kind=kind,
                query=query,
                keywords=keywords,
                params=params,
                image_id=image_id,
                image_count=image_count,
                match_count=match_count,
                duration_ms=duration_ms,
            )
        except SQLAlchemyError:
            log.exception("could not write the history entry")

    def page(self, filters: HistoryFilter, *, limit: int, offset: int) -> tuple[list[HistoryEntry], int]:
        return self.repo.page(filters, limit=limit, offset=offset)

    def clear_interactions(self, filters: HistoryFilter) -> int:
        """Delete the interactive entries `filters` match; returns how many."""
        return self.repo.delete_interactions(filters)

    def job_refs(self, filters: HistoryFilter) -> list[str]:
        """Ids of the jobs `filters` match (kind forced to job), newest first."""
        refs: list[str] = []
        job_filters = HistoryFilter(
            keyword=filters.keyword, kind="job", since=filters.since, until=filters.until
        )
        while True:
            entries, total = self.repo.page(job_filters, limit=1000, offset=len(refs))
            refs += [e.ref for e in entries]
            if not entries or len(refs) >= total:
                return refs

    def export_csv(self, filters: HistoryFilter) -> str:
        """Every matching entry, newest first (at most 100,000 rows)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        offset, page = 0, 1000
        while offset < MAX_EXPORT_ROWS:
            entries, _ = self.repo.page(filters, limit=page, offset=offset)
            for e in entries:
                writer.writerow(
                    [
                        e.kind,
                        e.ref,
                        e.created_at.isoformat(),
                        e.status,
                        e.query,
                        e.image_count,
                        e.match_count,
                        "" if e.duration_ms is None else round(e.duration_ms, 2),
                        e.image_id or "",
                        json.dumps(e.params, sort_keys=True),
                    ]
                )
            if len(entries) < page:
                break
            offset += page
        return buffer.getvalue()
