"""The Ray executor: a job's images run on Ray actors that hold the models.

- One actor per GPU of the cluster (or per `ray_cpus_per_worker` CPUs, or
  `ray_workers`), each loading the pipeline once; `ray_tasks_per_worker` images are in
  flight per actor so the next image's bytes arrive while the current one computes.
- The scheduler's threads claim images in the job store exactly as with the local
  executor; each thread ships its image to a free actor slot (bytes through Ray's object
  store, or a path when the file lies under `shared_dir`), waits for the outcome and
  commits it here, in the driver, through `ItemProcessor.commit`: actors never touch the
  database, so results are committed exactly once, by the same conditional write.
- Cancel and interruption: a thread whose image is no longer its own (cancelled,
  interrupted, deleted) stops waiting, cancels the Ray task if it has not started, and
  drops the result; nothing new is submitted for it.
- A worker process that dies (killed, out of memory, node lost): Ray restarts the actor
  (``max_restarts=-1``); its in-flight images are sent again to another actor, at most
  `ray_max_retries` times, then recorded as failed with ``worker_lost``. The actor gets
  its slots back once it answers again.

Ray is imported here only, inside functions, and only when this executor is chosen.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from seglens.errors import ExecutorUnavailable
from seglens.services.errors import NotFound
from seglens.services.jobs.executors.ray_actor import ImageTask, SegmentWorker, WorkerConfig
from seglens.services.jobs.worker import ItemOutcome, ItemProcessor
from seglens.services.logcontext import bind
from seglens.services.segment.images import ImageService
from seglens.settings import Settings
from seglens.storage.jobs_repo import ClaimedItem, JobRepository

__all__ = ["RayExecutor"]

log = logging.getLogger("seglens.jobs")

_POLL_S = 0.25
# How long a lost actor may take to come back before its slots are retired.
_RECOVER_S = 300.0


class _Discarded(Exception):
    """The image stopped being this thread's while it ran (cancel, interruption)."""


class _Slots:
    """Free task slots per actor. An actor whose process was lost lends no slot until
    it answers again; a retired actor never does."""

    def __init__(self, actors: int, per_actor: int):
        self._cond = threading.Condition()
        self._free = [i for _ in range(per_actor) for i in range(actors)]
        self._healthy = [True] * actors
        self._retired = [False] * actors
        self._parked = [0] * actors
        self._closed = False

    def acquire(self, avoid: int | None = None) -> int | None:
        """A free slot's actor index, preferring one other than `avoid`; None once
        closed or when every actor is retired."""
        with self._cond:
            while True:
                if self._closed or all(self._retired):
                    return None
                if self._free:
                    choice = next((i for i in self._free if i != avoid), self._free[0])
                    self._free.remove(choice)
                    return choice
                self._cond.wait(_POLL_S)

    def release(self, index: int) -> None:
        with self._cond:
            if self._retired[index]:
                return
            if self._healthy[index]:
                self._free.append(index)
                self._cond.notify()
            else:
                self._parked[index] += 1

    def suspend(self, index: int) -> bool:
        """Take the actor's free slots out; True when it was healthy until now."""
        with self._cond:
            was = self._healthy[index] and not self._retired[index]
            self._healthy[index] = False
            kept = [i for i in self._free if i != index]
            self._parked[index] += len(self._free) - len(kept)
            self._free = kept
            return was

    def restore(self, index: int) -> None:
        with self._cond:
            self._healthy[index] = True
            self._free.extend([index] * self._parked[index])
            self._parked[index] = 0
            self._cond.notify_all()

    def retire(self, index: int) -> None:
        with self._cond:
            self._retired[index] = True
            self._free = [i for i in self._free if i != index]
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


def _worker_lost_errors() -> tuple[type[BaseException], ...]:
    from ray.exceptions import ObjectLostError, RayActorError, WorkerCrashedError

    return (RayActorError, WorkerCrashedError, ObjectLostError)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]


class RayExecutor:
    name = "ray"

    def __init__(
        self, settings: Settings, jobs: JobRepository, images: ImageService, committer: ItemProcessor
    ):
        self.settings = settings
        self.jobs = jobs
        self.images = images
        self.committer = committer
        self.workers = settings.ray_workers * settings.ray_tasks_per_worker or 1
        self.yield_to_interactive = False
        self.nice = 0
        self.actors: list[Any] = []
        self._owns_ray = False
        # No actor, so no slot, until `start` has made them.
        self._slots = _Slots(0, 0)
        self._closing = threading.Event()
        self._ready = threading.Event()
        self._error: str | None = None
        self._active = 0
        self._active_cond = threading.Condition()
        self._shared_dir = settings.shared_dir.resolve() if settings.shared_dir else None

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Connect to (or start) Ray and create the actors; their models load in the
        background (`ready`, `wait_ready`). Raises `ExecutorUnavailable`."""
        address = self.settings.ray_address.strip() or None
        if address is None:
            # A private Ray needs no network: keep every Ray socket on the loopback
            # interface (read by Ray when it is first imported).
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        try:
            import ray
        except ImportError:
            raise ExecutorUnavailable(
                "the ray executor needs Ray: pip install 'seglens[ray]' (or set SEGLENS_EXECUTOR=local)"
            ) from None
        if not ray.is_initialized():
            options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address is None:
                options["num_cpus"] = self.settings.ray_num_cpus or None
            try:
                ray.init(address=address or "local", **options)
            except Exception as error:
                where = address or "a private local instance"
                raise ExecutorUnavailable(f"cannot start or reach Ray ({where}): {error}") from None
            self._owns_ray = True
        private = self._owns_ray and address is None
        self.yield_to_interactive = private
        self.nice = self.settings.worker_nice if private else 0
        count, cpus, gpus = self._shape(ray.cluster_resources())
        # One image at a time per actor (a sync actor); Ray restarts a lost actor, and
        # this executor, not Ray, sends its in-flight images to another one.
        actor_class = ray.remote(num_cpus=cpus, num_gpus=gpus, max_restarts=-1, max_task_retries=0)(
            SegmentWorker
        )
        config = self._actor_config(gpus, private)
        self._actor_class, self._config = actor_class, config
        self.actors = [actor_class.remote(config) for _ in range(count)]
        self.workers = count * self.settings.ray_tasks_per_worker
        self._slots = _Slots(count, self.settings.ray_tasks_per_worker)
        threading.Thread(target=self._await_actors, name="seglens-ray-start", daemon=True).start()
        log.info(
            "ray executor started",
            extra={"fields": {"actors": count, "cpus_per_actor": cpus, "gpus_per_actor": gpus}},
        )

    def _shape(self, resources: dict[str, float]) -> tuple[int, float, float]:
        cpus = self.settings.ray_cpus_per_worker
        gpus = self.settings.ray_gpus_per_worker
        if gpus is None:
            gpus = 1.0 if resources.get("GPU", 0.0) >= 1.0 else 0.0
        count = self.settings.ray_workers
        if count == 0:
            if gpus > 0:
                count = int(resources.get("GPU", 0.0) // gpus)
            else:
                count = int(resources.get("CPU", 1.0) // cpus)
        if count < 1:
            raise ExecutorUnavailable(
                f"the Ray cluster has room for no worker of {cpus} CPUs and {gpus} GPUs "
                f"(it has {resources.get('CPU', 0)} CPUs, {resources.get('GPU', 0)} GPUs)"
            )
        return count, cpus, gpus

    def _actor_config(self, gpus: float, private: bool) -> WorkerConfig:
        s = self.settings
        return WorkerConfig(
            profile=s.profile,
            data_dir=str(s.data_dir.resolve()),
            # Ray hands each GPU actor its own device as cuda:0.
            device="cuda" if gpus > 0 else s.device,
            dtype=s.dtype,
            proposer=s.proposer,
            embedder=s.embedder,
            backend=s.backend,
            allow_download=s.allow_download,
            max_pixels=s.max_pixels,
            max_bytes=s.max_upload_bytes,
            nice=s.worker_nice if private else 0,
        )

    def _await_actors(self) -> None:
        import ray

        try:
            infos = ray.get([actor.info.remote() for actor in self.actors])
        except Exception as error:
            self._error = f"the Ray workers could not load the models: {_first_line(error)}"
            log.error("ray workers failed to start", extra={"fields": {"error": self._error}})
        else:
            log.info("ray workers ready", extra={"fields": {"pids": [i["pid"] for i in infos]}})
        finally:
            self._ready.set()

    def ready(self, timeout_s: float) -> bool:
        return self._ready.wait(timeout_s) and self._error is None

    def wait_ready(self, timeout_s: float | None = None) -> None:
        if not self._ready.wait(timeout_s):
            raise ExecutorUnavailable("the Ray workers are still loading the models")
        if self._error is not None:
            raise ExecutorUnavailable(self._error)

    def worker_pids(self, timeout_s: float = 120.0) -> list[int]:
        """The process id of every actor (for operators and tests), waiting up to
        `timeout_s` for actors Ray is restarting."""
        return [int(self._info(index, timeout_s)["pid"]) for index in range(len(self.actors))]

    def _info(self, index: int, timeout_s: float) -> dict[str, Any]:
        """The actor's `info()`, asking again while Ray restarts it."""
        import ray
        from ray.exceptions import ActorUnavailableError, GetTimeoutError

        deadline = time.monotonic() + timeout_s
        delay = 0.1
        while True:
            try:
                return ray.get(
                    self.actors[index].info.remote(), timeout=max(0.1, deadline - time.monotonic())
                )
            except (ActorUnavailableError, GetTimeoutError):
                if time.monotonic() + delay > deadline or self._closing.is_set():
                    raise
                self._closing.wait(delay)
                delay = min(2.0, delay * 2)

    def close(self) -> None:
        """Stop waiting for results, kill the actors, and shut Ray down if this executor
        started it."""
        self._closing.set()
        self._slots.close()
        with self._active_cond:
            deadline = time.monotonic() + 5.0
            while self._active and time.monotonic() < deadline:
                self._active_cond.wait(_POLL_S)
        try:
            import ray
        except ImportError:
            return
        if not ray.is_initialized():
            return
        for actor in self.actors:
            try:
                ray.kill(actor)
            except Exception:
                log.debug("could not kill a ray actor", exc_info=True)
        self.actors = []
        if self._owns_ray:
            ray.shutdown()

    # -- one image ------------------------------------------------------------------------
    def process(self, claimed: ClaimedItem) -> None:
        with self._active_cond:
            self._active += 1
        try:
            with bind(job_id=claimed.job.id, image_id=claimed.item.image_id):
                self._process(claimed)
        except Exception:
            if not self._closing.is_set():
                log.exception("ray executor error")
        finally:
            with self._active_cond:
                self._active -= 1
                self._active_cond.notify_all()

    def _process(self, claimed: ClaimedItem) -> None:
        import ray

        started = time.perf_counter()
        outcome: ItemOutcome
        try:
            task, data = self._task(claimed)
        except NotFound as error:
            self.committer.commit(claimed, ItemOutcome.failed(str(error), error.code), started)
            return
        data_ref = ray.put(data) if data is not None else None
        lost = _worker_lost_errors()
        losses: list[str] = []
        avoid: int | None = None
        while True:
            index = self._slots.acquire(avoid)
            if index is None:
                if self._closing.is_set():
                    return  # shutting down: the image goes back to pending and runs on resume
                outcome = self._lost_outcome(losses or ["no Ray worker is left"])
                break
            if not self._still_mine(claimed):
                self._slots.release(index)
                self._discarded(claimed)
                return
            ref = self.actors[index].process.remote(task, data_ref)
            try:
                outcome = self._wait(ref, claimed)
            except _Discarded:
                self._slots.release(index)
                self._discarded(claimed)
                return
            except lost as error:
                self._slots.release(index)
                if self._closing.is_set():
                    return
                losses.append(_first_line(error))
                log.warning(
                    "ray worker lost; the image goes to another worker",
                    extra={"fields": {"actor": index, "error": losses[-1], "losses": len(losses)}},
                )
                self._suspend(index)
                if len(losses) > self.settings.ray_max_retries:
                    outcome = self._lost_outcome(losses)
                    break
                avoid = index
                continue
            except Exception as error:
                self._slots.release(index)
                if self._closing.is_set():
                    return
                outcome = ItemOutcome.failed(
                    f"the Ray task failed: {_first_line(error)}", "processing_failed"
                )
                break
            self._slots.release(index)
            break
        if losses:
            outcome = outcome.with_log_fields(worker_losses=len(losses))
            if outcome.ok and outcome.result is not None:
                outcome.result.setdefault("warnings", []).append(
                    f"its Ray worker process was lost {len(losses)} time(s); it ran again on another worker"
                )
        self.committer.commit(claimed, outcome, started)

    def _task(self, claimed: ClaimedItem) -> tuple[ImageTask, bytes | None]:
        image = self.images.get(claimed.item.image_id)
        path = self.images.original_path(image.id)
        task = ImageTask(
            image_id=image.id,
            filename=image.filename,
            query=claimed.job.query,
            params=claimed.job.params,
            render=self.committer.render,
        )
        if self._shared_dir is not None:
            resolved = path.resolve()
            if resolved.is_relative_to(self._shared_dir) and resolved.is_file():
                return replace(task, path=str(resolved)), None
        try:
            return task, Path(path).read_bytes()
        except FileNotFoundError:
            raise NotFound(
                "image_file_missing", f"the file of image {image.id} is missing from the data directory"
            ) from None

    def _wait(self, ref: Any, claimed: ClaimedItem) -> ItemOutcome:
        import ray

        while True:
            done, _ = ray.wait([ref], timeout=_POLL_S)
            if done:
                return ray.get(ref)
            if self._closing.is_set() or not self._still_mine(claimed):
                try:
                    ray.cancel(ref)  # a task not started yet is dropped; a running one finishes
                except Exception:
                    log.debug("could not cancel a ray task", exc_info=True)
                raise _Discarded

    def _still_mine(self, claimed: ClaimedItem) -> bool:
        """Whether the image is still running under this thread's claim."""
        current = self.jobs.item(claimed.job.id, claimed.item.image_id)
        return (
            current is not None and current.status == "running" and current.attempts == claimed.item.attempts
        )

    def _discarded(self, claimed: ClaimedItem) -> None:
        if not self._closing.is_set():
            log.info("image result discarded", extra={"fields": {"committed": False, "executor": "ray"}})

    def _lost_outcome(self, losses: list[str]) -> ItemOutcome:
        return ItemOutcome.failed(
            f"the Ray worker running this image was lost {len(losses)} time(s): {losses[-1]}", "worker_lost"
        )

    def _suspend(self, index: int) -> None:
        if self._slots.suspend(index):
            threading.Thread(
                target=self._recover, args=(index,), name=f"seglens-ray-recover-{index}", daemon=True
            ).start()

    def _recover(self, index: int) -> None:
        """Give the actor its slots back once Ray has restarted it and it answers."""
        try:
            info = self._info(index, _RECOVER_S)
        except Exception as error:
            if self._closing.is_set():
                return
            self._slots.retire(index)
            log.error(
                "ray worker retired: it never came back",
                extra={"fields": {"actor": index, "error": _first_line(error)}},
            )
            return
        self._slots.restore(index)
        log.info("ray worker back", extra={"fields": {"actor": index, "pid": info["pid"]}})
