"""Real hub downloads against a loopback hub (tests/hub_server.py) serving random-weight
checkpoints with the published config fields (tests/data/hub_models.json) under the
catalog's real repo ids and pinned revisions: `seglens models pull`, first-use downloads
from `segment` and from `make run`, progress, offline reuse, and each way a download fails."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from hub_models import built_checkpoints, catalog_entries
from hub_server import HubRepo, LoopbackHub, SilentHub
from live_server import free_port, photos
from seglens.models.registry import get_model

pytestmark = pytest.mark.slow

FAMILIES = [
    "sam-vit-base",
    "sam-hq-vit-huge",
    "sam2.1-hiera-tiny",
    "clip-vit-b32",
    "siglip2-base",
    "chinese-clip-base",
]
REPO_ROOT = Path(__file__).resolve().parents[2]
CLIP = get_model("clip-vit-b32")


@pytest.fixture(scope="session")
def hub_checkpoints() -> dict[str, Path]:
    return built_checkpoints()


@pytest.fixture
def hub(hub_checkpoints):
    server = LoopbackHub()
    for name, path in hub_checkpoints.items():
        spec = get_model(name)
        server.add(HubRepo.from_dir(spec.repo_id, spec.revision, path))
    server.start()
    yield server
    server.stop()


def hub_env(endpoint: str, home: Path, *, offline: bool = False, **extra: str) -> dict[str, str]:
    """The environment of a user on a fresh machine whose hub is `endpoint`."""
    dropped = ("SEGLENS_", "HF_", "TRANSFORMERS_OFFLINE")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    return {
        **env,
        "HF_ENDPOINT": endpoint,
        "HF_HOME": str(home / "hf"),
        "HF_HUB_OFFLINE": "1" if offline else "0",
        "HF_HUB_ETAG_TIMEOUT": "3",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "SEGLENS_DATA_DIR": str(home / "data"),
        "SEGLENS_DEVICE": "cpu",
        "SEGLENS_LLM_ENABLED": "false",
        **extra,
    }


def seglens(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "seglens.cli", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def _published_fields_kept(published: dict, config: dict, where: str = "") -> list[str]:
    missing = []
    for key, value in published.items():
        if key not in config:
            missing.append(f"{where}{key}")
        elif isinstance(value, dict):
            missing += _published_fields_kept(value, config[key], f"{where}{key}.")
    return missing


def test_test_checkpoints_carry_the_published_config_fields(hub_checkpoints):
    for name, entry in catalog_entries().items():
        config = json.loads((hub_checkpoints[name] / "config.json").read_text())
        assert config["model_type"] == entry["published"]["model_type"]
        assert _published_fields_kept(entry["published"], config) == [], name
        assert get_model(name).repo_id == entry["repo_id"]
    assert sorted(catalog_entries()) == sorted(FAMILIES)


def test_models_pull_fetches_every_family_with_progress_then_they_load_offline(hub, tmp_path, monkeypatch):
    env = hub_env(hub.url, tmp_path)
    pulled = seglens("models", "pull", *FAMILIES, env=env)
    assert pulled.returncode == 0, pulled.stderr
    for name in FAMILIES:
        spec = get_model(name)
        assert f"downloading model {name} ({spec.repo_id}@{spec.revision[:12]}" in pulled.stderr
        assert f"{name}: " in pulled.stdout and spec.revision in pulled.stdout
    assert "100%" in pulled.stderr  # the byte progress bar ran to the end
    served = {Path(r.path).name for r in hub.downloads()}
    assert "model.safetensors" in served and "README.md" not in served  # allow_patterns only

    asked = len(hub.requests)
    again = seglens("models", "pull", "cpu-fast", env=env)  # a profile name pulls its models
    assert again.returncode == 0, again.stderr
    assert "downloading" not in again.stderr and "sam2.1-hiera-tiny: " in again.stdout
    assert len(hub.requests) == asked  # complete in the cache: the hub is not asked at all

    # Offline, in this process: every family loads through its real loader from the cache.
    import huggingface_hub.constants as constants

    from seglens.models.loading import load_model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    image = photos(1, size_hw=(96, 128))[0][1]
    pixels = __import__("numpy").asarray(Image.open(__import__("io").BytesIO(image)).convert("RGB"))
    for name in FAMILIES:
        spec = get_model(name)
        model = load_model(name, tmp_path / "models", device="cpu", allow_download=False)
        assert model.model_id == f"{name}@{spec.revision[:12]}" and not model.meaningless
        if spec.kind == "embedder":
            assert model.embed_texts(["a cat", "一只猫"]).shape[0] == 2
        else:
            assert model.encode(pixels).image_size_hw == (96, 128)

    doctor = seglens("doctor", "--profile", "cpu-fast", env={**env, "HF_HUB_OFFLINE": "1"})
    assert "present" in doctor.stdout and "sam2.1-hiera-tiny" in doctor.stdout, doctor.stdout
    assert "FAIL" not in doctor.stdout, doctor.stdout


def test_segment_downloads_on_first_use_then_runs_offline(hub, tmp_path):
    image = tmp_path / "in.jpg"
    image.write_bytes(photos(1, size_hw=(96, 128))[0][1])
    env = hub_env(hub.url, tmp_path)
    first = seglens(
        "segment",
        str(image),
        "-q",
        "猫",
        "--profile",
        "zh",
        "--points-per-side",
        "4",
        "--out",
        str(tmp_path / "a"),
        env=env,
    )
    assert first.returncode == 0, first.stderr
    assert (
        "downloading model chinese-clip-base" in first.stderr
        and "downloading model sam2.1-hiera-tiny" in first.stderr
    )
    endpoint = hub.url
    hub.stop()
    offline = hub_env(endpoint, tmp_path, offline=True)
    second = seglens(
        "segment",
        str(image),
        "-q",
        "猫",
        "--profile",
        "zh",
        "--points-per-side",
        "4",
        "--out",
        str(tmp_path / "b"),
        env=offline,
    )
    assert second.returncode == 0, second.stderr
    assert "downloading" not in second.stderr
    assert (tmp_path / "b" / "report.json").exists() or any((tmp_path / "b").iterdir())


def _health(port: int) -> dict:
    return httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=10).json()  # type: ignore[no-any-return]


def _make_run(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`make run` as a user types it (the venv target is taken as built: this venv)."""
    with log.open("ab") as out:
        return subprocess.Popen(
            ["make", "--no-print-directory", "-o", "venv", f"BIN={Path(sys.executable).parent}", "run"],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _wait_ready(process: subprocess.Popen[bytes], port: int, log: Path, seen: list[dict]) -> dict:
    deadline = time.monotonic() + 300
    while True:
        if process.poll() is not None:
            raise AssertionError(f"make run exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            health = _health(port)
        except (httpx.HTTPError, ValueError):
            health = {}
        seen += health.get("loading") or []
        if health.get("status") in ("ready", "error"):
            return health
        if time.monotonic() > deadline:
            raise AssertionError(f"never ready:\n{log.read_text()[-3000:]}")
        time.sleep(0.05)


def test_make_run_with_a_real_profile_downloads_with_progress_serves_results_then_starts_offline(
    hub, tmp_path
):
    hub.chunk_delay_s = 0.02  # slow enough to watch the bytes arrive
    port = free_port()
    env = hub_env(hub.url, tmp_path, SEGLENS_PROFILE="cpu-fast", SEGLENS_PORT=str(port), SEGLENS_WORKERS="1")
    env.pop("HF_HUB_OFFLINE")  # make run must not force it: a fresh user's shell has none
    log = tmp_path / "make-run.log"
    process = _make_run(env, log)
    try:
        seen: list[dict] = []
        health = _wait_ready(process, port, log, seen)
        assert health["status"] == "ready", health
        assert health["profile"] == "cpu-fast" and not health["meaningless"]
        downloading = [m for m in seen if m["phase"] == "downloading"]
        assert downloading and any(0 < m["bytes_done"] <= m["bytes_total"] for m in downloading), seen
        assert {m["name"] for m in seen} >= {"sam2.1-hiera-tiny"}
        text = log.read_text()
        assert "downloading model sam2.1-hiera-tiny" in text and "downloading model clip-vit-b32" in text
        assert "100%" in text

        api = httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1", timeout=60)
        name, data = photos(1, size_hw=(96, 128))[0]
        uploaded = api.post("/images", files=[("files", (name, data, "image/jpeg"))]).json()
        image_id = uploaded["files"][0]["image"]["id"]
        job = api.post(
            "/jobs", json={"image_ids": [image_id], "query": "cat, cup", "params": {"points_per_side": 4}}
        ).json()
        deadline = time.monotonic() + 180
        while job["status"] not in ("completed", "failed", "cancelled") and time.monotonic() < deadline:
            time.sleep(0.1)
            job = api.get(f"/jobs/{job['id']}").json()
        assert job["status"] == "completed", job
        results = api.get(f"/jobs/{job['id']}/results").json()["items"]
        assert len(results) == 1 and results[0]["status"] == "done", results
    finally:
        _stop(process)

    hub.stop()  # the next start must not need the hub at all
    requests_before = len(hub.requests)
    env["HF_HUB_OFFLINE"] = "1"
    process = _make_run(env, log)
    try:
        assert _wait_ready(process, port, log, [])["status"] == "ready"
    finally:
        _stop(process)
    assert len(hub.requests) == requests_before
    assert log.read_text().count("downloading model sam2.1-hiera-tiny") == 1


def test_a_wrong_revision_fails_with_the_fix(hub, tmp_path):
    hub.add(HubRepo(CLIP.repo_id, "0" * 40, hub.repos[CLIP.repo_id].files))  # the pinned commit is gone
    result = seglens("models", "pull", "clip-vit-b32", env=hub_env(hub.url, tmp_path))
    assert result.returncode == 3
    assert f"has no revision {CLIP.revision}" in result.stderr and "upgrade SegLens" in result.stderr


def test_an_interrupted_download_resumes_where_it_stopped(hub, tmp_path):
    # huggingface_hub writes 10 MB chunks: a shard of 24 MB dropped half way has one on disk.
    shard = os.urandom(24 * 2**20)
    hub.repos[CLIP.repo_id].files["model-00002.safetensors"] = shard
    hub.interrupt_once.add((CLIP.repo_id, "model-00002.safetensors"))
    result = seglens("models", "pull", "clip-vit-b32", env=hub_env(hub.url, tmp_path))
    assert result.returncode == 0, result.stderr
    gets = [r for r in hub.downloads(CLIP.repo_id) if r.path.endswith("model-00002.safetensors")]
    assert len(gets) == 2 and gets[0].range is None, gets
    assert gets[1].range == f"bytes={10 * 2**20}-", gets  # resumed, not started over
    snapshot = Path(result.stdout.split(": ", 1)[1].strip())
    assert (snapshot / "model-00002.safetensors").read_bytes() == shard


def test_a_file_the_hub_lists_but_does_not_serve_fails_clearly_and_a_retry_completes(hub, tmp_path):
    hub.missing.add((CLIP.repo_id, "preprocessor_config.json"))
    env = hub_env(hub.url, tmp_path)
    result = seglens("models", "pull", "clip-vit-b32", env=env)
    assert result.returncode == 3
    assert "does not serve" in result.stderr and "preprocessor_config.json" in result.stderr
    hub.missing.clear()
    fetched_before = {r.path for r in hub.downloads()}
    retry = seglens("models", "pull", "clip-vit-b32", env=env)
    assert retry.returncode == 0, retry.stderr
    refetched = [r.path for r in hub.downloads()[len(fetched_before) :] if r.path in fetched_before]
    assert not any(p.endswith("model.safetensors") for p in refetched)  # kept from the first try


@pytest.mark.parametrize("kind", ["refused", "silent"])
def test_a_hub_that_does_not_answer_fails_fast_with_the_fix(tmp_path, kind):
    silent = SilentHub()
    endpoint = silent.url if kind == "silent" else f"http://127.0.0.1:{free_port()}"
    env = hub_env(endpoint, tmp_path, HF_HUB_ETAG_TIMEOUT="2")
    try:
        started = time.monotonic()
        pulled = seglens("models", "pull", "clip-vit-b32", env=env, timeout=60)
        pull_s = time.monotonic() - started
        started = time.monotonic()
        served = seglens("serve", "--profile", "cpu-fast", "--port", str(free_port()), env=env, timeout=120)
        serve_s = time.monotonic() - started
    finally:
        silent.close()
    for result in (pulled, served):
        assert result.returncode == 3, result.stderr
        assert "did not answer within 2 s" in result.stderr and "SEGLENS_PROFILE=tiny" in result.stderr
    assert pull_s < 15, pull_s  # the probe waits 2 s, not huggingface_hub's retries
    assert serve_s < 40, serve_s  # refused before the server starts (no model load)


def test_serve_offline_without_the_models_refuses_with_the_command_that_fixes_it(tmp_path):
    result = seglens(
        "serve", "--profile", "cpu-fast", env=hub_env("http://127.0.0.1:9", tmp_path, offline=True)
    )
    assert result.returncode == 3
    assert (
        "HF_HUB_OFFLINE=1 is set" in result.stderr
        and "seglens models pull sam2.1-hiera-tiny" in result.stderr
    )
