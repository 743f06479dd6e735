"""`seglens batch` (local executor) in real processes: Ctrl-C and kill -9 mid-run, then the
same command again finishes with every image exactly once and writes the files `seglens
segment` writes; a directory holding another batch is refused; the default install needs
no Ray."""

from __future__ import annotations

import ast
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pycocotools.coco import COCO
from typer.testing import CliRunner

from live_server import photos
from seglens.cli import app

pytestmark = pytest.mark.slow

IMAGES = 16
OPTIONS = ["--query", "cat, cup", "--profile", "tiny", "--points-per-side", "4", "--threshold", "0.05"]
SRC = Path(__file__).resolve().parents[2] / "src" / "seglens"


def _env(data_dir: Path) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("SEGLENS_")},
        "HF_HUB_OFFLINE": "1",
        "SEGLENS_DATA_DIR": str(data_dir),
        "SEGLENS_DEVICE": "cpu",
        # the same backend as the in-process `segment` it is compared with (tests/conftest.py)
        "SEGLENS_BACKEND": os.environ["SEGLENS_BACKEND"],
    }


def _job(out: Path) -> tuple[str, int, int, int] | None:
    """(status, done, failed, interruptions) of the batch's job, read from its store."""
    path = out / ".seglens" / "seglens.db"
    if not path.exists():
        return None
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
            row = db.execute("select status, done, failed, interruptions from jobs").fetchone()
    except sqlite3.OperationalError:  # the schema is not there yet
        return None
    return tuple(row) if row else None  # type: ignore[return-value]


def _interruptible() -> None:
    """Ctrl-C raises KeyboardInterrupt in the child, as in a terminal. A shell without job
    control starts its background commands with SIGINT ignored, and children inherit that
    (a CI run started with `&` did), so the test does not rely on the caller's setting."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(command: list[str], data_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as handle:
        return subprocess.Popen(
            command,
            env=_env(data_dir),
            stdout=handle,
            stderr=subprocess.STDOUT,
            preexec_fn=_interruptible,
        )


def _stop_when(
    process: subprocess.Popen[bytes], out: Path, done_at_least: int, signum: int, log: Path
) -> int:
    """Send `signum` once the job has `done_at_least` images done; returns the exit code."""
    deadline = time.monotonic() + 120
    while True:
        job = _job(out)
        if job is not None and job[1] >= done_at_least:
            break
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.01)
    process.send_signal(signum)
    return process.wait(timeout=60)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("batch-inputs")
    for name, data in photos(IMAGES, seed=21):
        (folder / name).write_bytes(data)
    (folder / "broken.jpg").write_text("text renamed .jpg")
    return folder


@pytest.fixture(scope="module")
def batch(inputs, tiny_data_dir, tmp_path_factory):
    """A batch stopped with Ctrl-C, then killed with SIGKILL, then run to the end."""
    out = tmp_path_factory.mktemp("batch") / "out"
    log = out.parent / "batch.log"
    command = [sys.executable, "-m", "seglens.cli", "batch", str(inputs), *OPTIONS, "--out", str(out)]

    first = _start(command, tiny_data_dir, log)
    code = _stop_when(first, out, 3, signal.SIGINT, log)
    assert code == 130, log.read_text()
    after_ctrl_c = _job(out)

    second = _start(command, tiny_data_dir, log)
    code = _stop_when(second, out, after_ctrl_c[1] + 3, signal.SIGKILL, log)  # type: ignore[index]
    assert code == -signal.SIGKILL
    after_kill = _job(out)

    final = subprocess.run(command, env=_env(tiny_data_dir), capture_output=True, text=True, timeout=300)
    return {
        "out": out,
        "after_ctrl_c": after_ctrl_c,
        "after_kill": after_kill,
        "final": final,
        "log": log.read_text(),
    }


def test_batch_stopped_by_ctrl_c_and_kill_9_resumes_with_every_image_once(batch, inputs):
    out, final = batch["out"], batch["final"]
    assert batch["after_ctrl_c"][0] == "interrupted" and 3 <= batch["after_ctrl_c"][1] < IMAGES
    assert "run the same command again to continue" in batch["log"]
    assert batch["after_kill"][0] == "running" and batch["after_kill"][1] < IMAGES  # died mid-run
    assert final.returncode == 1, final.stderr  # the broken file
    assert "resuming:" in final.stderr
    assert f"{IMAGES}/{IMAGES + 1} images processed" in final.stdout
    assert [line for line in final.stderr.splitlines() if line.startswith("error:")] == [
        f"error: {inputs / 'broken.jpg'}: not an image (content is not JPEG, PNG, WebP, BMP, TIFF or GIF)"
    ]

    with sqlite3.connect(out / ".seglens" / "seglens.db") as db:
        job = db.execute("select status, total, done, failed, interruptions from jobs").fetchall()
        items = db.execute("select image_id, status, attempts from job_items order by position").fetchall()
    assert job == [("completed", IMAGES + 1, IMAGES, 1, 2)]
    assert len({i[0] for i in items}) == len(items) == IMAGES + 1
    attempts = sorted(i[2] for i in items if i[1] == "done")
    # Ctrl-C let the image in flight finish; only the one in flight at kill -9 ran twice.
    assert attempts[:-1] == [1] * (IMAGES - 1) and attempts[-1] <= 2

    report = json.loads((out / "report.json").read_text())
    expected = sorted(str(p) for p in inputs.iterdir())
    assert [e["file"] for e in report["images"]] == expected
    assert report["summary"]["images"] == IMAGES + 1 and report["summary"]["failed"] == 1
    coco = COCO(str(out / "annotations.coco.json"))
    assert len(coco.getImgIds()) == IMAGES
    assert len(list((out / "overlays").iterdir())) == IMAGES


def test_batch_writes_the_same_files_as_segment(batch, inputs, tiny_data_dir, tmp_path):
    out, segmented = batch["out"], tmp_path / "segment"
    result = CliRunner().invoke(
        app,
        ["segment", str(inputs), *OPTIONS, "--out", str(segmented), "--data-dir", str(tiny_data_dir)],
        catch_exceptions=False,
    )
    assert result.exit_code == 1, result.output
    names = sorted(p.name for p in (segmented / "overlays").iterdir())
    assert names == sorted(p.name for p in (out / "overlays").iterdir())
    for name in names:
        assert (out / "overlays" / name).read_bytes() == (segmented / "overlays" / name).read_bytes()

    ours, theirs = (json.loads((d / "annotations.coco.json").read_text()) for d in (out, segmented))
    for doc in (ours, theirs):
        doc["info"].pop("date_created")
    assert ours == theirs

    ours, theirs = (json.loads((d / "report.json").read_text()) for d in (out, segmented))
    for doc in (ours, theirs):
        doc["summary"].pop("elapsed_ms")
        for entry in doc["images"]:
            entry.pop("timings_ms")
            entry.pop("cache_hits")
            if entry.get("error"):  # the batch names the file as given, segment its base name
                entry["error"] = entry["error"].split(": ", 1)[1]
    assert ours == theirs

    def rows(path: Path) -> list[list[str]]:
        lines = [line.split(",") for line in path.read_text().splitlines()]
        return [line[:14] for line in lines]  # up to `area`: timings and messages differ

    assert rows(out / "report.csv") == rows(segmented / "report.csv")


def test_batch_refuses_another_query_in_the_same_out_and_restart_starts_over(batch, inputs, tiny_data_dir):
    out = batch["out"]
    runner = CliRunner()
    base = ["batch", str(inputs), "--profile", "tiny", "--points-per-side", "4", "--out", str(out)]
    base += ["--data-dir", str(tiny_data_dir)]
    refused = runner.invoke(app, [*base, "--query", "dog"], catch_exceptions=False)
    assert refused.exit_code == 2
    assert "holds a batch of another query" in refused.output and "--restart" in refused.output

    again = runner.invoke(app, [*base, "--query", "dog", "--restart"], catch_exceptions=False)
    assert again.exit_code == 1, again.output  # the broken file
    report = json.loads((out / "report.json").read_text())
    assert report["query"] == "dog" and report["summary"]["processed"] == IMAGES


def test_batch_needs_no_ray_for_the_local_executor_and_names_the_extra_for_ray(
    inputs, tiny_data_dir, tmp_path, monkeypatch
):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    runner = CliRunner()
    files = [str(p) for p in sorted(inputs.glob("*.jpg"))[:2]]
    common = [*files, *OPTIONS, "--data-dir", str(tiny_data_dir)]
    local = runner.invoke(app, ["batch", *common, "--out", str(tmp_path / "a")], catch_exceptions=False)
    assert local.exit_code == 0, local.output
    on_ray = runner.invoke(
        app, ["batch", *common, "--out", str(tmp_path / "b"), "--executor", "ray"], catch_exceptions=False
    )
    assert on_ray.exit_code == 3
    assert "pip install 'seglens[ray]'" in on_ray.output


def test_ray_is_imported_only_inside_the_ray_executor():
    allowed = SRC / "services" / "jobs" / "executors" / "ray_executor.py"
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        module_level = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if not any(n == "ray" or n.startswith("ray.") for n in names):
                continue
            assert path == allowed, f"{path.relative_to(SRC)} imports Ray"
            assert id(node) not in module_level, "the ray executor imports Ray at module level"
