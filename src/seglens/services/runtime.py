"""The composition root of the server: every service, built once from `Settings`.

Data directory layout::

    seglens.db            SQLite (WAL): images, jobs, job items and events, history,
                          assistant conversations
    images/, thumbnails/  uploaded files, content-addressed (seglens.storage.files)
    cache/                the pipeline's artifact cache (seglens.storage.cache)
    models/               locally built models (tiny)
    tmp/                  export archives on their way out

`start()` migrates the database, recovers jobs a previous process left running, starts
loading the models in the background and starts the workers. `stop()` stops taking
work, gives the image in flight `shutdown_grace_s` to finish, and marks jobs still
running as interrupted.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass

from seglens.models.progress import LOADS, ModelLoadState
from seglens.models.registry import profile_is_meaningless
from seglens.services.assistant.chat import Assistant
from seglens.services.assistant.context import ScreenContexts
from seglens.services.assistant.conversations import ConversationService
from seglens.services.assistant.service import AssistantService
from seglens.services.history import HistoryService
from seglens.services.jobs.executors import build_executor
from seglens.services.jobs.reports import JobReports
from seglens.services.jobs.service import JobService
from seglens.services.provider import PipelineProvider, ProviderState
from seglens.services.scheduler import Scheduler
from seglens.services.segment.images import ImageService
from seglens.services.segment.interactive import InteractiveService
from seglens.services.segment.pipeline import TINY_BANNER, Pipeline
from seglens.services.segment.search import SearchService
from seglens.services.segment.viewdata import ViewDataService
from seglens.settings import Settings
from seglens.storage.cache import ArtifactCache
from seglens.storage.conversations_repo import ConversationRepository
from seglens.storage.db import Database
from seglens.storage.files import ImageFiles
from seglens.storage.history_repo import HistoryRepository
from seglens.storage.images_repo import ImageRepository
from seglens.storage.jobs_repo import JobRepository

__all__ = ["HealthReport", "PipelineFactory", "Runtime", "default_pipeline_factory"]

log = logging.getLogger("seglens.server")

PipelineFactory = Callable[[Settings], Pipeline]


def default_pipeline_factory(settings: Settings) -> Pipeline:
    """The settings' profile, with its model overrides, on the settings' device."""
    return Pipeline.from_settings(settings)


@dataclass(frozen=True)
class HealthReport:
    status: ProviderState
    profile: str
    models: dict[str, str] | None
    device: str
    backend: str
    meaningless: bool
    warning: str | None
    load_error: str | None
    queue_depth: int
    jobs: dict[str, int]
    workers: int
    in_flight: int
    interactive_in_flight: int
    loading: tuple[ModelLoadState, ...] = ()


class Runtime:
    def __init__(self, settings: Settings, pipeline_factory: PipelineFactory | None = None):
        self.settings = settings
        root = settings.data_dir
        root.mkdir(parents=True, exist_ok=True)
        factory = pipeline_factory or default_pipeline_factory
        self.db = Database(root / "seglens.db")
        self.provider = PipelineProvider(lambda: factory(settings))
        image_repo = ImageRepository(self.db)
        job_repo = JobRepository(self.db)
        self.images = ImageService(
            image_repo,
            ImageFiles(root, settings.thumbnail_px),
            max_bytes=settings.max_upload_bytes,
            max_pixels=settings.max_pixels,
            cache=ArtifactCache(settings.cache_dir),
        )
        self.history = HistoryService(HistoryRepository(self.db))
        # Batch images run on the executor SEGLENS_EXECUTOR names (local threads or Ray
        # actors); the job store, its states and its commits are the same for both.
        self.executor = build_executor(settings, job_repo, self.images, self.provider)
        self.scheduler = Scheduler(
            job_repo,
            self.executor.process,
            workers=self.executor.workers,
            max_interactive=settings.max_interactive,
            nice=self.executor.nice,
            ready=self.executor.ready,
            yield_to_interactive=self.executor.yield_to_interactive,
            batch_share=settings.batch_share,
        )
        self.jobs = JobService(
            job_repo,
            image_repo,
            self.scheduler,
            profile=settings.profile,
            meaningless=self.meaningless,
            max_queue=settings.max_queue,
            max_job_images=settings.max_job_images,
            max_points_per_side=settings.max_points_per_side,
        )
        self.tmp_dir = root / "tmp"
        self.reports = JobReports(
            self.jobs, self.images, self.provider, tmp_dir=self.tmp_dir, models_wait_s=settings.models_wait_s
        )
        self.interactive = InteractiveService(
            self.images,
            self.provider,
            self.scheduler,
            self.history,
            models_wait_s=settings.models_wait_s,
            max_points_per_side=settings.max_points_per_side,
        )
        self.view_data = ViewDataService(
            self.images,
            self.provider,
            self.scheduler,
            models_wait_s=settings.models_wait_s,
            max_points_per_side=settings.max_points_per_side,
        )
        self.search = SearchService(
            image_repo, self.provider, self.scheduler, self.history, models_wait_s=settings.models_wait_s
        )
        # The LLM client is built here once, from settings; it opens no connection until
        # the first chat.
        self.conversations = ConversationService(ConversationRepository(self.db))
        self.assistant = AssistantService(
            Assistant.from_settings(settings),
            self.conversations,
            ScreenContexts(self.jobs, self.images, self.interactive, self.provider, profile=settings.profile),
            max_concurrent=settings.llm_max_concurrent,
        )

    def meaningless(self) -> bool:
        """Whether results are meaningless (tiny models): from the loaded models when
        they are loaded, else from the profile."""
        pipeline = self.provider.pipeline
        if pipeline is not None:
            return pipeline.meaningless
        return profile_is_meaningless(self.settings.profile)

    def start(self) -> None:
        shutil.rmtree(self.tmp_dir, ignore_errors=True)  # exports of a previous process
        self.db.migrate()
        self.jobs.recover(auto_resume=self.settings.auto_resume)
        self.provider.start()
        self.executor.start()
        # Ray knows its number of workers only once connected.
        self.scheduler.workers = self.executor.workers
        self.scheduler.nice = self.executor.nice
        self.scheduler.yield_to_interactive = self.executor.yield_to_interactive
        self.scheduler.start()
        log.info(
            "server started",
            extra={
                "fields": {
                    "data_dir": str(self.settings.data_dir),
                    "profile": self.settings.profile,
                    "workers": self.scheduler.workers,
                    "executor": self.executor.name,
                }
            },
        )

    def stop(self) -> None:
        finished = self.scheduler.stop(self.settings.shutdown_grace_s)
        if not finished:
            log.warning("an image was still in flight at shutdown; it will run again on resume")
        self.jobs.interrupt_running("the server shut down while the job was running")
        self.executor.close()
        self.assistant.close()
        self.db.dispose()
        log.info("server stopped")

    def health(self) -> HealthReport:
        pipeline = self.provider.pipeline
        device = self.settings.device
        if pipeline is not None:
            config = getattr(pipeline.proposer, "device", None)
            device = str(getattr(config, "device", config or device))
        meaningless = self.meaningless()
        return HealthReport(
            status=self.provider.state,
            profile=self.settings.profile,
            models=pipeline.model_ids() if pipeline else None,
            device=device,
            backend=getattr(pipeline, "backend", "torch") if pipeline is not None else self.settings.backend,
            meaningless=meaningless,
            warning=TINY_BANNER if meaningless else None,
            load_error=self.provider.error,
            queue_depth=self.jobs.queue_depth(),
            jobs=self.jobs.counts(),
            workers=self.scheduler.workers,
            in_flight=self.scheduler.in_flight,
            interactive_in_flight=self.scheduler.interactive_in_flight,
            loading=tuple(LOADS.snapshot()) if self.provider.state == "loading" else (),
        )
