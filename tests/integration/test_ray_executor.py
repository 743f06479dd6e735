"""Jobs on the Ray executor: a real local Ray cluster (started here on 127.0.0.1, shared by
the module), the tiny profile, the real job store. Every image ends exactly once: after a
plain batch, after a worker process is killed mid-batch, across cancel and resume, across
a stop and restart; a headless batch on Ray writes the same files as the local one."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from live_server import photos
from seglens.core.types import QueryParams
from seglens.services.jobs.types import JobParams
from seglens.settings import Settings

pytestmark = [pytest.mark.ray, pytest.mark.slow]

FINISHED = ("completed", "failed", "cancelled")
PARAMS = JobParams(matching=QueryParams(threshold=0.05), points_per_side=4)


@pytest.fixture(scope="module")
def ray_cluster():
    # Every Ray socket on the loopback interface (read by Ray at import); workers at the
    # test's own CPU priority (Ray's default, nice 15, lets this process starve them).
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ["RAY_worker_niceness"] = "0"  # noqa: SIM112 (Ray reads this exact name)
    ray = pytest.importorskip("ray")
    # Short: Ray's Unix socket paths must fit in 107 bytes.
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=temp_dir)
    try:
        yield ray
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "profile": "tiny",
        "device": "cpu",
        "executor": "ray",
        "ray_workers": 2,
        "shutdown_grace_s": 0.5,
        "llm_enabled": False,
        **overrides,
    }
    return Settings(**values)


def _data_dir(root: Path, models_dir: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    if not (root / "models").exists():
        (root / "models").symlink_to(models_dir, target_is_directory=True)
    return root


def _start(settings: Settings):
    from seglens.services.runtime import Runtime

    runtime = Runtime(settings)
    runtime.start()
    runtime.executor.wait_ready(None)
    return runtime


def _upload(runtime, count: int, seed: int) -> list[str]:
    return [runtime.images.upload(data, name).image.id for name, data in photos(count, seed=seed)]


def _wait(runtime, job_id: str, until: Callable[[Any], bool], timeout_s: float = 120) -> Any:
    """Poll the job store until `until(job)` holds (the deadline only stops a hang)."""
    deadline = time.monotonic() + timeout_s
    while True:
        job = runtime.jobs.get(job_id)
        if until(job):
            return job
        assert time.monotonic() < deadline, f"job never got there: {job}"
        time.sleep(0.02)


def _items(runtime, job_id: str) -> list[Any]:
    return list(runtime.jobs.iter_items(job_id))


def _assert_each_image_once(runtime, job_id: str, ids: list[str]) -> list[Any]:
    job = runtime.jobs.get(job_id)
    items = _items(runtime, job_id)
    assert job.status == "completed", job
    assert (job.total, job.done, job.failed, job.skipped) == (len(ids), len(ids), 0, 0)
    assert [i.image_id for i in items] == ids  # one row per image, in order
    assert all(i.status == "done" and i.result is not None for i in items)
    return items


@pytest.fixture(scope="module")
def runtime(ray_cluster, tmp_path_factory, models_dir):
    live = _start(_settings(_data_dir(tmp_path_factory.mktemp("ray-jobs"), models_dir)))
    try:
        yield live
    finally:
        live.stop()


def test_ray_batch_completes_with_every_image_once_and_the_local_results(runtime):
    assert runtime.executor.name == "ray" and runtime.scheduler.workers == 4  # 2 actors x 2 slots
    ids = _upload(runtime, 10, seed=11)
    job = runtime.jobs.create(ids, "cat, cup", PARAMS)
    _wait(runtime, job.id, lambda j: j.status in FINISHED)
    items = _assert_each_image_once(runtime, job.id, ids)
    assert all(i.attempts == 1 for i in items)
    final = runtime.jobs.get(job.id)
    assert final.models["proposer"].startswith("tiny-sam") and final.meaningless

    # The actors computed what this process's own pipeline computes.
    from seglens.core.query import parse_query

    pipeline = runtime.provider.get(timeout_s=None)
    for item in items[:2]:
        segmentation = pipeline.segment(
            runtime.images.load(item.image_id), PARAMS.generation(pipeline.generation)
        )
        local = pipeline.match(segmentation, parse_query("cat, cup"), PARAMS.matching)
        assert item.result["num_regions"] == local.num_regions
        assert [m["rle"]["counts"] for m in item.result["matches"]] == [
            m.rle["counts"] for m in local.matches
        ]


def test_killing_a_ray_worker_mid_batch_retries_its_images_and_each_ends_once(runtime):
    ids = _upload(runtime, 24, seed=12)
    job = runtime.jobs.create(ids, "cat", PARAMS)
    _wait(runtime, job.id, lambda j: j.done >= 2)
    victim = runtime.executor.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)
    _wait(runtime, job.id, lambda j: j.status in FINISHED)
    items = _assert_each_image_once(runtime, job.id, ids)
    retried = [i for i in items if any("worker process was lost" in w for w in i.result["warnings"])]
    assert retried, "the killed worker had images in flight: they must have run again elsewhere"
    assert all(i.attempts == 1 for i in items)  # retried within the claim, never re-queued
    pids = runtime.executor.worker_pids()  # Ray restarted the actor in a new process
    assert victim not in pids and len(pids) == 2


def test_cancel_then_resume_under_ray_runs_each_image_once(runtime):
    ids = _upload(runtime, 12, seed=13)
    job = runtime.jobs.create(ids, "cup", PARAMS)
    _wait(runtime, job.id, lambda j: j.done >= 2)
    cancelled = runtime.jobs.cancel(job.id)
    assert cancelled.status == "cancelled" and cancelled.done + cancelled.skipped == 12
    deadline = time.monotonic() + 60
    while runtime.scheduler.in_flight:  # late results arrive and are dropped
        assert time.monotonic() < deadline
        time.sleep(0.02)
    settled = runtime.jobs.get(job.id)
    assert (settled.done, settled.skipped) == (cancelled.done, cancelled.skipped)
    done_before = {i.image_id for i in _items(runtime, job.id) if i.status == "done"}

    resumed = runtime.jobs.resume(job.id)
    assert resumed.status == "queued" and resumed.done == cancelled.done
    _wait(runtime, job.id, lambda j: j.status in FINISHED)
    items = _assert_each_image_once(runtime, job.id, ids)
    assert all(i.attempts == 1 for i in items if i.image_id in done_before)
    kinds = [e.kind for e in runtime.jobs.events(job.id)]
    assert kinds == ["created", "started", "cancelled", "resumed", "started", "completed"]


def test_stopping_mid_batch_interrupts_and_a_restart_resumes_each_image_once(runtime, tmp_path, models_dir):
    # A second server-like process on its own data dir, on the same cluster, after the
    # module's runtime has given its actors' CPUs back.
    runtime.executor.close()
    settings = _settings(_data_dir(tmp_path, models_dir), ray_workers=1)
    first = _start(settings)
    ids = _upload(first, 16, seed=14)
    job = first.jobs.create(ids, "cat, cup", PARAMS)
    _wait(first, job.id, lambda j: j.done >= 2)
    first.stop()  # SIGTERM's path: grace, then running jobs become interrupted

    second = _start(settings)  # start-up recovers and resumes the job
    try:
        _wait(second, job.id, lambda j: j.status in FINISHED)
        items = _assert_each_image_once(second, job.id, ids)
        final = second.jobs.get(job.id)
        kinds = [e.kind for e in second.jobs.events(job.id)]
    finally:
        second.stop()
    assert final.interruptions == 1
    assert kinds[:2] == ["created", "started"] and kinds[-1] == "completed"
    assert kinds.index("interrupted") < kinds.index("resumed")
    assert max(i.attempts for i in items) <= 2


def test_headless_batch_on_ray_writes_the_files_of_a_local_batch(runtime, tmp_path, models_dir):
    from seglens.services.jobs.headless import BatchRunner

    runtime.executor.close()  # its actors' CPUs go to the batch's actors

    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for name, data in photos(4, seed=15):
        (inputs / name).write_bytes(data)
    (inputs / "broken.jpg").write_text("not an image")
    files = sorted(inputs.iterdir())
    data_dir = _data_dir(tmp_path / "data", models_dir)
    outs = {}
    for executor in ("local", "ray"):
        with BatchRunner(
            _settings(data_dir, executor=executor, ray_workers=1), tmp_path / executor
        ) as runner:
            result = runner.run(files, "cat, cup", PARAMS)
        assert result.finished and result.job is not None and result.job.status == "completed"
        assert [r.file_name for r in result.summary.records] == [str(f) for f in files]
        assert [r.error_code for r in result.summary.records if r.error] == ["not_an_image"]
        outs[executor] = tmp_path / executor
    local, ray_out = outs["local"], outs["ray"]
    overlays = sorted(p.name for p in (local / "overlays").iterdir())
    assert overlays == sorted(p.name for p in (ray_out / "overlays").iterdir()) and len(overlays) == 4
    for name in overlays:
        assert (local / "overlays" / name).read_bytes() == (ray_out / "overlays" / name).read_bytes()
    assert (local / "report.csv").read_text().count("\n") == (ray_out / "report.csv").read_text().count("\n")
