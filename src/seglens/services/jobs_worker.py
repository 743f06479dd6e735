"""Process one claimed image of a job: segment (cached), match, commit the result once.

Any failure of one image (an unreadable file, a model error) is recorded on that image
with a machine code and a message, and the batch goes on. The level-1 log line of each
image (timings per stage, regions, matches per keyword, cache hits, warnings) is written
as JSON and kept with the result.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from seglens.core.images import ImageError
from seglens.core.query import parse_query
from seglens.services.errors import NotFound
from seglens.services.images import ImageService
from seglens.services.jobs_types import JobParams, query_result_to_dict
from seglens.services.logcontext import bind
from seglens.services.pipeline import TINY_BANNER
from seglens.services.provider import PipelineProvider
from seglens.storage.jobs_repo import ClaimedItem, JobRepository

__all__ = ["ItemProcessor"]

log = logging.getLogger("seglens.jobs")


class ItemProcessor:
    """The scheduler's `process` callable."""

    def __init__(self, jobs: JobRepository, images: ImageService, provider: PipelineProvider):
        self.jobs = jobs
        self.images = images
        self.provider = provider

    def __call__(self, claimed: ClaimedItem) -> None:
        job, item = claimed.job, claimed.item
        with bind(job_id=job.id, image_id=item.image_id):
            started = time.perf_counter()
            outcome: dict[str, Any]
            try:
                outcome = self._run(claimed)
            except (ImageError, NotFound) as error:
                outcome = {"ok": False, "error": str(error), "error_code": error.code}
            except Exception as error:  # a model error must not stop the batch
                log.exception("image failed")
                outcome = {
                    "ok": False,
                    "error": f"{type(error).__name__}: {error}",
                    "error_code": "processing_failed",
                }
            timings = outcome.pop("timings_ms", {})
            timings["total"] = (time.perf_counter() - started) * 1000
            updated = self.jobs.finish_item(job.id, item.image_id, timings_ms=timings, **outcome)
            fields: dict[str, Any] = {
                "status": "done" if outcome["ok"] else "failed",
                "timings_ms": {k: round(v, 1) for k, v in timings.items()},
                "committed": updated is not None,
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
                    extra={
                        "fields": {"done": updated.done, "failed": updated.failed, "total": updated.total}
                    },
                )

    def _run(self, claimed: ClaimedItem) -> dict[str, Any]:
        job, item = claimed.job, claimed.item
        params = JobParams.from_dict(job.params)
        query = parse_query(job.query)
        pipeline = self.provider.get(timeout_s=None)
        models = pipeline.model_ids()
        if job.models != models:
            self.jobs.record_models(job.id, models, pipeline.meaningless)
        tick = time.perf_counter()
        loaded = self.images.load(item.image_id)
        timings = {"decode": (time.perf_counter() - tick) * 1000}
        segmentation = pipeline.segment(loaded, params.generation(pipeline.generation))
        timings.update({k: v for k, v in segmentation.timings_ms.items() if k not in ("ingest", "total")})
        timings["segment"] = segmentation.timings_ms.get("total", 0.0)
        result = pipeline.match(segmentation, query, params.query_params())
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
        return {
            "ok": True,
            "result": stored,
            "match_count": len(result.matches),
            "timings_ms": timings,
        }


def _matches_per_keyword(result: dict[str, Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for match in result["matches"]:
        counts[match["keyword"]] = counts.get(match["keyword"], 0) + 1
    return counts
