"""Level 3 log: every job and interactive request, filterable, paginated, as CSV."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BeforeValidator

from seglens.api.deps import HistoryDep, JobsDep
from seglens.api.errors import ApiError, responses
from seglens.api.schemas import HistoryClearedOut, HistoryPage
from seglens.api.views import history_out
from seglens.services.errors import NotFound
from seglens.services.history import HistoryFilter
from seglens.storage.records import FINISHED_JOB_STATES

__all__ = ["router"]

router = APIRouter(tags=["history"])

Kind = Literal["job", "query", "prompt", "search"]


def _filters(
    keyword: str | None, kind: Kind | None, since: datetime | None, until: datetime | None
) -> HistoryFilter:
    def utc(value: datetime | None) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)

    try:
        since_utc, until_utc = utc(since), utc(until)
    except (OverflowError, ValueError):
        raise ApiError(422, "validation_error", "since/until is out of range") from None
    return HistoryFilter(keyword=keyword or None, kind=kind, since=since_utc, until=until_utc)


KeywordQ = Annotated[
    str | None, Query(max_length=80, description="Entries whose query has this keyword (case-insensitive).")
]


def _iso_only(value: object) -> object:
    # Pydantic would read "1700000000" as Unix time; the schema promises ISO 8601 only.
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+(\.\d*)?\s*", value):
        raise ValueError("use an ISO 8601 date or time, e.g. 2026-01-31 or 2026-01-31T12:00:00Z")
    return value


SinceQ = Annotated[
    datetime | None,
    BeforeValidator(_iso_only),
    Query(description="From this time (inclusive, ISO 8601); times without a zone are UTC."),
]
UntilQ = Annotated[
    datetime | None, BeforeValidator(_iso_only), Query(description="Before this time (exclusive, ISO 8601).")
]


@router.get("/history", summary="Jobs and interactive requests, newest first", responses=responses(422))
def list_history(
    history: HistoryDep,
    keyword: KeywordQ = None,
    kind: Kind | None = None,
    since: SinceQ = None,
    until: UntilQ = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> HistoryPage:
    entries, total = history.page(_filters(keyword, kind, since, until), limit=limit, offset=offset)
    return HistoryPage(items=[history_out(e) for e in entries], total=total, limit=limit, offset=offset)


@router.get(
    "/history/export",
    summary="The history as CSV (same filters, no paging)",
    response_class=Response,
    responses={
        200: {
            "content": {"text/csv": {"schema": {"type": "string"}}},
            "description": "CSV, one row per entry",
        },
        **responses(422),
    },
)
def export_history(
    history: HistoryDep,
    keyword: KeywordQ = None,
    kind: Kind | None = None,
    since: SinceQ = None,
    until: UntilQ = None,
) -> Response:
    text = history.export_csv(_filters(keyword, kind, since, until))
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="seglens-history.csv"'},
    )


@router.delete(
    "/history",
    summary="Clear the history (same filters): interactive entries and finished jobs",
    responses=responses(422),
)
def clear_history(
    history: HistoryDep,
    jobs: JobsDep,
    keyword: KeywordQ = None,
    kind: Kind | None = None,
    since: SinceQ = None,
    until: UntilQ = None,
) -> HistoryClearedOut:
    """Deletes the matching interactive entries and the matching jobs that are completed,
    failed or cancelled, with their results. Queued, running and interrupted jobs stay."""
    filters = _filters(keyword, kind, since, until)
    interactions = history.clear_interactions(filters)
    deleted_jobs = 0
    if kind in (None, "job"):
        for ref in history.job_refs(filters):
            job = jobs.find(ref)
            if job is None or job.status not in FINISHED_JOB_STATES:
                continue
            try:
                jobs.delete(ref)
            except NotFound:  # deleted meanwhile
                continue
            deleted_jobs += 1
    return HistoryClearedOut(
        deleted=interactions + deleted_jobs, interactions=interactions, jobs=deleted_jobs
    )
