"""The persistent job queue: jobs, their images, their timelines.

Every state change is one SQLite transaction, so a crash (even ``kill -9``) leaves the
queue in a state that existed: an image's result, its job's counters and the job's own
state are written together or not at all. Writing an image's result is conditional on
the image still being ``running``: a result that arrives after a cancel or an
interruption is discarded, and no result is ever written twice.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from seglens.core.types import JobParams
from seglens.storage.db import Database
from seglens.storage.records import (
    ACTIVE_JOB_STATES,
    JobEvent,
    JobItemRecord,
    JobRecord,
    TransitionError,
    keywords_key,
)
from seglens.storage.tables import JobEventRow, JobItemRow, JobItemSummaryRow, JobRow, utcnow

__all__ = ["ClaimedItem", "ItemSummaryRow", "JobRepository", "NewJob"]

_OPEN_ITEM_STATES = ("pending", "running")


@dataclass(frozen=True)
class NewJob:
    """A job to create: its `id`, the `query` text and its parsed `keywords` (for keyword
    filters), `params` (stored as `JobParams.to_dict()`), the `profile` (None: the
    server's), whether its results are `meaningless`, the images in order (duplicates
    already dropped) and its `priority` (higher runs first)."""

    id: str
    query: str
    keywords: tuple[str, ...]
    params: JobParams
    profile: str | None
    meaningless: bool
    image_ids: tuple[str, ...]
    priority: int = 0


@dataclass(frozen=True)
class ClaimedItem:
    """An image a worker now owns (state ``running``) and the job it belongs to."""

    job: JobRecord
    item: JobItemRecord


@dataclass(frozen=True)
class ItemSummaryRow:
    """One image of a job without its (large) stored result: its state, its stored
    `summary` (None when not computed yet or not done), its stage timings (None for a
    done image without a summary) and its failure."""

    image_id: str
    position: int
    status: str
    summary: dict[str, Any] | None
    timings_ms: dict[str, float] | None
    error: str | None
    error_code: str | None


def _job(row: JobRow) -> JobRecord:
    return JobRecord(
        id=row.id,
        status=row.status,  # type: ignore[arg-type]
        query=row.query,
        params=JobParams.from_dict(row.params or {}),
        profile=row.profile,
        models=dict(row.models or {}),
        meaningless=row.meaningless,
        priority=row.priority,
        total=row.total,
        done=row.done,
        failed=row.failed,
        skipped=row.skipped,
        matches=row.matches,
        interruptions=row.interruptions,
        error=row.error,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        updated_at=row.updated_at,
    )


def _item(row: JobItemRow) -> JobItemRecord:
    return JobItemRecord(
        job_id=row.job_id,
        image_id=row.image_id,
        position=row.position,
        status=row.status,  # type: ignore[arg-type]
        attempts=row.attempts,
        result=row.result,
        timings_ms=row.timings_ms,
        error=row.error,
        error_code=row.error_code,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


def _update_running_item(session: Session, job_id: str, image_id: str, **values: Any) -> int:
    """Set `values` on the image of the job if it is still ``running``; returns the rows
    changed (0 when it was cancelled, interrupted or deleted meanwhile)."""
    written = session.execute(
        update(JobItemRow)
        .where(JobItemRow.job_id == job_id, JobItemRow.image_id == image_id, JobItemRow.status == "running")
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return int(written.rowcount)  # type: ignore[attr-defined]


def _event(session: Session, job_id: str, kind: str, message: str | None = None) -> None:
    session.add(JobEventRow(job_id=job_id, at=utcnow(), kind=kind, message=message))


class JobRepository:
    """Jobs and job items in the database; safe to share between threads."""

    def __init__(self, db: Database):
        self.db = db

    # -- creation and reads ---------------------------------------------------------
    def create(self, job: NewJob) -> JobRecord:
        """Store `job` as ``queued`` with one ``pending`` item per image and a ``created``
        event; returns it as stored."""
        now = utcnow()
        with self.db.write() as session:
            row = JobRow(
                id=job.id,
                status="queued",
                query=job.query,
                keywords=keywords_key(job.keywords),
                params=job.params.to_dict(),
                profile=job.profile,
                models={},
                meaningless=job.meaningless,
                priority=job.priority,
                total=len(job.image_ids),
                done=0,
                failed=0,
                skipped=0,
                matches=0,
                interruptions=0,
                created_at=now,
                updated_at=now,
            )
            session.add(row)
            session.flush()
            session.add_all(
                JobItemRow(job_id=job.id, image_id=image_id, position=i, status="pending", attempts=0)
                for i, image_id in enumerate(job.image_ids)
            )
            _event(session, job.id, "created", f"{len(job.image_ids)} images")
            return _job(row)

    def get(self, job_id: str) -> JobRecord | None:
        """The job `job_id`, or None."""
        with self.db.read() as session:
            row = session.get(JobRow, job_id)
            return _job(row) if row else None

    def page(self, *, limit: int, offset: int, status: str | None = None) -> tuple[list[JobRecord], int]:
        """Newest first."""
        with self.db.read() as session:
            query = select(JobRow)
            counter = select(func.count()).select_from(JobRow)
            if status:
                query = query.where(JobRow.status == status)
                counter = counter.where(JobRow.status == status)
            rows = session.scalars(
                query.order_by(JobRow.created_at.desc(), JobRow.id.desc()).limit(limit).offset(offset)
            ).all()
            return [_job(r) for r in rows], int(session.scalar(counter) or 0)

    def items(
        self, job_id: str, *, limit: int, offset: int, status: str | None = None
    ) -> tuple[list[JobItemRecord], int]:
        """In submission order."""
        with self.db.read() as session:
            where = [JobItemRow.job_id == job_id]
            if status:
                where.append(JobItemRow.status == status)
            rows = session.scalars(
                select(JobItemRow).where(*where).order_by(JobItemRow.position).limit(limit).offset(offset)
            ).all()
            total = session.scalar(select(func.count()).select_from(JobItemRow).where(*where))
            return [_item(r) for r in rows], int(total or 0)

    def iter_items(self, job_id: str, batch: int = 500) -> Iterator[JobItemRecord]:
        """Every item of a job in order, read in batches."""
        offset = 0
        while True:
            rows, _ = self.items(job_id, limit=batch, offset=offset)
            yield from rows
            if len(rows) < batch:
                return
            offset += batch

    def item_summaries(self, job_id: str) -> list[ItemSummaryRow]:
        """Every item of a job in order with its stored summary, never its result: the
        done images' timings come with their summaries, only the other images (whose
        rows hold no result) are read for theirs. A few hundred bytes per image."""
        summary = JobItemSummaryRow
        with self.db.read() as session:
            # Only columns stored before `result`: SQLite then never reads its megabytes.
            items = session.execute(
                select(JobItemRow.image_id, JobItemRow.position, JobItemRow.status)
                .where(JobItemRow.job_id == job_id)
                .order_by(JobItemRow.position)
            ).all()
            summaries = {
                image_id: (data, timings)
                for image_id, data, timings in session.execute(
                    select(summary.image_id, summary.summary, summary.timings_ms).where(
                        summary.job_id == job_id
                    )
                )
            }
            others = {
                image_id: (timings, error, code)
                for image_id, timings, error, code in session.execute(
                    select(
                        JobItemRow.image_id, JobItemRow.timings_ms, JobItemRow.error, JobItemRow.error_code
                    ).where(JobItemRow.job_id == job_id, JobItemRow.status != "done")
                )
            }
        rows = []
        for image_id, position, status in items:
            data, timings = summaries.get(image_id, (None, None)) if status == "done" else (None, None)
            timings, error, code = others.get(image_id, (timings, None, None))
            rows.append(ItemSummaryRow(image_id, position, status, data, timings, error, code))
        return rows

    def store_summaries(
        self, job_id: str, summaries: Mapping[str, tuple[dict[str, Any], dict[str, float] | None]]
    ) -> int:
        """Store computed summaries, ``image id -> (summary, timings_ms)``, of the job's
        done images in one short transaction (replacing older ones); an image no longer
        done is left alone. Returns how many were stored."""
        if not summaries:
            return 0
        with self.db.write() as session:
            done = set(
                session.scalars(
                    select(JobItemRow.image_id).where(
                        JobItemRow.job_id == job_id,
                        JobItemRow.image_id.in_(list(summaries)),
                        JobItemRow.status == "done",
                    )
                )
            )
            for image_id in done:
                data, timings = summaries[image_id]
                session.merge(
                    JobItemSummaryRow(job_id=job_id, image_id=image_id, summary=data, timings_ms=timings)
                )
        return len(done)

    def item(self, job_id: str, image_id: str) -> JobItemRecord | None:
        """The image `image_id` of job `job_id`, or None."""
        with self.db.read() as session:
            row = session.get(JobItemRow, (job_id, image_id))
            return _item(row) if row else None

    def events(self, job_id: str) -> list[JobEvent]:
        """The job's timeline (``created``, ``started``, ``cancelled``, ...), oldest first;
        empty for an unknown job."""
        with self.db.read() as session:
            rows = session.scalars(
                select(JobEventRow).where(JobEventRow.job_id == job_id).order_by(JobEventRow.id)
            ).all()
            return [JobEvent(r.at, r.kind, r.message) for r in rows]

    # -- the queue ---------------------------------------------------------------------
    def queue_depth(self) -> int:
        """Images waiting or in flight across queued and running jobs."""
        with self.db.read() as session:
            total = session.scalar(
                select(
                    func.coalesce(func.sum(JobRow.total - JobRow.done - JobRow.failed - JobRow.skipped), 0)
                ).where(JobRow.status.in_(ACTIVE_JOB_STATES))
            )
            return int(total or 0)

    def count_by_status(self) -> dict[str, int]:
        """The number of jobs in each state (only states some job is in)."""
        with self.db.read() as session:
            rows = session.execute(select(JobRow.status, func.count()).group_by(JobRow.status)).all()
            return {str(status): int(n) for status, n in rows}

    def runnable(self) -> list[tuple[str, int]]:
        """``(job_id, priority)`` of queued or running jobs with a pending image, oldest first."""
        pending = (
            select(JobItemRow.job_id)
            .where(JobItemRow.job_id == JobRow.id, JobItemRow.status == "pending")
            .exists()
        )
        with self.db.read() as session:
            rows = session.execute(
                select(JobRow.id, JobRow.priority)
                .where(JobRow.status.in_(ACTIVE_JOB_STATES), pending)
                .order_by(JobRow.created_at, JobRow.id)
            ).all()
            return [(str(job_id), int(priority)) for job_id, priority in rows]

    def claim_next(self, job_id: str) -> ClaimedItem | None:
        """Move the job's first pending image to ``running`` (and a queued job to
        ``running``); None when the job is not active or has nothing pending."""
        now = utcnow()
        with self.db.write() as session:
            job = session.get(JobRow, job_id)
            if job is None or job.status not in ACTIVE_JOB_STATES:
                return None
            item = session.scalars(
                select(JobItemRow)
                .where(JobItemRow.job_id == job_id, JobItemRow.status == "pending")
                .order_by(JobItemRow.position)
                .limit(1)
            ).first()
            if item is None:
                return None
            item.status = "running"
            item.attempts += 1
            item.started_at = now
            item.finished_at = None
            if job.status == "queued":
                job.status = "running"
                job.started_at = job.started_at or now
                _event(session, job_id, "started")
            job.updated_at = now
            return ClaimedItem(_job(job), _item(item))

    def record_models(self, job_id: str, models: dict[str, Any], meaningless: bool) -> None:
        """Record the model ids (and whether they are meaningless) a job's images ran with,
        when they differ from those stored; nothing for an unknown job."""
        with self.db.write() as session:
            job = session.get(JobRow, job_id)
            if job is not None and job.models != models:
                job.models = models
                job.meaningless = meaningless

    def finish_item(
        self,
        job_id: str,
        image_id: str,
        *,
        ok: bool,
        result: dict[str, Any] | None = None,
        summary: dict[str, Any] | None = None,
        timings_ms: dict[str, float] | None = None,
        match_count: int = 0,
        error: str | None = None,
        error_code: str | None = None,
    ) -> JobRecord | None:
        """Write a running image's outcome, exactly once, with its job's counters; finish
        the job when nothing is left. `summary` is the result's compact summary for the
        assistant (`services/jobs/summary.py`), stored with it. Returns None (and writes nothing) when the image is
        no longer ``running``: its job was cancelled, interrupted or deleted meanwhile."""
        now = utcnow()
        with self.db.write() as session:
            written = _update_running_item(
                session,
                job_id,
                image_id,
                status="done" if ok else "failed",
                result=result,
                timings_ms=timings_ms,
                error=error,
                error_code=error_code,
                finished_at=now,
            )
            if written != 1:
                return None
            if ok and summary is not None:
                session.merge(
                    JobItemSummaryRow(
                        job_id=job_id, image_id=image_id, summary=summary, timings_ms=timings_ms
                    )
                )
            job = session.get(JobRow, job_id)
            assert job is not None  # the item's foreign key guarantees it
            if ok:
                job.done += 1
                job.matches += match_count
            else:
                job.failed += 1
            job.updated_at = now
            open_items = session.scalar(
                select(func.count())
                .select_from(JobItemRow)
                .where(JobItemRow.job_id == job_id, JobItemRow.status.in_(_OPEN_ITEM_STATES))
            )
            if not open_items and job.status == "running":
                job.status = "failed" if job.done == 0 and job.failed > 0 else "completed"
                job.finished_at = now
                _event(session, job_id, job.status, f"{job.done} done, {job.failed} failed")
            return _job(job)

    # -- control -------------------------------------------------------------------------
    def cancel(self, job_id: str) -> JobRecord | None:
        """Cancel a queued, running or interrupted job: its pending and in-flight images
        become ``skipped`` at once (an in-flight result arriving later is discarded).
        Cancelling a cancelled job changes nothing. None if there is no such job."""
        now = utcnow()
        with self.db.write() as session:
            job = session.get(JobRow, job_id)
            if job is None:
                return None
            if job.status == "cancelled":
                return _job(job)
            if job.status in ("completed", "failed"):
                raise TransitionError(job.status, f"job {job_id} has already {job.status}")
            skipped = session.execute(
                update(JobItemRow)
                .where(JobItemRow.job_id == job_id, JobItemRow.status.in_(_OPEN_ITEM_STATES))
                .values(status="skipped", finished_at=now)
                .execution_options(synchronize_session=False)
            ).rowcount  # type: ignore[attr-defined]
            job.skipped += int(skipped)
            job.status = "cancelled"
            job.finished_at = now
            job.updated_at = now
            _event(session, job_id, "cancelled", f"{skipped} images skipped")
            return _job(job)

    def resume(self, job_id: str) -> JobRecord | None:
        """Queue again every image of the job that is not done (pending, skipped, failed,
        or left running by a crash). None if there is no such job."""
        now = utcnow()
        with self.db.write() as session:
            job = session.get(JobRow, job_id)
            if job is None:
                return None
            if job.status in ACTIVE_JOB_STATES:
                raise TransitionError(job.status, f"job {job_id} is already {job.status}")
            if job.done == job.total:
                raise TransitionError(job.status, f"job {job_id} has every image done: nothing to resume")
            requeued = session.execute(
                update(JobItemRow)
                .where(JobItemRow.job_id == job_id, JobItemRow.status != "done")
                .values(status="pending", result=None, error=None, error_code=None, finished_at=None)
                .execution_options(synchronize_session=False)
            ).rowcount  # type: ignore[attr-defined]
            job.failed = 0
            job.skipped = 0
            job.status = "queued"
            job.finished_at = None
            job.error = None
            job.updated_at = now
            _event(session, job_id, "resumed", f"{requeued} images queued again")
            return _job(job)

    def release_item(self, job_id: str, image_id: str) -> bool:
        """Put a running image back to ``pending`` (its result could not be written), so a
        worker takes it again. False when it is no longer running."""
        with self.db.write() as session:
            return _update_running_item(session, job_id, image_id, status="pending", started_at=None) == 1

    def interrupt_running(self, message: str) -> list[str]:
        """Mark every running job ``interrupted`` and put its in-flight images back to
        ``pending`` (their results were never committed). Returns the job ids."""
        now = utcnow()
        with self.db.write() as session:
            jobs = session.scalars(select(JobRow).where(JobRow.status == "running")).all()
            for job in jobs:
                session.execute(
                    update(JobItemRow)
                    .where(JobItemRow.job_id == job.id, JobItemRow.status == "running")
                    .values(status="pending", started_at=None)
                    .execution_options(synchronize_session=False)
                )
                job.status = "interrupted"
                job.interruptions += 1
                job.updated_at = now
                _event(session, job.id, "interrupted", message)
            return [job.id for job in jobs]

    def ids_with_status(self, status: str) -> list[str]:
        """The ids of the jobs in `status`, oldest first."""
        with self.db.read() as session:
            return list(
                session.scalars(select(JobRow.id).where(JobRow.status == status).order_by(JobRow.created_at))
            )

    def delete(self, job_id: str) -> bool:
        """Delete the job with its items and events; False when there was none."""
        with self.db.write() as session:
            session.execute(delete(JobItemSummaryRow).where(JobItemSummaryRow.job_id == job_id))
            session.execute(delete(JobItemRow).where(JobItemRow.job_id == job_id))
            session.execute(delete(JobEventRow).where(JobEventRow.job_id == job_id))
            gone = session.execute(delete(JobRow).where(JobRow.id == job_id)).rowcount  # type: ignore[attr-defined]
            return bool(gone)
