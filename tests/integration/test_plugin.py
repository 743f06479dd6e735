"""A third-party plugin package (tests/data/plugin: an entry point in ``seglens.models``,
loaders with the documented ``(path, device)`` signature, a model that needs no weights, a
model type for local directories, numpy only) through `seglens segment` and the server."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fakes import COLOURS
from live_server import running_server

PLUGIN = Path(__file__).resolve().parents[1] / "data" / "plugin" / "seglens_toy_plugin"


def _site(root: Path, entry_point: str) -> Path:
    """A directory on sys.path holding the package and its installed-distribution metadata,
    as pip would leave them."""
    shutil.copytree(PLUGIN, root / "seglens_toy_plugin")
    info = root / "seglens_toy_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: seglens-toy-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[seglens.models]\ntoy = {entry_point}\n")
    return root


def _env(site: Path, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGLENS_")}
    paths = [str(site), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {
        **env,
        "PYTHONPATH": os.pathsep.join(paths),
        "HF_HUB_OFFLINE": "1",
        "SEGLENS_DATA_DIR": str(tmp_path / "data"),
        "SEGLENS_LLM_ENABLED": "false",
        **extra,
    }


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    """Left half red, right half blue: the toy proposer's grid cells are one colour each."""
    image = np.zeros((120, 160, 3), np.uint8)
    image[:, :80] = COLOURS["red"]
    image[:, 80:] = COLOURS["blue"]
    path = tmp_path_factory.mktemp("scene") / "shapes.png"
    Image.fromarray(image).save(path)
    return path


def _segment(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "seglens.cli", "segment", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_plugin_segments_with_the_documented_loader_signature_without_torch(tmp_path, scene):
    site = _site(tmp_path / "site", "seglens_toy_plugin:models")
    record = tmp_path / "imports.json"
    env = _env(site, tmp_path, SEGLENS_TOY_RECORD=str(record))
    listed = subprocess.run(
        [sys.executable, "-m", "seglens.cli", "models", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "toy-grid" in listed.stdout and "toy " in listed.stdout, listed.stdout + listed.stderr

    result = _segment(env, str(scene), "-q", "red", "--profile", "toy", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert "1/1 images processed, 1 matched" in result.stdout
    assert json.loads(record.read_text()) == {"torch": False, "transformers": False}
    assert "warning" not in result.stderr  # a plugin model is not labelled meaningless

    # A local directory of the plugin's model type works wherever a name does.
    directory = tmp_path / "my-colour-model"
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps({"model_type": "toy_colour", "tolerance": 1}))
    strict = _segment(
        env,
        str(scene),
        "-q",
        "red",
        "--profile",
        "toy",
        "--embedder",
        str(directory),
        "--out",
        str(tmp_path / "o2"),
    )
    assert strict.returncode == 0, strict.stderr
    assert "1/1 images processed, 0 matched" in strict.stdout  # its tolerance came from the directory
    assert "warning" not in strict.stderr  # built elsewhere, but not random weights


def test_a_plugin_spec_without_a_weights_source_fails_at_registration_with_exit_3(tmp_path, scene):
    site = _site(tmp_path / "site", "seglens_toy_plugin:broken_models")
    env = _env(site, tmp_path)
    result = _segment(
        env, str(scene), "-q", "red", "--proposer", "toy-broken", "--out", str(tmp_path / "out")
    )
    assert result.returncode == 3, result.stderr
    assert "toy-broken" in result.stderr and "say where the weights come from" in result.stderr
    assert "AssertionError" not in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_the_server_runs_a_plugin_profile(tmp_path, models_dir, scene):
    site = _site(tmp_path / "site", "seglens_toy_plugin:models")
    paths = os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])])
    with running_server(tmp_path / "data", models_dir, SEGLENS_PROFILE="toy", PYTHONPATH=paths) as server:
        health = server.client.get("/health").json()
        assert health["profile"] == "toy" and not health["meaningless"]
        assert health["models"]["proposer"].startswith("toy-grid")
        buffer = io.BytesIO(scene.read_bytes())
        image_id = server.upload([("shapes.png", buffer.getvalue())])[0]
        job = server.create_job([image_id], "red, blue")
        job = server.wait(job["id"], lambda j: j["status"] in ("completed", "failed"), timeout_s=120)
        assert job["status"] == "completed", job
        results = server.results(job["id"])
        assert results[0]["status"] == "done"
        assert {m["keyword"] for m in results[0]["matches"]} == {"red", "blue"}, results[0]
