"""Ray executor benchmarks: the same headless batch on the local executor and on Ray.

- throughput: 24 distinct 384x512 photos, tiny profile, cold cache, through
  `seglens.services.jobs.headless.BatchRunner` (ingest, segment, match, render the overlay, commit,
  write the output files) on: the local executor (one worker thread, torch on every core),
  Ray with one actor per core (1 CPU each), and Ray with one actor holding every core (the
  like-for-like overhead of going through Ray); start-up (Ray, actors loading the models)
  is timed apart;
- the job store's commit rate: claim + commit of an image with no compute (the driver-side
  ceiling of any executor);
- Ray's object store: an image's bytes to an actor and back, per call and per MB.

Numbers are for this machine; docs/scaling.md extrapolates them. ``run(results_dir)``
returns the figures (and writes ``results_dir/ray-latest.json``); ``python -m
benchmarks.bench_ray`` prints them.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

__all__ = ["run"]

IMAGES = 24
SIZE_HW = (384, 512)
QUERY = "cat, cup, person"


def _inputs(root: Path) -> list[Path]:
    from benchmarks.bench_server import _photos

    folder = root / "inputs"
    folder.mkdir()
    paths = []
    for name, data in _photos(IMAGES, seed=7):
        path = folder / name
        path.write_bytes(data)
        paths.append(path)
    return paths


def _data_dir(root: Path, models: Path, name: str) -> Path:
    data_dir = root / name
    data_dir.mkdir()
    (data_dir / "models").symlink_to(models, target_is_directory=True)
    return data_dir


def _batch(root: Path, models: Path, files: list[Path], name: str, **settings: Any) -> dict[str, Any]:
    """One cold batch; start-up and the batch itself timed apart."""
    from seglens.services.jobs.headless import BatchRunner
    from seglens.services.jobs.types import JobParams
    from seglens.settings import Settings

    config = Settings(
        data_dir=_data_dir(root, models, f"data-{name}"), profile="tiny", device="cpu", **settings
    )
    started = time.perf_counter()
    runner = BatchRunner(config, root / f"out-{name}")  # takes the lock, starts the executor
    runner.executor.wait_ready(None)
    startup_s = time.perf_counter() - started
    try:
        started = time.perf_counter()
        result = runner.run(files, QUERY, JobParams())
        batch_s = time.perf_counter() - started
        assert result.job is not None and result.job.done == IMAGES, result.job
        per_image = [r.timings_ms for r in result.summary.records]
    finally:
        runner.stop()
    stages = {
        key: round(statistics.median(t[key] for t in per_image if key in t), 1)
        for key in (
            "decode",
            "image_encoder",
            "mask_decoder",
            "postprocess",
            "embed_regions",
            "render",
            "total",
        )
        if any(key in t for t in per_image)
    }
    return {
        "executor": settings.get("executor", "local"),
        "startup_s": round(startup_s, 2),
        "batch_s": round(batch_s, 2),
        "images_per_minute": round(IMAGES / batch_s * 60, 1),
        "stage_p50_ms": stages,
    }


def _commit_rate(root: Path, count: int = 2000) -> dict[str, Any]:
    """Claims and commits per second of the job store with no compute in between."""
    from seglens.storage.db import Database
    from seglens.storage.images_repo import ImageRepository
    from seglens.storage.jobs_repo import JobRepository, NewJob
    from seglens.storage.records import StoredImage
    from seglens.storage.tables import utcnow

    db = Database(root / "commits" / "seglens.db")
    db.migrate()
    ids = [uuid.uuid4().hex + uuid.uuid4().hex for _ in range(count)]
    ImageRepository(db).add_many(
        [StoredImage(i, "", f"{i}.jpg", "JPEG", 512, 384, 1000, utcnow()) for i in ids]
    )
    jobs = JobRepository(db)
    job = jobs.create(NewJob(uuid.uuid4().hex, "cat", ("cat",), {}, "tiny", True, tuple(ids), 0))
    result = {"num_regions": 50, "matches": [], "image": {"width": 512, "height": 384}}
    started = time.perf_counter()
    for _ in range(count):
        claimed = jobs.claim_next(job.id)
        assert claimed is not None
        jobs.finish_item(job.id, claimed.item.image_id, ok=True, result=result, timings_ms={"total": 1.0})
    elapsed = time.perf_counter() - started
    db.dispose()
    return {
        "images": count,
        "per_second": round(count / elapsed, 1),
        "ms_per_image": round(elapsed / count * 1000, 3),
    }


def _echo(data: bytes) -> int:
    return len(data)


def _object_store(sizes_kb: tuple[int, ...] = (100, 1000, 10000), calls: int = 30) -> dict[str, Any]:
    """An image's bytes put into the object store and read by a task, per call."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, _temp_dir=temp)
    try:
        echo = ray.remote(num_cpus=1)(_echo)
        ray.get(echo.remote(b"warm"))
        out: dict[str, Any] = {}
        for kb in sizes_kb:
            payload = os.urandom(kb * 1024)
            started = time.perf_counter()
            for _ in range(calls):
                assert ray.get(echo.remote(ray.put(payload))) == len(payload)
            per_call = (time.perf_counter() - started) / calls
            out[f"{kb}_kb"] = {
                "ms_per_call": round(per_call * 1000, 2),
                "mb_per_s": round(kb / 1024 / per_call, 1),
            }
        return out
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)


def run(results_dir: Path) -> dict[str, Any]:
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="seglens-bench-ray-") as tmp:
        root = Path(tmp)
        models = root / "models"
        models.mkdir()
        files = _inputs(root)
        print(f"  local executor ({IMAGES} images) ...", flush=True)
        local = _batch(root, models, files, "local", workers=1)
        print("  ray, one actor per core ...", flush=True)
        ray_per_core = _batch(root, models, files, "ray-per-core", executor="ray", ray_cpus_per_worker=1)
        print("  ray, one actor with every core ...", flush=True)
        ray_one = _batch(
            root, models, files, "ray-one", executor="ray", ray_workers=1, ray_cpus_per_worker=float(cores)
        )
        print("  job store commit rate, object store ...", flush=True)
        commits = _commit_rate(root)
        transfer = _object_store()
    report: dict[str, Any] = {
        "setup": f"headless batch, tiny profile (random weights), CPU ({cores} cores), "
        f"{IMAGES} distinct {SIZE_HW[1]}x{SIZE_HW[0]} JPEGs, cold cache, overlays rendered",
        "local": local,
        "ray_actor_per_core": ray_per_core,
        "ray_one_actor_all_cores": ray_one,
        # > 1 means Ray is slower on this batch than the in-process executor.
        "overhead_ratio_same_cores_one_actor": round(ray_one["batch_s"] / local["batch_s"], 3),
        "overhead_ratio_actor_per_core": round(ray_per_core["batch_s"] / local["batch_s"], 3),
        "job_store_commits": commits,
        "object_store_round_trip": transfer,
    }
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "ray-latest.json").write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    print(json.dumps(run(Path(__file__).resolve().parent / "results"), indent=2))
