"""Process one claimed image of a job: segment (cached), match, commit the result once.

Any failure of one image (an unreadable file, a model error) is recorded on that image
with a machine code and a message, and the batch goes on. The level-1 log line of each
image (timings per stage, regions, matches per keyword, cache hits, warnings) is written
as JSON and kept with the result.

The work is split in two so that executors can run it in different places:

- `compute_outcome` does the model work on a `Pipeline` and returns an `ItemOutcome` (it
  never raises); it runs in a worker thread (local executor) or in a Ray actor;
- `ItemProcessor.commit` writes that outcome to the job store, exactly once, in the
  process that owns the database.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from seglens.core.images import ImageError, LoadedImage
from seglens.core.query import parse_query
from seglens.core.types import JobParams
from seglens.errors import SegLensError
from seglens.services.errors import NotFound
from seglens.services.jobs.summary import summarise_item
from seglens.services.logcontext import bind
from seglens.services.provider import PipelineProvider
from seglens.services.segment.images import ImageService
from seglens.services.segment.pipeline import TINY_BANNER, Pipeline
from seglens.services.segment.runs import cutout_file_name
from seglens.storage.jobs_repo import ClaimedItem, JobRepository
from seglens.storage.records import JobRecord

__all__ = ["FilesSink", "ItemOutcome", "ItemProcessor", "RenderSpec", "RenderedFiles", "compute_outcome"]

log = logging.getLogger("seglens.jobs")

SAVE_RETRY_DELAYS_S = (0.2, 1.0, 3.0)
MAX_SAVE_ATTEMPTS = 3


@dataclass(frozen=True)
class RenderSpec:
    """Render files with each result (headless batches): the overlay at the job's
    `alpha` and, with `cutouts`, transparent cut-outs of the matches, as PNG bytes."""

    cutouts: bool = False


@dataclass(frozen=True)
class RenderedFiles:
    """The files rendered with one image's result: the overlay and the cut-outs as
    ``(file name, PNG bytes)`` in match order."""

    overlay_png: bytes
    cutouts: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True)
class ItemOutcome:
    """What computing one image of a job gave (`compute_outcome`), before it is committed.

    - `ok`: the image is done (`result` set) or failed (`error` and `error_code` set);
    - `result`: the stored form of the result (``job_items.result``, see
      `seglens.services.jobs.types`), `match_count` its number of matches;
    - `timings_ms`: per-stage milliseconds (the committer adds ``total``);
    - `models` / `meaningless`: the pipeline's model ids and whether its outputs mean
      nothing (None / False when no pipeline was reached);
    - `files`: rendered files (headless batches), `log_fields` extra fields of the
      image's log line (the executor that ran it).

    Plain data: it crosses a Ray task's return whole.
    """

    ok: bool
    result: dict[str, Any] | None = None
    match_count: int = 0
    error: str | None = None
    error_code: str | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    models: dict[str, Any] | None = None
    meaningless: bool = False
    files: RenderedFiles | None = None
    log_fields: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def failed(cls, error: str, error_code: str, **more: Any) -> ItemOutcome:
        """A failed image: `error` the message, `error_code` the machine code."""
        return cls(ok=False, error=error, error_code=error_code, **more)

    def with_log_fields(self, **fields: Any) -> ItemOutcome:
        """A copy with more fields for the image's log line."""
        return replace(self, log_fields={**self.log_fields, **fields})


# `sink(claimed, files)` stores the rendered files of an image before its result is
# committed (so a crash in between only rewrites them on the retry).
FilesSink = Callable[[ClaimedItem, RenderedFiles], None]


def _png(image: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def compute_outcome(
    pipeline: Pipeline,
    load: Callable[[], LoadedImage],
    query_text: str,
    params: JobParams,
    render: RenderSpec | None = None,
) -> ItemOutcome:
    """Decode (`load`), segment, match and optionally render one image. Never raises: a
    failure is an outcome with the error's `code` (a `SegLensError`'s own, else
    ``processing_failed``)."""
    known: dict[str, Any] = {"models": None, "meaningless": False}
    try:
        known = {"models": pipeline.model_ids(), "meaningless": pipeline.meaningless}
        return _run(pipeline, load, query_text, params, render, **known)
    except (ImageError, NotFound) as error:  # the image's own fault: no traceback
        return ItemOutcome.failed(str(error), error.code, **known)
    except SegLensError as error:
        log.exception("image failed")
        return ItemOutcome.failed(f"{type(error).__name__}: {error}", error.code, **known)
    except Exception as error:  # a model error must not stop the batch
        log.exception("image failed")
        return ItemOutcome.failed(f"{type(error).__name__}: {error}", "processing_failed", **known)


def _run(
    pipeline: Pipeline,
    load: Callable[[], LoadedImage],
    query_text: str,
    params: JobParams,
    render: RenderSpec | None,
    **known: Any,
) -> ItemOutcome:
    query = parse_query(query_text)
    tick = time.perf_counter()
    loaded = load()
    timings = {"decode": (time.perf_counter() - tick) * 1000}
    segmentation = pipeline.segment(loaded, params.generation(pipeline.generation))
    timings.update({k: v for k, v in segmentation.timings_ms.items() if k not in ("ingest", "total")})
    timings["segment"] = segmentation.timings_ms.get("total", 0.0)
    result = pipeline.match(segmentation, query, params.matching)
    timings["match"] = result.elapsed_ms
    stored = result.to_dict()
    warnings = []
    if pipeline.meaningless:
        warnings.append(TINY_BANNER)
    if result.num_regions == 0:
        warnings.append("the segmenter found no regions in this image")
    stored.update(
        image={
            "width": loaded.info.width,
            "height": loaded.info.height,
            "pixels_sha256": loaded.info.sha256,
        },
        cache_hits=dict(segmentation.cache_hits),
        warnings=warnings,
    )
    files = None
    if render is not None:
        tick = time.perf_counter()
        cutouts: list[tuple[str, bytes]] = []
        if render.cutouts and result.matches:
            cutouts = [
                (cutout_file_name(n, match.keyword), _png(image))
                for n, (match, image) in enumerate(pipeline.cutouts(segmentation, result), start=1)
            ]
        overlay = _png(pipeline.render(segmentation, result, alpha=params.alpha))
        files = RenderedFiles(overlay_png=overlay, cutouts=tuple(cutouts))
        timings["render"] = (time.perf_counter() - tick) * 1000
    return ItemOutcome(
        ok=True,
        result=stored,
        match_count=len(result.matches),
        timings_ms=timings,
        files=files,
        **known,
    )


class ItemProcessor:
    """The scheduler's `process` callable for the local executor: the models of
    `provider`, in this process. `render` and `sink` add rendered files (headless
    batches)."""

    def __init__(
        self,
        jobs: JobRepository,
        images: ImageService,
        provider: PipelineProvider,
        *,
        render: RenderSpec | None = None,
        sink: FilesSink | None = None,
    ):
        self.jobs = jobs
        self.images = images
        self.provider = provider
        self.render = render
        self.sink = sink

    def __call__(self, claimed: ClaimedItem) -> None:
        job, item = claimed.job, claimed.item
        with bind(job_id=job.id, image_id=item.image_id):
            started = time.perf_counter()
            try:
                pipeline = self.provider.get(timeout_s=None)
            except Exception as error:
                outcome = ItemOutcome.failed(f"{type(error).__name__}: {error}", "processing_failed")
            else:
                outcome = compute_outcome(
                    pipeline, lambda: self.images.load(item.image_id), job.query, job.params, self.render
                )
            self.commit(claimed, outcome, started)

    def commit(self, claimed: ClaimedItem, outcome: ItemOutcome, started: float) -> JobRecord | None:
        """Write `outcome` (from `compute_outcome`) as the image's result, exactly once,
        and log the image's level-1 line. `started` is the `time.perf_counter()` at which
        the image was claimed (the ``total`` timing). Returns the updated job, or None
        when the result was discarded (the image is no longer ``running``)."""
        job = claimed.job
        if outcome.models is not None and job.models != outcome.models:
            self.jobs.record_models(job.id, outcome.models, outcome.meaningless)
        if outcome.files is not None and self.sink is not None and outcome.ok:
            self.sink(claimed, outcome.files)
        timings = dict(outcome.timings_ms)
        timings["total"] = (time.perf_counter() - started) * 1000
        summary = summarise_item(outcome.result, job.query, job.params)
        updated = self._save(claimed, timings, outcome, summary)
        fields: dict[str, Any] = {
            "status": "done" if outcome.ok else "failed",
            "timings_ms": {k: round(v, 1) for k, v in timings.items()},
            "committed": updated is not None,
            **outcome.log_fields,
        }
        if outcome.result:
            result = outcome.result
            fields["regions"] = result["num_regions"]
            fields["matches"] = _matches_per_keyword(result)
            fields["cache_hits"] = result["cache_hits"]
        if outcome.error:
            fields["error"] = outcome.error
        log.info("image processed" if updated else "image result discarded", extra={"fields": fields})
        if updated is not None and updated.status in ("completed", "failed"):
            log.info(
                f"job {updated.status}",
                extra={"fields": {"done": updated.done, "failed": updated.failed, "total": updated.total}},
            )
        return updated

    def _save(
        self,
        claimed: ClaimedItem,
        timings: dict[str, float],
        outcome: ItemOutcome,
        summary: dict[str, Any] | None = None,
    ) -> JobRecord | None:
        """`finish_item`, retried while the database refuses (locked by another process,
        a full disk freed meanwhile). When it keeps refusing, the image goes back to
        ``pending`` to be computed again (from the cache) instead of staying ``running``
        until a restart; after `MAX_SAVE_ATTEMPTS` claims it is recorded as failed."""
        job, item = claimed.job, claimed.item
        error: SQLAlchemyError | None = None
        for delay_s in (*SAVE_RETRY_DELAYS_S, None):
            try:
                return self.jobs.finish_item(
                    job.id,
                    item.image_id,
                    ok=outcome.ok,
                    result=outcome.result,
                    timings_ms=timings,
                    match_count=outcome.match_count,
                    error=outcome.error,
                    error_code=outcome.error_code,
                    summary=summary,
                )
            except SQLAlchemyError as caught:
                error = caught
                log.warning("could not save the image's result", extra={"fields": {"error": str(caught)}})
                if delay_s is not None:
                    time.sleep(delay_s)
        message = f"the result could not be saved: {type(error).__name__}: {error}"
        try:
            if item.attempts < MAX_SAVE_ATTEMPTS:
                self.jobs.release_item(job.id, item.image_id)
                return None
            return self.jobs.finish_item(
                job.id,
                item.image_id,
                ok=False,
                timings_ms=timings,
                error=message[:2000],
                error_code="result_not_saved",
            )
        except SQLAlchemyError:
            log.exception("the database refuses every write; the image stays running until a restart")
            return None


def _matches_per_keyword(result: dict[str, Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for match in result["matches"]:
        counts[match["keyword"]] = counts.get(match["keyword"], 0) + 1
    return counts
