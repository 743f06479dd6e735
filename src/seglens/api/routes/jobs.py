"""Jobs: submit, list, read, control (cancel, resume, delete), progress events, results,
per-image logs (level 1), statistics (level 2), exports."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, StreamingResponse
from starlette.background import BackgroundTask

from seglens.api.deps import ImagesDep, JobsDep, ReportsDep, RuntimeDep
from seglens.api.errors import responses
from seglens.api.schemas import (
    ImageLogOut,
    JobCreate,
    JobEventOut,
    JobOut,
    JobPage,
    JobStatsOut,
    QueryText,
    ResultPage,
)
from seglens.api.views import image_log_out, job_out, result_out, stats_out, warning_for
from seglens.core.types import ALPHA_RANGE, MatchMode, QueryParams
from seglens.services.errors import invalid_input
from seglens.storage.records import FINISHED_JOB_STATES

__all__ = ["router"]

_THRESHOLD = QueryParams.THRESHOLD_RANGE
_MERGE = QueryParams.MERGE_THRESHOLD_RANGE

router = APIRouter(tags=["jobs"])

JobIdPath = Annotated[str, Path(min_length=1, max_length=64, description="The job id.")]
ImageIdPath = Annotated[str, Path(min_length=1, max_length=128, description="The image id.")]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=10**9)]
JobStatus = Literal["queued", "running", "completed", "failed", "cancelled", "interrupted"]
ItemStatus = Literal["pending", "running", "done", "failed", "skipped"]
_HEARTBEAT_S = 15.0


@router.post(
    "/jobs",
    status_code=201,
    summary="Run a query over uploaded images",
    responses=responses(400, 404, 409, 422, 429),
)
def create_job(jobs: JobsDep, body: JobCreate) -> JobOut:
    """Queues one image per id (duplicates dropped). One-image jobs go ahead of batches.
    409 when `params.profile` is not the server's; 429 with `Retry-After` when the images
    waiting across all jobs would pass SEGLENS_MAX_QUEUE."""
    with invalid_input("invalid_params"):
        params = body.params.job_params()
    return job_out(jobs.create(body.image_ids, body.query, params))


@router.get("/jobs", summary="Jobs, newest first", responses=responses(422))
def list_jobs(
    jobs: JobsDep, limit: Limit = 50, offset: Offset = 0, status: JobStatus | None = None
) -> JobPage:
    items, total = jobs.page(limit=limit, offset=offset, status=status)
    return JobPage(items=[job_out(j) for j in items], total=total, limit=limit, offset=offset)


@router.get("/jobs/{job_id}", summary="A job's status and progress", responses=responses(404, 422))
def read_job(jobs: JobsDep, job_id: JobIdPath) -> JobOut:
    return job_out(jobs.get(job_id))


@router.post("/jobs/{job_id}/cancel", summary="Cancel a job", responses=responses(404, 409, 422))
def cancel_job(jobs: JobsDep, job_id: JobIdPath) -> JobOut:
    """Images not yet done become `skipped`; the image in flight is discarded cleanly.
    Cancelling a cancelled job changes nothing; a completed or failed job gives 409."""
    return job_out(jobs.cancel(job_id))


@router.post("/jobs/{job_id}/resume", summary="Resume a job", responses=responses(404, 409, 422))
def resume_job(jobs: JobsDep, job_id: JobIdPath) -> JobOut:
    """Queues again every image that is not done (pending, skipped, failed); done images
    are never run again. 409 for a queued or running job, or when every image is done."""
    return job_out(jobs.resume(job_id))


@router.delete(
    "/jobs/{job_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a job and its results",
    responses=responses(404, 422),
)
def delete_job(jobs: JobsDep, job_id: JobIdPath) -> Response:
    jobs.delete(job_id)
    return Response(status_code=204)


@router.get("/jobs/{job_id}/timeline", summary="A job's state changes", responses=responses(404, 422))
def read_job_timeline(jobs: JobsDep, job_id: JobIdPath) -> list[JobEventOut]:
    """created, started, cancelled, interrupted, resumed, completed, failed: with times."""
    return [JobEventOut(at=e.at, kind=e.kind, message=e.message) for e in jobs.events(job_id)]


@router.get(
    "/jobs/{job_id}/events",
    summary="Server-sent progress events",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {
                "text/event-stream": {
                    "schema": {
                        "type": "object",
                        "required": ["event", "data"],
                        "properties": {
                            "event": {"type": "string", "enum": ["progress", "end"]},
                            "data": {
                                "type": "string",
                                "contentMediaType": "application/json",
                                "contentSchema": {"$ref": "#/components/schemas/JobOut"},
                            },
                        },
                    }
                }
            },
            "description": "One event per change: `progress` with the job as JSON, then `end` (the "
            "same) once it is completed, failed or cancelled. Comment lines are heartbeats. "
            "The stream also closes if the job is deleted or the server shuts down.",
        },
        **responses(404, 422),
    },
)
def stream_job_events(runtime: RuntimeDep, request: Request, job_id: JobIdPath) -> StreamingResponse:
    jobs = runtime.jobs
    jobs.get(job_id)  # 404 before the stream starts
    interval = runtime.settings.sse_interval_s

    async def events() -> AsyncIterator[str]:
        last = ""
        beat = time.monotonic()
        while not runtime.scheduler.stopping:
            job = await run_in_threadpool(jobs.find, job_id)
            if job is None:  # deleted meanwhile
                return
            payload = job_out(job).model_dump_json()
            if payload != last:
                yield f"event: progress\ndata: {payload}\n\n"
                last, beat = payload, time.monotonic()
            elif time.monotonic() - beat > _HEARTBEAT_S:
                yield ": keep-alive\n\n"
                beat = time.monotonic()
            if job.status in FINISHED_JOB_STATES:
                yield f"event: end\ndata: {payload}\n\n"
                return
            if await request.is_disconnected():
                return
            await asyncio.sleep(interval)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get(
    "/jobs/{job_id}/results",
    summary="One entry per image: matches with RLE masks, timings, errors",
    responses=responses(404, 422),
)
def read_job_results(
    jobs: JobsDep,
    images: ImagesDep,
    job_id: JobIdPath,
    limit: Limit = 100,
    offset: Offset = 0,
    status: ItemStatus | None = None,
) -> ResultPage:
    job = jobs.get(job_id)
    items, total = jobs.results(job_id, limit=limit, offset=offset, status=status)
    names = images.find_many([i.image_id for i in items])
    return ResultPage(
        items=[result_out(i, names[i.image_id].filename if i.image_id in names else None) for i in items],
        total=total,
        limit=limit,
        offset=offset,
        meaningless=job.meaningless,
        warning=warning_for(job.meaningless),
    )


@router.get(
    "/jobs/{job_id}/images/{image_id}/log",
    summary="Level 1 log: one image of a job in detail",
    responses=responses(404, 422),
)
def read_image_log(jobs: JobsDep, images: ImagesDep, job_id: JobIdPath, image_id: ImageIdPath) -> ImageLogOut:
    item = jobs.item(job_id, image_id)
    return image_log_out(item, images.find_many([image_id]).get(image_id))


@router.get("/jobs/{job_id}/stats", summary="Level 2 log: batch statistics", responses=responses(404, 422))
def read_job_stats(reports: ReportsDep, job_id: JobIdPath) -> JobStatsOut:
    return stats_out(reports.stats(job_id))


@router.get(
    "/jobs/{job_id}/export",
    summary="Download results: COCO JSON, CSV, mask PNGs (zip) or overlays (zip)",
    response_class=Response,
    responses={
        200: {
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "text/csv": {"schema": {"type": "string"}},
                "application/zip": {"schema": {"type": "string", "format": "binary"}},
            },
            "description": "The export, as an attachment",
        },
        **responses(404, 422, 503),
    },
)
def export_job(
    reports: ReportsDep,
    job_id: JobIdPath,
    format: Annotated[Literal["coco", "csv", "masks", "overlays"], Query()] = "coco",
    query: Annotated[QueryText | None, Query(description="Keywords (default: the job's).")] = None,
    threshold: Annotated[
        float | None,
        Query(ge=_THRESHOLD[0], le=_THRESHOLD[1], description="Matching threshold (default: the job's)."),
    ] = None,
    merge_threshold: Annotated[
        float | None,
        Query(ge=_MERGE[0], le=_MERGE[1], description="Region-merging threshold (default: the job's)."),
    ] = None,
    mode: Annotated[MatchMode | None, Query(description="`any` or `all` (default: the job's).")] = None,
    merge_strategy: Annotated[
        Literal["nms", "union"] | None, Query(description="`nms` or `union` (default: the job's).")
    ] = None,
    alpha: Annotated[
        float | None,
        Query(
            ge=ALPHA_RANGE[0],
            le=ALPHA_RANGE[1],
            description="Overlay opacity of `overlays` (default: the job's).",
        ),
    ] = None,
) -> Response:
    """The annotations are the union of what ``POST /query`` answers for each done image
    with the same query and settings (the job's own by default); a query or setting
    other than the job's matches every image again from the cached regions (503 while
    the models load). What was used is recorded under ``info.params`` (COCO) and in
    ``provenance.json`` (zips). 422 (`validation_error`, `invalid_query`) for values a
    query would refuse."""
    overrides = {
        "threshold": threshold,
        "merge_threshold": merge_threshold,
        "mode": mode,
        "merge_strategy": merge_strategy,
        "alpha": alpha,
    }
    export = reports.export(job_id, format, query=query, overrides=overrides)
    disposition = {"Content-Disposition": f'attachment; filename="{export.filename}"'}
    if export.path is not None:
        path = export.path
        return FileResponse(
            path,
            media_type=export.media_type,
            headers=disposition,
            background=BackgroundTask(path.unlink, missing_ok=True),
        )
    return Response(export.content or b"", media_type=export.media_type, headers=disposition)
