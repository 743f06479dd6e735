"""Headless batches (``seglens batch``): a large run without the server, resumable.

The state is a job store inside the output directory (``<out>/.seglens/seglens.db``, the
same SQLite schema, repositories and `JobService` as the server) and runs on the same
executors (local threads or Ray actors). Running the same command again after an
interruption (Ctrl-C, ``kill -9``, a lost machine) recovers the job the way the server
does at start-up: images done stay done, the rest runs, and each image's result is
committed exactly once.

Output: the files ``seglens segment`` writes (`seglens.services.segment.runs`), in the same
order and with the same names. Overlays (and cut-outs) are rendered by the worker with
each result and written here before the result is committed, so a crash in between only
rewrites them; ``annotations.coco.json``, ``report.json`` and ``report.csv`` are written
from the job store once every image is finished.

State layout::

    <out>/.seglens/seglens.db         the job store (images, the job, its items, timeline)
    <out>/.seglens/images/<ab>/<id>   a symbolic link to each input file (id: sha256)
    <out>/.seglens/lock               held while a batch runs in this directory

Inputs are registered without decoding (sha256 of the bytes and the image header); a
file that cannot be decoded fails on its worker like any image of a job. An input with
the same bytes as an earlier one is computed once and reported under both names.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO

from PIL import Image

from seglens.core.exports import ImageRecord
from seglens.core.query import parse_query
from seglens.core.types import GenerationParams
from seglens.errors import BatchBusy
from seglens.models.registry import profile_is_meaningless
from seglens.services.errors import Conflict
from seglens.services.jobs.executors import Executor, build_executor
from seglens.services.jobs.service import JobService
from seglens.services.jobs.types import JobParams, item_image_record
from seglens.services.jobs.worker import RenderedFiles, RenderSpec
from seglens.services.provider import PipelineProvider
from seglens.services.scheduler import Scheduler
from seglens.services.segment.images import ImageService
from seglens.services.segment.pipeline import Pipeline
from seglens.services.segment.runs import RunSummary, output_stems, run_info, write_outputs
from seglens.settings import Settings
from seglens.storage.atomic import atomic_write
from seglens.storage.db import Database
from seglens.storage.files import ImageFiles
from seglens.storage.images_repo import ImageRepository
from seglens.storage.jobs_repo import ClaimedItem, JobRepository
from seglens.storage.records import JobItemRecord, JobRecord, StoredImage
from seglens.storage.tables import utcnow

__all__ = ["STATE_DIR", "BatchBusy", "BatchResult", "BatchRunner"]

log = logging.getLogger("seglens.batch")

STATE_DIR = ".seglens"
FINISHED = ("completed", "failed", "cancelled")
_POLL_S = 0.2


@dataclass
class BatchResult:
    """A finished (or interrupted) batch: the job, one record per input in input order,
    and whether it finished."""

    job: JobRecord | None
    summary: RunSummary
    finished: bool
    resumed: bool = False
    failures: list[str] = field(default_factory=list)


@dataclass
class _Inputs:
    paths: list[Path]
    stems: list[str]
    ids: list[str | None]
    errors: dict[int, tuple[str, str]]  # input index -> (message, code)


def _header(data: bytes) -> tuple[str, int, int]:
    """Format and EXIF-oriented size from the header only; ("unknown", 0, 0) when the
    bytes are not an image Pillow can identify (the worker reports why)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if image.getexif().get(0x0112) in (5, 6, 7, 8):
                width, height = height, width
            return image.format or "unknown", int(width), int(height)
    except Exception:
        return "unknown", 0, 0


class BatchRunner:
    """One headless batch in `out_dir`, ready to `run` once constructed: the constructor
    takes the directory's lock, migrates the store and starts the executor (models load
    in the background); it raises `BatchBusy` (another batch holds the directory) or
    `ExecutorUnavailable` and then holds nothing. `stop` (or leaving a ``with`` block)
    releases it all. `pipeline_factory` replaces model loading for the local executor
    (tests)."""

    def __init__(
        self,
        settings: Settings,
        out_dir: Path,
        *,
        cutouts: bool = False,
        pipeline_factory: Callable[[Settings], Pipeline] | None = None,
    ):
        self.settings = settings
        self.out_dir = Path(out_dir)
        self.state_dir = self.out_dir / STATE_DIR
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.cutouts = cutouts
        self._lock_handle: IO[str] | None = None
        self.db = Database(self.state_dir / "seglens.db")
        self.image_repo = ImageRepository(self.db)
        self.job_repo = JobRepository(self.db)
        self.files = ImageFiles(self.state_dir, settings.thumbnail_px)
        self.images = ImageService(
            self.image_repo,
            self.files,
            max_bytes=settings.max_upload_bytes,
            max_pixels=settings.max_pixels,
        )
        factory = pipeline_factory or Pipeline.from_settings
        self.provider = PipelineProvider(lambda: factory(settings))
        self._stems: dict[str, list[str]] = {}
        self._stopped = False
        self._lock_handle = self._lock()
        executor: Executor | None = None
        try:
            self.db.migrate()
            render = RenderSpec(cutouts=cutouts)
            executor = build_executor(
                settings, self.job_repo, self.images, self.provider, render=render, sink=self._write_files
            )
            executor.start()
        except BaseException:
            if executor is not None:
                executor.close()
            self._release()
            raise
        self.executor = executor
        self.scheduler = Scheduler(
            self.job_repo,
            self.executor.process,
            workers=self.executor.workers,
            ready=self.executor.ready,
            yield_to_interactive=False,
        )
        self.jobs = self._job_service()

    def _job_service(self) -> JobService:
        return JobService(
            self.job_repo,
            self.image_repo,
            self.scheduler,
            profile=self.settings.profile,
            meaningless=lambda: profile_is_meaningless(self.settings.profile),
            max_queue=1 << 62,
            max_job_images=1 << 62,
            max_points_per_side=GenerationParams.POINTS_PER_SIDE_MAX,
        )

    def _lock(self) -> IO[str]:
        import fcntl

        handle = (self.state_dir / "lock").open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            self.db.dispose()
            raise BatchBusy(f"another seglens batch is running in {self.out_dir}") from None
        return handle

    def _release(self) -> None:
        self.db.dispose()
        if self._lock_handle is not None:
            self._lock_handle.close()
            self._lock_handle = None

    def __enter__(self) -> BatchRunner:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop taking images, give the ones in flight the shutdown grace, mark the job
        interrupted (a later run resumes it) and release the workers. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self.scheduler.stop(self.settings.shutdown_grace_s)
        self.jobs.interrupt_running("the batch was stopped while the job was running")
        self.executor.close()
        self._release()

    # -- the run ------------------------------------------------------------------------
    def run(
        self,
        paths: Sequence[Path],
        query: str,
        params: JobParams,
        *,
        restart: bool = False,
        on_start: Callable[[JobRecord], None] | None = None,
        on_progress: Callable[[JobRecord], None] | None = None,
        on_failure: Callable[[str], None] | None = None,
    ) -> BatchResult:
        """Register the inputs, create the job or pick up this directory's job, run it
        to the end and write the output files. Raises `Conflict` (``batch_mismatch``)
        when the directory holds a batch of another query, parameters or inputs (unless
        `restart`), `ExecutorUnavailable` when the models cannot load."""
        started = time.perf_counter()
        parse_query(query)
        inputs = self._ingest(list(paths))
        ids = [i for i in inputs.ids if i is not None]
        job, resumed = self._job(ids, query, params, restart)
        if on_start is not None:
            on_start(job)
        failures: list[str] = []
        for message, _code in inputs.errors.values():
            failures.append(message)
            if on_failure is not None:
                on_failure(message)
        if ids:
            self.executor.wait_ready(None)
            self.scheduler.start()
            job = self._follow(job, on_progress, on_failure, failures)
        finished = job.status in FINISHED or not ids
        summary = self._summary(inputs, job)
        summary.elapsed_ms = (time.perf_counter() - started) * 1000
        self._write(summary, job, query, params)
        return BatchResult(job=job, summary=summary, finished=finished, resumed=resumed, failures=failures)

    def _job(self, ids: list[str], query: str, params: JobParams, restart: bool) -> tuple[JobRecord, bool]:
        existing, _ = self.jobs.page(limit=1, offset=0)
        if existing:
            job = existing[0]
            same = (
                job.query == query
                and job.params == params
                and job.profile == self.settings.profile
                and self._same_images(job, ids)
            )
            if restart:
                self.jobs.delete(job.id)
            elif same:
                self.jobs.recover(auto_resume=True)
                job = self.jobs.get(job.id)
                if job.status in ("cancelled", "failed") or (
                    job.status == "completed" and job.done < job.total
                ):
                    job = self.jobs.resume(job.id)  # failed images get another try
                return job, True
            else:
                raise Conflict(
                    "batch_mismatch",
                    f"{self.out_dir} holds a batch of another query, parameters, profile or inputs "
                    f"(query {job.query!r}, {job.total} images); use another --out, or --restart to "
                    "discard it",
                )
        if not ids:
            now = utcnow()
            empty = JobRecord(
                id="",
                status="completed",
                query=query,
                params=params,
                profile=self.settings.profile,
                models={},
                meaningless=profile_is_meaningless(self.settings.profile),
                priority=0,
                total=0,
                done=0,
                failed=0,
                skipped=0,
                matches=0,
                interruptions=0,
                error=None,
                created_at=now,
                started_at=None,
                finished_at=None,
                updated_at=now,
            )
            return empty, False
        return self.jobs.create(ids, query, params), False

    def _same_images(self, job: JobRecord, ids: list[str]) -> bool:
        wanted = list(dict.fromkeys(ids))
        if job.total != len(wanted):
            return False
        return [item.image_id for item in self.jobs.iter_items(job.id)] == wanted

    def _follow(
        self,
        job: JobRecord,
        on_progress: Callable[[JobRecord], None] | None,
        on_failure: Callable[[str], None] | None,
        failures: list[str],
    ) -> JobRecord:
        reported: set[str] = set()
        seen_failed = 0
        wait = threading.Event()
        last: tuple[int, int, int, str] | None = None
        while True:
            job = self.jobs.get(job.id)
            if job.failed != seen_failed:
                seen_failed = job.failed
                for item in self._failed_items(job.id):
                    if item.image_id not in reported:
                        reported.add(item.image_id)
                        message = item.error or f"image {item.image_id} failed"
                        failures.append(message)
                        if on_failure is not None:
                            on_failure(message)
            state = (job.done, job.failed, job.skipped, job.status)
            if on_progress is not None and state != last:
                on_progress(job)
            last = state
            if job.status in FINISHED:
                return job
            wait.wait(_POLL_S)

    def _failed_items(self, job_id: str) -> Iterator[JobItemRecord]:
        offset = 0
        while True:
            items, total = self.jobs.results(job_id, limit=500, offset=offset, status="failed")
            yield from items
            offset += len(items)
            if not items or offset >= total:
                return

    # -- inputs -------------------------------------------------------------------------
    def _ingest(self, paths: list[Path]) -> _Inputs:
        """Register every readable input (sha256 of its bytes, header format and size)
        and link it into the store. A file already registered with the same size and not
        modified since the job was created is not read again."""
        stems = output_stems(paths)
        known = self._known_files()
        cutoff = self._job_created_ts()
        ids: list[str | None] = []
        errors: dict[int, tuple[str, str]] = {}
        new: list[StoredImage] = []
        self._stems = {}
        for index, path in enumerate(paths):
            key = str(path)
            try:
                stat = path.stat()
            except OSError:
                errors[index] = (f"{path}: no such file", "not_found")
                ids.append(None)
                continue
            if not path.is_file():
                errors[index] = (f"{path}: not a file", "not_found")
                ids.append(None)
                continue
            if stat.st_size > self.settings.max_upload_bytes:
                errors[index] = (
                    f"{path.name}: file is {stat.st_size:,} bytes, more than the limit of "
                    f"{self.settings.max_upload_bytes:,}",
                    "too_large",
                )
                ids.append(None)
                continue
            previous = known.get(key)
            if previous is not None and previous.bytes == stat.st_size and stat.st_mtime < cutoff:
                image_id = previous.id
            else:
                try:
                    data = path.read_bytes()
                except OSError as error:
                    errors[index] = (f"{path}: cannot read ({error.strerror or error})", "unreadable")
                    ids.append(None)
                    continue
                image_id = hashlib.sha256(data).hexdigest()
                fmt, width, height = _header(data)
                new.append(
                    StoredImage(
                        id=image_id,
                        pixels_sha256="",
                        filename=key,
                        format=fmt,
                        width=width,
                        height=height,
                        bytes=len(data),
                        created_at=utcnow(),
                    )
                )
            self._link(image_id, path)
            ids.append(image_id)
            self._stems.setdefault(image_id, []).append(stems[index])
        for start in range(0, len(new), 5000):
            self.image_repo.add_many(new[start : start + 5000])
        return _Inputs(paths=paths, stems=stems, ids=ids, errors=errors)

    def _known_files(self) -> dict[str, StoredImage]:
        known: dict[str, StoredImage] = {}
        offset = 0
        while True:
            page, total = self.image_repo.page(limit=5000, offset=offset)
            known.update((image.filename, image) for image in page)
            offset += len(page)
            if not page or offset >= total:
                return known

    def _job_created_ts(self) -> float:
        jobs, _ = self.jobs.page(limit=1, offset=0)
        return jobs[0].created_at.timestamp() if jobs else float("-inf")

    def _link(self, image_id: str, path: Path) -> None:
        link = self.files.original_path(image_id)
        target = str(path.resolve())
        with contextlib.suppress(OSError):
            if os.readlink(link) == target:
                return
        link.parent.mkdir(parents=True, exist_ok=True)
        tmp = link.with_name(f".tmp-{os.getpid()}-{image_id}")
        tmp.unlink(missing_ok=True)
        os.symlink(target, tmp)
        os.replace(tmp, link)

    # -- outputs ------------------------------------------------------------------------
    def _write_files(self, claimed: ClaimedItem, files: RenderedFiles) -> None:
        """The executor's sink: an image's overlay (and cut-outs) under every name it was
        given, before its result is committed."""
        for stem in self._stems.get(claimed.item.image_id, ()):
            atomic_write(self.out_dir / "overlays" / f"{stem}.png", files.overlay_png)
            for name, data in files.cutouts:
                atomic_write(self.out_dir / "cutouts" / stem / name, data)

    def _summary(self, inputs: _Inputs, job: JobRecord) -> RunSummary:
        items: dict[str, JobItemRecord] = {}
        if job.id:
            items = {item.image_id: item for item in self.jobs.iter_items(job.id)}
        stored = self.image_repo.get_many([i for i in inputs.ids if i is not None])
        summary = RunSummary(out_dir=self.out_dir)
        for index, path in enumerate(inputs.paths):
            image_id = inputs.ids[index]
            if image_id is None:
                message, code = inputs.errors[index]
                summary.records.append(ImageRecord(file_name=str(path), error=message, error_code=code))
                continue
            record = item_image_record(items[image_id], job, stored.get(image_id))
            record.file_name = str(path)
            if record.info is not None and record.result is not None:
                image = (items[image_id].result or {}).get("image", {})
                record.info = replace(
                    record.info,
                    width=int(image.get("width", record.info.width)),
                    height=int(image.get("height", record.info.height)),
                    filename=str(path),
                )
            summary.records.append(record)
        return summary

    def _write(self, summary: RunSummary, job: JobRecord, query: str, params: JobParams) -> None:
        from seglens.models.registry import get_profile

        (self.out_dir / "overlays").mkdir(parents=True, exist_ok=True)
        try:
            base = get_profile(job.profile or self.settings.profile).generation
        except KeyError:
            base = GenerationParams()
        info = run_info(
            profile=job.profile or self.settings.profile,
            models=dict(job.models),
            meaningless=job.meaningless,
            query=query,
            params=params.matching,
            alpha=params.alpha,
            generation=params.generation(base),
        )
        # What ran the forward passes, as `seglens segment` reports it: the in-process
        # pipeline's, or the setting when the images ran elsewhere (Ray actors).
        pipeline = self.provider.pipeline
        info["backend"] = pipeline.backend if pipeline is not None else self.settings.backend
        write_outputs(summary, list(parse_query(query).keywords), info)
