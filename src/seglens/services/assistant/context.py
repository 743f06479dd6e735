"""The assistant's view of the screen: a `ScreenContext` built from what the user looks at.

- One image (`image_id` + `query` + params): the query runs the interactive way (ahead of
  batch work, from the cache; the image is segmented first if it never was, like
  ``POST /query``), without an overlay and without a history entry.
- One job (`job_id`): the job's stored per-image results (done and failed images), with
  their stage timings and failures, its own query and params, profile and tiny flag. The
  models need not be loaded.

Nothing secret goes in: ids, keywords, scores, counts, sizes, timings, file names and error
messages of failed images, the profile, the embedder and the device.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from sqlalchemy.exc import SQLAlchemyError

from seglens.core.exports import ImageRecord
from seglens.core.query import parse_query
from seglens.services.assistant.screen_context import (
    PipelineFacts,
    ScreenContext,
    build_context,
    pipeline_facts,
)
from seglens.services.errors import InvalidInput
from seglens.services.jobs.service import JobService
from seglens.services.jobs.summary import SummarisedImage, summarise_item, usable_summary
from seglens.services.jobs.types import JobParams
from seglens.services.provider import PipelineProvider
from seglens.services.segment.images import ImageService
from seglens.services.segment.interactive import InteractiveService
from seglens.storage.jobs_repo import ItemSummaryRow
from seglens.storage.records import JobRecord, StoredImage

__all__ = ["ContextRequest", "ScreenContexts", "profile_facts"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ContextRequest:
    """What the user looks at: a job, or an image with the query and params on screen.

    For a job its own stored query and params describe the results, so `query` and
    `params` are kept only as the request's record. `params.profile` is informational:
    the context reports the profile that computed the results.
    """

    job_id: str | None = None
    image_id: str | None = None
    query: str | None = None
    params: JobParams = field(default_factory=JobParams)

    def __post_init__(self) -> None:
        if self.job_id and self.image_id:
            raise ValueError("give job_id or image_id, not both")

    @property
    def scope(self) -> Literal["image", "job"] | None:
        if self.job_id:
            return "job"
        if self.image_id:
            return "image"
        return None

    def to_dict(self) -> dict[str, Any]:
        """The request as stored with a conversation (plain JSON, no secrets)."""
        data: dict[str, Any] = {"params": self.params.to_dict()}
        if self.job_id:
            data["job_id"] = self.job_id
        if self.image_id:
            data["image_id"] = self.image_id
        if self.query is not None:
            data["query"] = self.query
        return data


def profile_facts(profile: str | None) -> PipelineFacts:
    """What the registry knows about `profile` without loading it: the embedder's id and
    language and the tiny flag (empty for an unknown profile)."""
    if not profile:
        return PipelineFacts()
    from seglens.models.registry import get_model, get_profile

    try:
        spec = get_profile(profile)
        embedder = get_model(spec.embedder)
    except KeyError:
        return PipelineFacts(profile=profile)
    return PipelineFacts(
        profile=profile,
        embedder=embedder.name,
        embedder_language=embedder.language,
        meaningless=spec.meaningless or embedder.meaningless,
        points_per_side=spec.generation.points_per_side,
    )


class ScreenContexts:
    """Builds `ScreenContext`s for the assistant routes, and keeps the last few.

    A context is cached per screen state: a job by its id and progress (status, counts,
    last update), an image by its id, query, settings and the loaded models. A repeated
    question or 'Suggest settings' about the same screen costs a dictionary look-up.
    Building runs in the caller's thread (the routes call it from worker threads) and
    holds no lock while it works: the cache's lock only guards the dictionary.
    """

    CACHE_SIZE = 32

    def __init__(
        self,
        jobs: JobService,
        images: ImageService,
        interactive: InteractiveService,
        provider: PipelineProvider,
        *,
        profile: str,
    ):
        self.jobs = jobs
        self.images = images
        self.interactive = interactive
        self.provider = provider
        self.profile = profile
        self._cache: OrderedDict[tuple[Any, ...], ScreenContext] = OrderedDict()
        self._lock = threading.Lock()
        self.builds = 0  # contexts built (not served from the cache), for tests and logs

    def build(self, request: ContextRequest | None) -> ScreenContext | None:
        """The context for `request`; None when it names neither a job nor an image.

        Raises `NotFound` (unknown job or image), `InvalidInput` (an image without a query,
        a bad query, too many points per side), and for images `ModelsUnavailable` and
        `Busy` like ``POST /query``.
        """
        if request is None or request.scope is None:
            return None
        if request.job_id:
            return self.for_job(request.job_id)
        if request.image_id is None:
            raise InvalidInput("invalid_context", "context.image_id is required")
        if not request.query or not request.query.strip():
            raise InvalidInput("invalid_context", "context.query is required with context.image_id")
        return self.for_image(request.image_id, request.query, request.params)

    def current_facts(self) -> PipelineFacts:
        """Facts of the loaded models, or of the server's profile while they load."""
        pipeline = self.provider.pipeline
        return pipeline_facts(pipeline) if pipeline is not None else profile_facts(self.profile)

    def embedder_language(self) -> str:
        return self.current_facts().get("embedder_language") or "en"

    # -- cache ---------------------------------------------------------------------------
    def _cached(self, key: tuple[Any, ...]) -> ScreenContext | None:
        with self._lock:
            found = self._cache.get(key)
            if found is not None:
                self._cache.move_to_end(key)
            return found

    def _keep(self, key: tuple[Any, ...], context: ScreenContext) -> ScreenContext:
        with self._lock:
            self.builds += 1
            self._cache[key] = context
            self._cache.move_to_end(key)
            while len(self._cache) > self.CACHE_SIZE:
                self._cache.popitem(last=False)
        return context

    # -- builders ------------------------------------------------------------------------
    def for_image(self, image_id: str, query: str, params: JobParams) -> ScreenContext:
        pipeline = self.provider.pipeline
        key = ("image", image_id, query.strip(), params.query_params(), params.points_per_side, id(pipeline))
        cached = self._cached(key)
        if cached is not None:
            return cached
        outcome = self.interactive.query(
            image_id,
            query,
            params.query_params(),
            points_per_side=params.points_per_side,
            overlay=False,
            record_history=False,
        )
        timings = {k: float(v) for k, v in outcome.stage_timings_ms.items()}
        timings.update(segment=outcome.timings_ms.get("segment", 0.0), match=outcome.timings_ms["match"])
        record = ImageRecord(
            file_name=outcome.image.filename,
            result=outcome.result,
            timings_ms=timings,
            cache_hits=dict(outcome.cache_hits),
        )
        facts = self.current_facts()
        if params.points_per_side is not None:
            facts["points_per_side"] = params.points_per_side
        facts["meaningless"] = outcome.meaningless
        context = build_context(
            [record],
            scope="image",
            subject_id=outcome.image.id,
            subject_name=outcome.image.filename,
            **facts,
        )
        return self._keep(key, context)

    def for_job(self, job_id: str) -> ScreenContext:
        job = self.jobs.get(job_id)
        pipeline = self.provider.pipeline
        key = (
            "job",
            job.id,
            job.status,
            job.done,
            job.failed,
            job.skipped,
            job.updated_at,
            id(pipeline),
        )
        cached = self._cached(key)
        if cached is not None:
            return cached
        query = parse_query(job.query)
        params = job.params
        rows = [r for r in self.jobs.item_summaries(job.id) if r.status in ("done", "failed")]
        rows = self._with_summaries(job, rows, query.keywords, params.matching.threshold)
        names = self.images.find_many([r.image_id for r in rows])
        records = [
            _summarised(r, names.get(r.image_id), query.keywords, params.matching.threshold) for r in rows
        ]
        if pipeline is not None and (job.profile is None or job.profile == pipeline.profile):
            facts = pipeline_facts(pipeline)
        else:
            facts = profile_facts(job.profile)
        facts["profile"] = job.profile
        facts["meaningless"] = job.meaningless
        if params.points_per_side is not None:
            facts["points_per_side"] = params.points_per_side
        context = build_context(
            records,
            query=query,
            params=params.query_params(),
            scope="job",
            subject_id=job.id,
            images_total=job.total,
            **facts,
        )
        return self._keep(key, context)

    def _with_summaries(
        self, job: JobRecord, rows: list[ItemSummaryRow], keywords: Sequence[str], threshold: float
    ) -> list[ItemSummaryRow]:
        """`rows` where every done image has a usable summary: the stored ones, and for
        images that have none (finished before summaries were stored) or an outdated one,
        computed from the stored result once and stored (one short write after the work,
        never during it; if the write fails they are computed again next time)."""
        missing = {
            r.image_id
            for r in rows
            if r.status == "done" and usable_summary(r.summary, keywords, threshold) is None
        }
        if not missing:
            return rows
        computed: dict[str, tuple[dict[str, Any], dict[str, float] | None]] = {}
        for item in self.jobs.iter_items(job.id):
            if item.image_id in missing and item.status == "done" and item.result is not None:
                summary = summarise_item(item.result, job.query, job.params)
                if summary is not None:
                    computed[item.image_id] = (summary, item.timings_ms)
        try:
            saved = self.jobs.store_summaries(job.id, computed)
        except SQLAlchemyError as error:
            saved = 0
            log.warning("could not store the image summaries", extra={"fields": {"error": str(error)}})
        log.info(
            "image summaries computed",
            extra={"fields": {"job_id": job.id, "computed": len(computed), "stored": saved}},
        )
        return [
            replace(r, summary=computed[r.image_id][0], timings_ms=computed[r.image_id][1])
            if r.image_id in computed
            else r
            for r in rows
        ]


def _summarised(
    row: ItemSummaryRow, image: StoredImage | None, keywords: Sequence[str], threshold: float
) -> SummarisedImage:
    """A job image for `build_context`, named by its file name (its id when the image is
    gone); an image that is not done carries its error."""
    summary = usable_summary(row.summary, keywords, threshold) if row.status == "done" else None
    error = row.error
    if row.status != "done":
        error = error or f"image not processed ({row.status})"
    return SummarisedImage(
        file_name=image.filename if image else row.image_id,
        summary=summary,
        timings_ms={k: float(v) for k, v in (row.timings_ms or {}).items()},
        error=error,
        error_code=row.error_code,
    )
