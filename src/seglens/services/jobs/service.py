"""Job use cases: submit a batch, watch it, cancel, resume, delete, recover after a crash.

Contracts:

- `create` queues every image (duplicates dropped, order kept) or nothing; it refuses with
  `QueueFull` when the images waiting across all jobs would exceed `max_queue`.
- `cancel` is immediate and final for the results: images not yet done become
  ``skipped``; the image in flight finishes in the background and its result is
  discarded (its expensive stages stay cached, so a resume gets it almost free).
- `resume` queues again every image that is not done (pending, skipped, failed).
- `recover` runs at start-up: jobs the previous process left ``running`` become
  ``interrupted`` (their in-flight images go back to ``pending``) and, with
  `auto_resume`, every interrupted job is resumed.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy.exc import IntegrityError

from seglens.core.query import parse_query
from seglens.core.types import GenerationParams
from seglens.services.errors import Conflict, InvalidInput, NotFound, QueueFull, invalid_input
from seglens.services.jobs.types import JobParams
from seglens.services.logcontext import bind
from seglens.services.scheduler import Scheduler
from seglens.services.segment.interactive import check_points_per_side
from seglens.storage.images_repo import ImageRepository
from seglens.storage.jobs_repo import ItemSummaryRow, JobRepository, NewJob
from seglens.storage.records import JobEvent, JobItemRecord, JobRecord, TransitionError

__all__ = ["JobService"]

log = logging.getLogger("seglens.jobs")


class JobService:
    """The jobs use cases over the job store: create (with admission limits), read, cancel,
    resume, delete, and crash recovery. Errors are `ServiceError`s: `NotFound` for an
    unknown id, `InvalidInput`, `Conflict`, `QueueFull`."""

    def __init__(
        self,
        jobs: JobRepository,
        images: ImageRepository,
        scheduler: Scheduler,
        *,
        profile: str | None,
        meaningless: Callable[[], bool],
        max_queue: int,
        max_job_images: int,
        max_points_per_side: int = GenerationParams.POINTS_PER_SIDE_MAX,
    ):
        self.jobs = jobs
        self.images = images
        self.scheduler = scheduler
        self.profile = profile
        self._meaningless = meaningless
        self.max_queue = max_queue
        self.max_job_images = max_job_images
        self.max_points_per_side = max_points_per_side
        self._admission = threading.Lock()

    def create(self, image_ids: Sequence[str], query: str, params: JobParams) -> JobRecord:
        """Queue one image per id of `image_ids` (duplicates dropped, order kept) to be matched
        against `query` with `params`; a one-image job gets priority 1. Raises
        `InvalidInput` (a bad query or grid, no images, too many), `Conflict`
        (``profile_not_loaded``: another profile than the server's), `NotFound` (an unknown
        image), `QueueFull` (the images waiting would pass `max_queue`)."""
        with invalid_input("invalid_query"):
            parsed = parse_query(query)
        check_points_per_side(params.points_per_side, self.max_points_per_side)
        ids = tuple(dict.fromkeys(image_ids))
        if not ids:
            raise InvalidInput("no_images", "a job needs at least one image id")
        if len(ids) > self.max_job_images:
            raise InvalidInput(
                "too_many_images", f"a job takes at most {self.max_job_images} images, got {len(ids)}"
            )
        if params.profile is not None and params.profile != self.profile:
            raise Conflict(
                "profile_not_loaded",
                f"this server runs profile {self.profile!r}, not {params.profile!r}; "
                f"start it with `seglens serve --profile {params.profile}`",
            )
        found = self.images.get_many(ids)
        missing = [i for i in ids if i not in found]
        if missing:
            shown = ", ".join(m[:80] for m in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise NotFound("image_not_found", f"unknown image ids: {shown}{more}")
        # The depth check and the insert are one step, so two submissions racing at the
        # limit cannot both pass.
        with self._admission:
            depth = self.jobs.queue_depth()
            if depth + len(ids) > self.max_queue:
                wait_s = self.scheduler.estimate_wait_s(depth + len(ids) - self.max_queue)
                raise QueueFull(
                    "queue_full",
                    f"{depth} images are already waiting (limit {self.max_queue}); try again later",
                    int(min(3600, max(1, wait_s))),
                )
            try:
                job = self.jobs.create(
                    NewJob(
                        id=uuid.uuid4().hex,
                        query=query,
                        keywords=(*parsed.keywords, *parsed.exclusions),
                        params=params,
                        profile=params.profile or self.profile,
                        meaningless=self._meaningless(),
                        image_ids=ids,
                        priority=1 if len(ids) == 1 else 0,
                    )
                )
            except IntegrityError:
                # An image was deleted between the lookup above and the insert.
                raise NotFound("image_not_found", "an image of the job was deleted meanwhile") from None
        with bind(job_id=job.id):
            log.info("job created", extra={"fields": {"images": job.total, "query": query}})
        self.scheduler.wake()
        return job

    def get(self, job_id: str) -> JobRecord:
        """The job `job_id`; `NotFound` (``job_not_found``) when there is none."""
        job = self.jobs.get(job_id)
        if job is None:
            raise NotFound("job_not_found", f"no job with id {job_id[:80]!r}")
        return job

    def find(self, job_id: str) -> JobRecord | None:
        """The job, or None; never raises (for pollers that outlive a delete)."""
        return self.jobs.get(job_id)

    def iter_items(self, job_id: str) -> Iterator[JobItemRecord]:
        """Every image of the job in submission order, read in batches."""
        return self.jobs.iter_items(job_id)

    def item_summaries(self, job_id: str) -> list[ItemSummaryRow]:
        """Every image of the job in submission order with its stored summary, without
        its result (see `services/jobs/summary.py`)."""
        return self.jobs.item_summaries(job_id)

    def store_summaries(
        self, job_id: str, summaries: Mapping[str, tuple[dict[str, Any], dict[str, float] | None]]
    ) -> int:
        """Store summaries computed for done images that had none, ``image id ->
        (summary, timings_ms)``; returns how many."""
        return self.jobs.store_summaries(job_id, summaries)

    def page(self, *, limit: int, offset: int, status: str | None = None) -> tuple[list[JobRecord], int]:
        """Jobs newest first (in `status` only, when given) and how many there are in all."""
        return self.jobs.page(limit=limit, offset=offset, status=status)

    def cancel(self, job_id: str) -> JobRecord:
        """Cancel a queued, running or interrupted job: its pending and in-flight images
        become skipped at once (a result arriving later is dropped); a cancelled job stays
        as it is. `Conflict` (``job_finished``) for a completed or failed job, `NotFound`
        for an unknown one."""
        try:
            job = self.jobs.cancel(job_id)
        except TransitionError as error:
            raise Conflict("job_finished", str(error)) from None
        if job is None:
            raise NotFound("job_not_found", f"no job with id {job_id[:80]!r}")
        with bind(job_id=job.id):
            log.info("job cancelled", extra={"fields": {"done": job.done, "skipped": job.skipped}})
        return job

    def resume(self, job_id: str) -> JobRecord:
        """Queue again every image of the job that is not done (pending, skipped, failed).
        `Conflict`: ``job_active`` for a queued or running job, ``nothing_to_resume`` when
        every image is done; `NotFound` for an unknown job."""
        try:
            job = self.jobs.resume(job_id)
        except TransitionError as error:
            code = "job_active" if error.status in ("queued", "running") else "nothing_to_resume"
            raise Conflict(code, str(error)) from None
        if job is None:
            raise NotFound("job_not_found", f"no job with id {job_id[:80]!r}")
        with bind(job_id=job.id):
            log.info("job resumed", extra={"fields": {"remaining": job.remaining}})
        self.scheduler.wake()
        return job

    def delete(self, job_id: str) -> None:
        """Delete a job and its results; a running job is cancelled first."""
        job = self.get(job_id)
        if job.status in ("queued", "running", "interrupted"):
            with contextlib.suppress(TransitionError):  # it finished in between: delete it anyway
                self.jobs.cancel(job_id)
        if not self.jobs.delete(job_id):
            raise NotFound("job_not_found", f"no job with id {job_id[:80]!r}")
        with bind(job_id=job_id):
            log.info("job deleted")

    def results(
        self, job_id: str, *, limit: int, offset: int, status: str | None = None
    ) -> tuple[list[JobItemRecord], int]:
        """A page of the job's images in position order (in `status` only, when given) and how
        many there are in all; `NotFound` for an unknown job."""
        self.get(job_id)
        return self.jobs.items(job_id, limit=limit, offset=offset, status=status)

    def item(self, job_id: str, image_id: str) -> JobItemRecord:
        """One image of the job; `NotFound` for an unknown job (``job_not_found``) or an image
        not in it (``image_not_in_job``)."""
        self.get(job_id)
        item = self.jobs.item(job_id, image_id)
        if item is None:
            raise NotFound("image_not_in_job", f"image {image_id[:80]!r} is not part of job {job_id}")
        return item

    def events(self, job_id: str) -> list[JobEvent]:
        """The job's timeline, oldest first; `NotFound` for an unknown job."""
        self.get(job_id)
        return self.jobs.events(job_id)

    def recover(self, *, auto_resume: bool) -> tuple[list[str], list[str]]:
        """Mark jobs left running by a previous process interrupted; resume interrupted
        jobs when `auto_resume`. Returns (interrupted ids, resumed ids)."""
        interrupted = self.jobs.interrupt_running("the server stopped while the job was running")
        resumed: list[str] = []
        if auto_resume:
            for job_id in self.jobs.ids_with_status("interrupted"):
                try:
                    self.jobs.resume(job_id)
                except TransitionError:
                    continue
                resumed.append(job_id)
        if interrupted or resumed:
            log.info("jobs recovered", extra={"fields": {"interrupted": interrupted, "resumed": resumed}})
            self.scheduler.wake()
        return interrupted, resumed

    def interrupt_running(self, message: str) -> list[str]:
        """At shutdown: running jobs become interrupted, their in-flight images pending."""
        ids = self.jobs.interrupt_running(message)
        if ids:
            log.info("jobs interrupted", extra={"fields": {"jobs": ids, "reason": message}})
        return ids

    def queue_depth(self) -> int:
        """The images waiting or running across all jobs (what `max_queue` limits)."""
        return self.jobs.queue_depth()

    def counts(self) -> dict[str, int]:
        """The number of jobs in each state."""
        return self.jobs.count_by_status()
