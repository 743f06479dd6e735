"""What a job produced: per-image logs (level 1), batch statistics (level 2), downloads.

Statistics are computed from the stored per-image timings on demand, so they are always
consistent with the results. Exports: COCO instance JSON with provenance (query, params,
model ids, profile, version), a CSV with one row per match, a zip of mask PNGs, a zip of
overlays.

An export shows what a screen shows: it takes an `ExportView` (the query and query-time
settings on screen, by default the job's own) and, when that differs from the job's, matches
every done image again from the cached regions, exactly as ``POST /query`` does.
"""

from __future__ import annotations

import io
import json
import os
import re
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np

from seglens._version import __version__
from seglens.core.exports import CSV_COLUMNS, ImageRecord, coco_document, csv_text, match_rows
from seglens.core.query import parse_query
from seglens.core.render import render_mask_png
from seglens.core.types import QueryParams
from seglens.services.errors import InvalidInput
from seglens.services.jobs.service import JobService
from seglens.services.jobs.types import item_image_record
from seglens.services.provider import PipelineProvider
from seglens.services.segment.images import ImageService
from seglens.services.segment.pipeline import TINY_BANNER
from seglens.storage.records import JobItemRecord, JobRecord

__all__ = ["Export", "ExportFormat", "ExportView", "JobReports", "JobStats", "StageStats", "export_view"]

ExportFormat = Literal["coco", "csv", "masks", "overlays"]
_SLOWEST = 5


@dataclass(frozen=True)
class StageStats:
    """Milliseconds of one stage over a job's images: how many images timed it, mean, median,
    95th percentile and maximum."""

    count: int
    mean_ms: float
    p50_ms: float
    p95_ms: float
    max_ms: float


@dataclass(frozen=True)
class KeywordStats:
    """One keyword over a job: its matches, the images with at least one, and its best score in
    [0, 1]."""

    matches: int
    images: int
    best_score: float


@dataclass(frozen=True)
class SlowImage:
    """One of a job's slowest images: its id, file name and total milliseconds."""

    image_id: str
    filename: str
    total_ms: float


@dataclass(frozen=True)
class JobStats:
    """Batch statistics. `elapsed_s` runs from the first image started to the last one
    finished (time the server was down in between included); `images_per_minute` is
    ``(done + failed) / elapsed``; `busy_s` sums the per-image processing times."""

    job: JobRecord
    elapsed_s: float | None
    busy_s: float
    images_per_minute: float | None
    stages: dict[str, StageStats]
    keywords: dict[str, KeywordStats]
    slowest: list[SlowImage]
    cache_hits: dict[str, int]
    errors: dict[str, int]
    retried: int


@dataclass(frozen=True)
class Export:
    """A download: either `content` in memory or a temporary file at `path` that the
    caller deletes after sending."""

    media_type: str
    filename: str
    content: bytes | None = None
    path: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ExportView:
    """What an export shows: the `query` text, the query-time `params` and the overlays'
    `alpha` (opacity in [0, 1])."""

    query: str
    params: QueryParams
    alpha: float


def export_view(
    job: JobRecord, query: str | None = None, overrides: Mapping[str, object] | None = None
) -> ExportView:
    """The job's own view with `query` and `overrides` (``threshold``, ``merge_threshold``,
    ``mode``, ``merge_strategy``, ``alpha``; None means the job's) put in. Raises
    `InvalidInput` (``invalid_query``, ``invalid_params``) for values a query would refuse."""
    base = job.params
    given: dict[str, Any] = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = set(given) - {*QueryParams.__dataclass_fields__, "alpha"}
    if unknown:
        raise InvalidInput("invalid_params", f"unknown export settings: {', '.join(sorted(unknown))}")
    alpha = float(given.pop("alpha", base.alpha))
    if not 0.0 <= alpha <= 1.0:
        raise InvalidInput("invalid_params", f"alpha must be in [0, 1], got {alpha}")
    try:
        params = replace(base.query_params(), **given)
    except (TypeError, ValueError) as error:
        raise InvalidInput("invalid_params", str(error)) from None
    text = job.query if query is None else query
    try:
        parse_query(text)
    except ValueError as error:
        raise InvalidInput("invalid_query", str(error)) from None
    return ExportView(text, params, alpha)


def _stage_stats(values: list[float]) -> StageStats:
    array = np.asarray(values, np.float64)
    return StageStats(
        count=len(values),
        mean_ms=round(float(array.mean()), 3),
        p50_ms=round(float(np.percentile(array, 50)), 3),
        p95_ms=round(float(np.percentile(array, 95)), 3),
        max_ms=round(float(array.max()), 3),
    )


def _safe(text: str, limit: int = 40) -> str:
    return re.sub(r"[^\w.-]+", "_", text)[:limit] or "x"


class JobReports:
    """A job's level-2 statistics and its exports (COCO JSON, CSV, and zips of masks or
    overlays), read from the job store. `NotFound` for an unknown job."""

    def __init__(
        self,
        jobs: JobService,
        images: ImageService,
        provider: PipelineProvider,
        *,
        tmp_dir: Path,
        models_wait_s: float = 30.0,
    ):
        self.jobs = jobs
        self.images = images
        self.provider = provider
        self.tmp_dir = tmp_dir
        self.models_wait_s = models_wait_s

    # -- level 2 ---------------------------------------------------------------------------
    def stats(self, job_id: str) -> JobStats:
        """The job's batch statistics (`JobStats`) over the images finished so far; `NotFound`
        for an unknown job."""
        job = self.jobs.get(job_id)
        stages: dict[str, list[float]] = {}
        keywords: dict[str, dict[str, Any]] = {}
        slow: list[tuple[float, str]] = []
        cache_hits: dict[str, int] = {}
        errors: dict[str, int] = {}
        first: datetime | None = None
        last: datetime | None = None
        retried = 0
        for item in self.jobs.iter_items(job.id):
            retried += int(item.attempts > 1)
            if item.status in ("done", "failed") and item.started_at and item.finished_at:
                first = item.started_at if first is None else min(first, item.started_at)
                last = item.finished_at if last is None else max(last, item.finished_at)
            if item.status == "failed":
                errors[item.error_code or "unknown"] = errors.get(item.error_code or "unknown", 0) + 1
            if item.status != "done" or item.result is None:
                continue
            for stage, ms in (item.timings_ms or {}).items():
                stages.setdefault(stage, []).append(float(ms))
            slow.append(((item.timings_ms or {}).get("total", 0.0), item.image_id))
            for name, hit in item.result.get("cache_hits", {}).items():
                cache_hits[name] = cache_hits.get(name, 0) + int(bool(hit))
            seen: set[str] = set()
            for match in item.result.get("matches", ()):
                entry = keywords.setdefault(match["keyword"], {"matches": 0, "images": 0, "best": 0.0})
                entry["matches"] += 1
                entry["best"] = max(entry["best"], float(match["score"]))
                if match["keyword"] not in seen:
                    seen.add(match["keyword"])
                    entry["images"] += 1
        slow.sort(reverse=True)
        names = self.images.find_many([image_id for _, image_id in slow[:_SLOWEST]])
        elapsed = (last - first).total_seconds() if first and last else None
        processed = job.done + job.failed
        return JobStats(
            job=job,
            elapsed_s=elapsed,
            busy_s=round(sum(stages.get("total", [])) / 1000, 3),
            images_per_minute=round(processed / elapsed * 60, 3) if elapsed else None,
            stages={k: _stage_stats(v) for k, v in stages.items()},
            keywords={
                k: KeywordStats(v["matches"], v["images"], round(v["best"], 6)) for k, v in keywords.items()
            },
            slowest=[
                SlowImage(image_id, names[image_id].filename if image_id in names else "", round(ms, 3))
                for ms, image_id in slow[:_SLOWEST]
            ],
            cache_hits=cache_hits,
            errors=errors,
            retried=retried,
        )

    # -- exports ---------------------------------------------------------------------------
    def _records(self, job: JobRecord, view: ExportView) -> list[tuple[JobItemRecord, ImageRecord]]:
        """Every image of the job as a record; done images carry the matches of `view`
        (the stored ones when `view` is the job's own, else matched again from the cache)."""
        items = list(self.jobs.iter_items(job.id))
        names = self.images.find_many([i.image_id for i in items])
        pairs = [(item, item_image_record(item, job, names.get(item.image_id))) for item in items]
        job_params = job.params
        if view.query == job.query and view.params == job_params.query_params():
            return pairs
        pipeline = self.provider.get(self.models_wait_s)
        parsed = parse_query(view.query)
        generation = job_params.generation(pipeline.generation)
        for item, record in pairs:
            if record.result is None:
                continue
            segmentation = pipeline.segment(self.images.load(item.image_id), generation)
            record.result = pipeline.match(segmentation, parsed, view.params)
        return pairs

    def _provenance(self, job: JobRecord, view: ExportView) -> dict[str, Any]:
        """`query` and `params` are what the export shows; `job_query` and `job_params`
        what the job ran with."""
        info: dict[str, Any] = {
            "seglens_version": __version__,
            "job_id": job.id,
            "query": view.query,
            "params": {**job.params.to_dict(), **asdict(view.params), "alpha": view.alpha},
            "job_query": job.query,
            "job_params": job.params.to_dict(),
            "profile": job.profile,
            "models": job.models,
            "meaningless": job.meaningless,
            "created_at": job.created_at.isoformat(),
            "finished_at": job.finished_at.isoformat() if job.finished_at else None,
            "status": job.status,
        }
        if job.meaningless:
            info["warning"] = TINY_BANNER
        return info

    def export(
        self,
        job_id: str,
        fmt: ExportFormat,
        *,
        query: str | None = None,
        overrides: Mapping[str, object] | None = None,
    ) -> Export:
        """The job's results in `fmt` as `export_view(job, query, overrides)` shows them
        (default: the job's own query and settings). Raises `InvalidInput` for bad
        settings and `ModelsUnavailable` when another view needs the models and they are
        not loaded."""
        job = self.jobs.get(job_id)
        view = export_view(job, query, overrides)
        pairs = self._records(job, view)
        stem = f"seglens-job-{job.id[:12]}"
        if fmt == "coco":
            keywords = parse_query(view.query).keywords
            document = coco_document([r for _, r in pairs], keywords, self._provenance(job, view))
            done = [item for item, record in pairs if record.info is not None and record.result is not None]
            for entry, item in zip(document["images"], done, strict=True):
                entry["seglens_image_id"] = item.image_id
            return Export("application/json", f"{stem}.coco.json", content=json.dumps(document).encode())
        if fmt == "csv":
            rows = []
            for item, record in pairs:
                for row in match_rows([record]):
                    rows.append({"image_id": item.image_id, **row})
            text = csv_text(rows, ("image_id", *CSV_COLUMNS))
            return Export("text/csv; charset=utf-8", f"{stem}.csv", content=text.encode())
        return self._zip(job, view, pairs, fmt, stem)

    def _zip(
        self,
        job: JobRecord,
        view: ExportView,
        pairs: list[tuple[JobItemRecord, ImageRecord]],
        fmt: ExportFormat,
        stem: str,
    ) -> Export:
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="export-", suffix=".zip", dir=self.tmp_dir)
        path = Path(name)
        try:
            pipeline = self.provider.get(self.models_wait_s) if fmt == "overlays" else None
            with os.fdopen(fd, "wb") as handle, zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED) as archive:
                archive.writestr("provenance.json", json.dumps(self._provenance(job, view), indent=2))
                index = ["file,image_id,keyword,score,cosine,area"]
                for item, record in pairs:
                    if record.result is None:
                        continue
                    base = f"{item.position:05d}-{_safe(Path(record.file_name).stem)}"
                    if fmt == "masks":
                        for n, match in enumerate(record.result.matches, start=1):
                            name = f"masks/{base}/{n:03d}-{_safe(match.keyword)}.png"
                            buffer = io.BytesIO()
                            render_mask_png(match.rle).save(buffer, "PNG", optimize=True)
                            archive.writestr(name, buffer.getvalue())
                            index.append(
                                f"{name},{item.image_id},{json.dumps(match.keyword)},"
                                f"{match.score:.6f},{match.cosine:.6f},{match.area}"
                            )
                    elif pipeline is not None:
                        loaded = self.images.load(item.image_id)
                        overlay = pipeline.render(loaded, record.result, alpha=view.alpha)
                        buffer = io.BytesIO()
                        overlay.save(buffer, "PNG")
                        archive.writestr(f"overlays/{base}.png", buffer.getvalue())
                if fmt == "masks":
                    archive.writestr("masks.csv", "\n".join(index) + "\n")
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return Export("application/zip", f"{stem}.{fmt}.zip", path=path)
