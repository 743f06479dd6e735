"""Process one claimed image of a job: segment (cached), match, commit the result once.

Any failure of one image (an unreadable file, a model error) is recorded on that image
with a machine code and a message, and the batch goes on. The level-1 log line of each
image (timings per stage, regions, matches per keyword, cache hits, warnings) is written
as JSON and kept with the result.

The work is split in two so that executors can run it in different places:

- `compute_outcome` does the model work on a `Pipeline` and returns a plain dict (it
  never raises); it runs in a worker thread (local executor) or in a Ray actor;
- `ItemProcessor.commit` writes that outcome to the job store, exactly once, in the
  process that owns the database.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from seglens.core.images import ImageError, LoadedImage
from seglens.core.query import parse_query
from seglens.services.errors import NotFound
from seglens.services.images import ImageService
from seglens.services.item_summary import summarise_item
from seglens.services.jobs_types import JobParams, query_result_to_dict
from seglens.services.logcontext import bind
from seglens.services.pipeline import TINY_BANNER, Pipeline
from seglens.services.provider import PipelineProvider
from seglens.services.runs import cutout_file_name
from seglens.storage.jobs_repo import ClaimedItem, JobRepository
from seglens.storage.records import JobRecord

__all__ = ["FilesSink", "ItemProcessor", "RenderSpec", "compute_outcome"]

log = logging.getLogger("seglens.jobs")

SAVE_RETRY_DELAYS_S = (0.2, 1.0, 3.0)
MAX_SAVE_ATTEMPTS = 3

# `sink(claimed, files)` stores the rendered files of an image before its result is
# committed (so a crash in between only rewrites them on the retry).
FilesSink = Callable[[ClaimedItem, dict[str, Any]], None]


@dataclass(frozen=True)
class RenderSpec:
    """Render files with each result (headless batches): the overlay at the job's
    `alpha` and, with `cutouts`, transparent cut-outs of the matches, as PNG bytes."""

    cutouts: bool = False


def _png(image: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def compute_outcome(
    pipeline: Pipeline,
    load: Callable[[], LoadedImage],
    query_text: str,
    params_dict: dict[str, Any],
    render: RenderSpec | None = None,
) -> dict[str, Any]:
    """Decode (`load`), segment, match and optionally render one image. Never raises.

    Returns ``{"ok": True, "result", "match_count", "timings_ms", "models",
    "meaningless"[, "files"]}`` or ``{"ok": False, "error", "error_code", "timings_ms",
    ...}``; ``files`` is ``{"overlay_png": bytes, "cutouts": [(name, bytes), ...]}``."""
    outcome: dict[str, Any] = {"timings_ms": {}}
    try:
        outcome["models"] = pipeline.model_ids()
        outcome["meaningless"] = pipeline.meaningless
        outcome.update(_run(pipeline, load, query_text, params_dict, render))
    except (ImageError, NotFound) as error:
        outcome.update(ok=False, error=str(error), error_code=error.code)
    except Exception as error:  # a model error must not stop the batch
        log.exception("image failed")
        outcome.update(ok=False, error=f"{type(error).__name__}: {error}", error_code="processing_failed")
    return outcome


def _run(
    pipeline: Pipeline,
    load: Callable[[], LoadedImage],
    query_text: str,
    params_dict: dict[str, Any],
    render: RenderSpec | None,
) -> dict[str, Any]:
    params = JobParams.from_dict(params_dict)
    query = parse_query(query_text)
    tick = time.perf_counter()
    loaded = load()
    timings = {"decode": (time.perf_counter() - tick) * 1000}
    segmentation = pipeline.segment(loaded, params.generation(pipeline.generation))
    timings.update({k: v for k, v in segmentation.timings_ms.items() if k not in ("ingest", "total")})
    timings["segment"] = segmentation.timings_ms.get("total", 0.0)
    result = pipeline.match(segmentation, query, params.matching)
    timings["match"] = result.elapsed_ms
    stored = query_result_to_dict(result)
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
    outcome: dict[str, Any] = {
        "ok": True,
        "result": stored,
        "match_count": len(result.matches),
        "timings_ms": timings,
    }
    if render is not None:
        tick = time.perf_counter()
        cutouts: list[tuple[str, bytes]] = []
        if render.cutouts and result.matches:
            cutouts = [
                (cutout_file_name(n, match.keyword), _png(image))
                for n, (match, image) in enumerate(pipeline.cutouts(segmentation, result), start=1)
            ]
        outcome["files"] = {
            "overlay_png": _png(pipeline.render(segmentation, result, alpha=params.alpha)),
            "cutouts": cutouts,
        }
        timings["render"] = (time.perf_counter() - tick) * 1000
    return outcome


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
                outcome: dict[str, Any] = {
                    "ok": False,
                    "error": f"{type(error).__name__}: {error}",
                    "error_code": "processing_failed",
                    "timings_ms": {},
                }
            else:
                outcome = compute_outcome(
                    pipeline, lambda: self.images.load(item.image_id), job.query, job.params, self.render
                )
            self.commit(claimed, outcome, started)

    def commit(self, claimed: ClaimedItem, outcome: dict[str, Any], started: float) -> JobRecord | None:
        """Write `outcome` (from `compute_outcome`) as the image's result, exactly once,
        and log the image's level-1 line. `started` is the `time.perf_counter()` at which
        the image was claimed (the ``total`` timing). Returns the updated job, or None
        when the result was discarded (the image is no longer ``running``)."""
        job = claimed.job
        outcome = dict(outcome)
        models = outcome.pop("models", None)
        meaningless = bool(outcome.pop("meaningless", False))
        files = outcome.pop("files", None)
        log_fields = dict(outcome.pop("log_fields", {}))
        if models is not None and job.models != models:
            self.jobs.record_models(job.id, models, meaningless)
        if files is not None and self.sink is not None and outcome.get("ok"):
            self.sink(claimed, files)
        timings = dict(outcome.pop("timings_ms", {}))
        timings["total"] = (time.perf_counter() - started) * 1000
        outcome["summary"] = summarise_item(outcome.get("result"), job.query, job.params)
        updated = self._save(claimed, timings, outcome)
        fields: dict[str, Any] = {
            "status": "done" if outcome["ok"] else "failed",
            "timings_ms": {k: round(v, 1) for k, v in timings.items()},
            "committed": updated is not None,
            **log_fields,
        }
        if outcome.get("result"):
            result = outcome["result"]
            fields["regions"] = result["num_regions"]
            fields["matches"] = _matches_per_keyword(result)
            fields["cache_hits"] = result["cache_hits"]
        if outcome.get("error"):
            fields["error"] = outcome["error"]
        log.info("image processed" if updated else "image result discarded", extra={"fields": fields})
        if updated is not None and updated.status in ("completed", "failed"):
            log.info(
                f"job {updated.status}",
                extra={"fields": {"done": updated.done, "failed": updated.failed, "total": updated.total}},
            )
        return updated

    def _save(
        self, claimed: ClaimedItem, timings: dict[str, float], outcome: dict[str, Any]
    ) -> JobRecord | None:
        """`finish_item`, retried while the database refuses (locked by another process,
        a full disk freed meanwhile). When it keeps refusing, the image goes back to
        ``pending`` to be computed again (from the cache) instead of staying ``running``
        until a restart; after `MAX_SAVE_ATTEMPTS` claims it is recorded as failed."""
        job, item = claimed.job, claimed.item
        error: SQLAlchemyError | None = None
        for delay_s in (*SAVE_RETRY_DELAYS_S, None):
            try:
                return self.jobs.finish_item(job.id, item.image_id, timings_ms=timings, **outcome)
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
