"""Domain records → response bodies. URLs are paths under the API root."""

from __future__ import annotations

from typing import Any

from seglens.api.schemas import (
    ErrorBody,
    HistoryEntryOut,
    ImageLogOut,
    ImageOut,
    JobOut,
    JobParamsOut,
    JobStatsOut,
    KeywordStatsOut,
    MatchOut,
    MatchSummaryOut,
    ProgressOut,
    ResultOut,
    SlowImageOut,
    StageStatsOut,
)
from seglens.core.types import Match
from seglens.services.jobs.reports import JobStats
from seglens.services.segment.pipeline import TINY_BANNER
from seglens.storage.records import HistoryEntry, JobItemRecord, JobRecord, StoredImage

__all__ = [
    "API_PREFIX",
    "history_out",
    "image_log_out",
    "image_out",
    "job_out",
    "match_out",
    "result_out",
    "stats_out",
    "warning_for",
]

API_PREFIX = "/api/v1"


def warning_for(meaningless: bool) -> str | None:
    return TINY_BANNER if meaningless else None


def image_out(image: StoredImage, root_path: str = "") -> ImageOut:
    base = f"{root_path}{API_PREFIX}/images/{image.id}"
    return ImageOut(
        id=image.id,
        sha256=image.id,
        filename=image.filename,
        width=image.width,
        height=image.height,
        format=image.format,
        bytes=image.bytes,
        created_at=image.created_at,
        file_url=f"{base}/file",
        thumbnail_url=f"{base}/thumbnail",
    )


def _progress(job: JobRecord) -> ProgressOut:
    return ProgressOut(
        total=job.total, done=job.done, failed=job.failed, skipped=job.skipped, remaining=job.remaining
    )


def job_out(job: JobRecord) -> JobOut:
    return JobOut(
        id=job.id,
        status=job.status,
        query=job.query,
        params=JobParamsOut.model_validate(job.params.to_dict()),
        progress=_progress(job),
        matches=job.matches,
        profile=job.profile,
        models=job.models,
        meaningless=job.meaningless,
        warning=warning_for(job.meaningless),
        priority=job.priority,
        interruptions=job.interruptions,
        error=job.error,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        updated_at=job.updated_at,
    )


def match_out(match: Match) -> MatchOut:
    """A match as the API shows it: `Match.to_dict()`, the form stored results have too."""
    return MatchOut.model_validate(match.to_dict())


def _error(item: JobItemRecord) -> ErrorBody | None:
    if not item.error:
        return None
    return ErrorBody(code=item.error_code or "processing_failed", message=item.error)


def result_out(item: JobItemRecord, filename: str | None) -> ResultOut:
    result: dict[str, Any] = item.result or {}
    return ResultOut(
        image_id=item.image_id,
        position=item.position,
        status=item.status,
        filename=filename,
        num_regions=result.get("num_regions"),
        image_matched=result.get("image_matched"),
        matches=[MatchOut.model_validate(m) for m in result.get("matches", ())],
        timings_ms=dict(item.timings_ms or {}),
        cache_hits=dict(result.get("cache_hits", {})),
        warnings=list(result.get("warnings", ())),
        error=_error(item),
        attempts=item.attempts,
        started_at=item.started_at,
        finished_at=item.finished_at,
    )


def image_log_out(item: JobItemRecord, image: StoredImage | None) -> ImageLogOut:
    result: dict[str, Any] = item.result or {}
    per_keyword: dict[str, int] = {}
    for match in result.get("matches", ()):
        per_keyword[match["keyword"]] = per_keyword.get(match["keyword"], 0) + 1
    return ImageLogOut(
        job_id=item.job_id,
        image_id=item.image_id,
        filename=image.filename if image else None,
        status=item.status,
        attempts=item.attempts,
        width=image.width if image else None,
        height=image.height if image else None,
        num_regions=result.get("num_regions"),
        timings_ms=dict(item.timings_ms or {}),
        cache_hits=dict(result.get("cache_hits", {})),
        matches_per_keyword=per_keyword,
        best_scores=dict(result.get("best_scores", {})),
        matches=[MatchSummaryOut.model_validate(m) for m in result.get("matches", ())],
        warnings=list(result.get("warnings", ())),
        error=_error(item),
        started_at=item.started_at,
        finished_at=item.finished_at,
    )


def stats_out(stats: JobStats) -> JobStatsOut:
    job = stats.job
    return JobStatsOut(
        job_id=job.id,
        status=job.status,
        progress=_progress(job),
        elapsed_s=stats.elapsed_s,
        busy_s=stats.busy_s,
        images_per_minute=stats.images_per_minute,
        stages={k: StageStatsOut.model_validate(v) for k, v in stats.stages.items()},
        keywords={k: KeywordStatsOut.model_validate(v) for k, v in stats.keywords.items()},
        slowest=[SlowImageOut.model_validate(s) for s in stats.slowest],
        cache_hits=stats.cache_hits,
        errors=stats.errors,
        retried=stats.retried,
        meaningless=job.meaningless,
        warning=warning_for(job.meaningless),
    )


def history_out(entry: HistoryEntry) -> HistoryEntryOut:
    return HistoryEntryOut.model_validate(entry)
