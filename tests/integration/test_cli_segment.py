"""`seglens segment` end to end with the tiny profile (real transformers code paths)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from typer.testing import CliRunner

from seglens.cli import app


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, photos):
    folder = tmp_path_factory.mktemp("inputs")
    Image.fromarray(photos["chelsea"]).save(folder / "chelsea.jpg", quality=92)
    Image.fromarray(photos["coffee"]).save(folder / "coffee.png")
    nested = folder / "more"
    nested.mkdir()
    Image.fromarray(photos["astronaut"]).resize((256, 256)).save(nested / "astronaut.webp")
    (folder / "notes.txt").write_text("not an image, and not picked up from a directory")
    broken = folder / "broken.jpg"
    broken.write_text("text renamed .jpg")
    truncated = folder / "truncated.jpg"
    truncated.write_bytes((folder / "chelsea.jpg").read_bytes()[:2000])
    return folder


def _run(args, env_data_dir):
    runner = CliRunner()
    return runner.invoke(app, [*args, "--data-dir", str(env_data_dir)], catch_exceptions=False)


def test_segment_directory_writes_overlays_coco_report_and_csv(inputs, tiny_data_dir, tmp_path):
    out = tmp_path / "out"
    result = _run(
        [
            "segment",
            str(inputs / "chelsea.jpg"),
            str(inputs / "coffee.png"),
            str(inputs / "more"),
            "--query",
            "cat, cup, -grass",
            "--profile",
            "tiny",
            "--threshold",
            "0.05",
            "--out",
            str(out),
            "--cutouts",
        ],
        tiny_data_dir,
    )
    assert result.exit_code == 0, result.output
    assert "3/3 images processed" in result.output
    for stem in ("chelsea", "coffee", "astronaut"):
        overlay = Image.open(out / "overlays" / f"{stem}.png")
        assert overlay.mode == "RGB"

    coco = json.loads((out / "annotations.coco.json").read_text())
    assert [c["name"] for c in coco["categories"]] == ["cat", "cup"]
    assert coco["info"]["meaningless"] is True and "TINY" in coco["info"]["warning"]
    assert coco["info"]["models"]["proposer"].startswith("tiny-sam@")
    assert coco["info"]["query_params"]["threshold"] == 0.05
    sizes = {img["id"]: (img["height"], img["width"]) for img in coco["images"]}
    assert len(coco["annotations"]) > 0
    for ann in coco["annotations"]:
        rle = dict(ann["segmentation"], counts=ann["segmentation"]["counts"].encode())
        decoded = mask_utils.decode(rle)
        assert decoded.shape == sizes[ann["image_id"]]
        assert int(decoded.sum()) == ann["area"]
        assert 0.0 <= ann["score"] <= 1.0

    # pycocotools' own loader accepts the file.
    from pycocotools.coco import COCO

    api = COCO(str(out / "annotations.coco.json"))
    assert len(api.getImgIds()) == 3

    report = json.loads((out / "report.json").read_text())
    assert report["summary"] == {**report["summary"], "images": 3, "processed": 3, "failed": 0}
    first = report["images"][0]
    assert {"width", "height", "regions", "matches", "timings_ms", "cache_hits"} <= set(first)
    assert {"image_encoder", "mask_decoder", "embed_regions", "match", "render", "total"} <= set(
        first["timings_ms"]
    )
    assert (
        first["cache_hits"] == {"regions": False, "region_embeddings": False}
        or first["cache_hits"]["regions"]
    )

    rows = list(csv.DictReader((out / "report.csv").open()))
    assert {r["file"] for r in rows} == {
        str(inputs / "chelsea.jpg"),
        str(inputs / "coffee.png"),
        str(inputs / "more" / "astronaut.webp"),
    }
    assert any((out / "cutouts").rglob("*.png"))


def test_segment_again_hits_the_cache(inputs, tiny_data_dir, tmp_path):
    args = ["segment", str(inputs / "chelsea.jpg"), "--query", "cat", "--profile", "tiny", "--out"]
    _run([*args, str(tmp_path / "a")], tiny_data_dir)
    _run([*args, str(tmp_path / "b"), "--threshold", "0.2", "--alpha", "0.9"], tiny_data_dir)
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert report["images"][0]["cache_hits"] == {"regions": True, "region_embeddings": True}
    assert "image_encoder" not in report["images"][0]["timings_ms"]


def test_segment_bad_files_get_one_line_each_and_exit_1_while_others_finish(inputs, tiny_data_dir, tmp_path):
    out = tmp_path / "out"
    result = _run(
        [
            "segment",
            str(inputs / "broken.jpg"),
            str(inputs / "chelsea.jpg"),
            str(inputs / "truncated.jpg"),
            str(inputs / "missing.png"),
            "--query",
            "cat",
            "--profile",
            "tiny",
            "--out",
            str(out),
        ],
        tiny_data_dir,
    )
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 3
    assert any("broken.jpg: not an image" in e for e in errors)
    assert any("truncated.jpg" in e and "truncated" in e for e in errors)
    assert any("missing.png: no such file" in e for e in errors)
    assert (out / "overlays" / "chelsea.png").exists()
    report = json.loads((out / "report.json").read_text())
    assert report["summary"]["processed"] == 1 and report["summary"]["failed"] == 3


def test_segment_oversized_image_is_rejected_with_one_line(tmp_path, tiny_data_dir, monkeypatch):
    big = tmp_path / "big.png"
    Image.fromarray(np.zeros((300, 300, 3), np.uint8)).save(big)
    monkeypatch.setenv("SEGLENS_MAX_PIXELS", "1000")
    result = _run(
        ["segment", str(big), "--query", "cat", "--profile", "tiny", "--out", str(tmp_path / "o")],
        tiny_data_dir,
    )
    assert result.exit_code == 1
    assert "more than the limit" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--query", " , "], "no keywords"),
        (["--query", "cat", "--mode", "some"], "mode must be"),
        (["--query", "cat", "--profile", "nope"], "unknown profile"),
    ],
)
def test_segment_usage_errors_exit_2(inputs, tiny_data_dir, tmp_path, args, message):
    result = _run(["segment", str(inputs / "chelsea.jpg"), *args, "--out", str(tmp_path)], tiny_data_dir)
    assert result.exit_code == 2
    assert message in result.output


def test_missing_real_model_offline_names_model_place_and_fix(inputs, tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "seglens.cli",
            "segment",
            str(inputs / "chelsea.jpg"),
            "-q",
            "cat",
            "--profile",
            "cpu-fast",
            "--data-dir",
            str(tmp_path),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")},
        timeout=120,
    )
    assert result.returncode == 3
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1
    assert "sam2.1-hiera-tiny" in lines[0] and str(tmp_path / "hf") in lines[0]
    assert "seglens models pull sam2.1-hiera-tiny" in lines[0]


def test_models_list_shows_models_profiles_and_pinned_revisions():
    result = CliRunner().invoke(app, ["models", "list"])
    assert result.exit_code == 0
    for name in (
        "sam-vit-base",
        "sam-vit-large",
        "sam-vit-huge",
        "sam2.1-hiera-tiny",
        "sam2.1-hiera-small",
        "sam2.1-hiera-base-plus",
        "sam2.1-hiera-large",
        "clip-vit-b32",
        "clip-vit-l14",
        "siglip2-base",
        "chinese-clip-base",
        "cpu-fast",
        "gpu-quality",
        "zh",
        "tiny",
    ):
        assert name in result.output
    assert "facebook/sam-vit-base@70c1a07f89" in result.output


def test_models_pull_offline_fails_clearly(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = CliRunner().invoke(app, ["models", "pull", "clip-vit-b32"])
    assert result.exit_code == 3
    assert "HF_HUB_OFFLINE" in result.output and "clip-vit-b32" in result.output


@pytest.mark.parametrize("command", [["segment", "x.jpg", "--query", "cat"], ["serve", "--no-ui"]])
def test_a_bad_setting_in_the_environment_is_one_line_and_exit_2(command, monkeypatch):
    monkeypatch.setenv("SEGLENS_MAX_PIXELS", "many")
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 2
    (line,) = result.output.strip().splitlines()
    assert line.startswith("error: invalid setting") and "max_pixels" in line
