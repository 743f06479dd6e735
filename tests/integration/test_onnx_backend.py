"""The ONNX Runtime backend against PyTorch on the tiny models (real transformers code,
random weights): the parity contract of issue 14 -- per-region mask IoU >= 0.99, region
count within 1%, predicted IoUs within 1e-3, CLIP embeddings cosine >= 0.999 -- plus the
export cache (exported once, found again) and the fall-back to PyTorch."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")

from seglens.core.masks import decode_rle
from seglens.core.query import TEMPLATES
from seglens.core.types import GenerationParams
from seglens.models import runtime
from seglens.models.loading import load_model

PARAMS = GenerationParams(
    points_per_side=8,
    pred_iou_thresh=0.0,
    stability_score_thresh=0.0,
    box_nms_thresh=1.0,
    min_region_area=0,
)


def _load(name: str, models_dir, backend: str):
    return load_model(name, models_dir, device="cpu", dtype="float32", backend=backend)


def _iou(rle_a, rle_b) -> float:
    ma, mb = decode_rle(rle_a), decode_rle(rle_b)
    union = np.logical_or(ma, mb).sum()
    return 1.0 if union == 0 else float(np.logical_and(ma, mb).sum() / union)


def _paired(want, got) -> list[tuple[int, int]]:
    """Pairs of region indices: same prompt point, then the closest predicted IoU (the
    order by predicted IoU may swap near-ties between backends)."""
    pairs = []
    for i in range(len(want)):
        same = np.flatnonzero(np.abs(got.points_xy - want.points_xy[i]).max(axis=1) < 1e-3)
        if len(same):
            pairs.append((i, int(same[np.argmin(np.abs(got.predicted_iou[same] - want.predicted_iou[i]))])))
    return pairs


@pytest.mark.parametrize(
    ("name", "encoder_on_runtime"), [("tiny-sam", False), ("tiny-sam2", False), ("tiny-sam2", True)]
)
def test_mask_generation_matches_torch(name, encoder_on_runtime, models_dir, photos, monkeypatch):
    import seglens.models.onnx_sam as onnx_sam

    # Both image encoders stay on PyTorch by default (peak memory, docs/benchmarks.md); the
    # decoder runs on ORT. SAM 2.1's Hiera encoder can still be switched onto ORT.
    family = "sam2" if name == "tiny-sam2" else "sam"
    assert onnx_sam.ENCODER_ON_RUNTIME[family] is False
    monkeypatch.setitem(onnx_sam.ENCODER_ON_RUNTIME, family, encoder_on_runtime)
    torch_model = _load(name, models_dir, "torch")
    onnx_model = _load(name, models_dir, "onnx")
    assert onnx_model.backend_name == "onnx" and onnx_model.runtime is not None
    assert (onnx_model.runtime.encoder is not None) == encoder_on_runtime
    image = np.ascontiguousarray(photos["coffee"][:200, :300])
    want = torch_model.propose(image, PARAMS).regions
    got = onnx_model.propose(image, PARAMS).regions
    assert len(want) > 0
    assert abs(len(got) - len(want)) <= max(1, len(want) // 100)
    pairs = _paired(want, got)
    assert len(pairs) >= len(want) * 0.99
    assert max(abs(want.predicted_iou[i] - got.predicted_iou[j]) for i, j in pairs) <= 1e-3
    assert min(_iou(want.rles[i], got.rles[j]) for i, j in pairs) >= 0.99


@pytest.mark.parametrize("name", ["tiny-sam", "tiny-sam2"])
def test_mask_generation_with_the_iou_filter_matches_torch(name, models_dir, photos):
    """With a predicted-IoU threshold the ONNX decoder graph upscales only the points with
    a candidate above it (the others' logits are zeros): the regions are still torch's."""
    from dataclasses import replace

    torch_model = _load(name, models_dir, "torch")
    onnx_model = _load(name, models_dir, "onnx")
    image = np.ascontiguousarray(photos["coffee"][:200, :300])
    every = torch_model.propose(image, PARAMS).regions
    # A quarter of the candidates pass (the threshold is above 0: 0 or below filters nothing).
    params = replace(PARAMS, pred_iou_thresh=float(np.quantile(every.predicted_iou, 0.75)))
    assert params.pred_iou_thresh > 0
    want = torch_model.propose(image, params).regions
    got = onnx_model.propose(image, params).regions
    assert 0 < len(want) < len(every)
    assert abs(len(got) - len(want)) <= max(1, len(want) // 100)
    pairs = _paired(want, got)
    assert len(pairs) >= len(want) * 0.99
    assert max(abs(want.predicted_iou[i] - got.predicted_iou[j]) for i, j in pairs) <= 1e-3
    assert min(_iou(want.rles[i], got.rles[j]) for i, j in pairs) >= 0.99
    # The graph did skip: points below the floor come back with zero logits.
    prepared = onnx_model.prepare(image)
    payload = onnx_model.encode_pixels(prepared.pixel_values)
    points = torch.from_numpy(every.points_xy[:16].copy())[None, :, None, :]
    labels = torch.ones(1, 16, 1, dtype=torch.int64)
    full, iou = onnx_model.runtime.decode(payload, points, labels)
    floored, _ = onnx_model.runtime.decode(payload, points, labels, params.pred_iou_thresh)
    above = (iou > params.pred_iou_thresh).any(dim=1)
    assert 0 < int(above.sum()) < 16
    assert not floored[~above].any() and full[~above].any()
    assert torch.allclose(floored[above], full[above], atol=1e-5 * float(full.abs().max()))


def test_prompt_matches_torch(models_dir, photos):
    torch_model = _load("tiny-sam", models_dir, "torch")
    onnx_model = _load("tiny-sam", models_dir, "onnx")
    image = np.ascontiguousarray(photos["chelsea"][:240, :320])
    for points, labels in (([[100, 80]], [1]), ([[100, 80], [200, 150]], [1, 0])):
        want = torch_model.prompt(torch_model.encode(image), np.asarray(points), np.asarray(labels))
        got = onnx_model.prompt(onnx_model.encode(image), np.asarray(points), np.asarray(labels))
        assert abs(want.score - got.score) <= 1e-3
        assert _iou(want.rle, got.rle) >= 0.99


def test_clip_embeddings_match_torch(models_dir):
    torch_model = _load("tiny-clip", models_dir, "torch")
    onnx_model = _load("tiny-clip", models_dir, "onnx")
    assert onnx_model.backend_name == "onnx"
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, size=(s, s, 3), dtype=np.uint8) for s in (24, 57, 96)]
    cosine = (torch_model.embed_images(crops) * onnx_model.embed_images(crops)).sum(axis=1)
    assert cosine.min() >= 0.999
    texts = [t.format("red cup") for t in TEMPLATES["en"][:5]] + ["a", "a much longer text about a dog"]
    onnx_model._prefix_cache = None  # the plain text path runs on ONNX Runtime
    cosine = (torch_model.embed_texts(texts) * onnx_model.embed_texts(texts)).sum(axis=1)
    assert cosine.min() >= 0.999


def test_new_keywords_take_the_shared_prefix_path_on_onnx(models_dir):
    """The shared-prefix text path (what a new keyword costs) runs on ONNX Runtime too:
    same embeddings as PyTorch's plain forward pass, and no PyTorch weights are left
    resident once the sessions serve (issue 14: peak memory not above torch's)."""
    torch_model = _load("tiny-clip", models_dir, "torch")
    onnx_model = _load("tiny-clip", models_dir, "onnx")
    templates = TEMPLATES["en"]
    prefixes = [t.split("{}")[0].rstrip() for t in templates if "{}" in t]
    onnx_model.share_prefixes(prefixes[:3])
    onnx_model.share_prefixes(prefixes)  # prefixes added later
    cache = onnx_model._prefix_cache
    assert cache is not None and cache.prefixes > 0
    texts = [t.format(w) for w in ("red cup", "dog") for t in templates] + ["no template"]
    torch_model._prefix_cache = None  # the reference: transformers' own forward pass
    want = torch_model.embed_texts(texts)
    got = onnx_model.embed_texts(texts)
    assert cache.checked and cache.prefixes > 0  # its self-check passed
    assert (want * got).sum(axis=1).min() >= 0.999
    chosen, _ = cache.split(texts)
    assert len(chosen) >= len(texts) - 1
    assert got.shape == want.shape
    parameters = list(onnx_model.model.parameters())
    assert parameters and all(p.numel() == 0 for p in parameters)


def test_export_is_cached_and_keyed(models_dir, monkeypatch):
    _load("tiny-clip", models_dir, "onnx")  # exported by now (or by an earlier test)
    calls = []
    monkeypatch.setattr(runtime.ExportCache, "get", _spy(runtime.ExportCache.get, calls))
    model = _load("tiny-clip", models_dir, "onnx")
    assert model.backend_name == "onnx"
    assert calls and all(not exported for exported in calls)  # found cached, none exported
    # Weights in a data file beside each graph (memory-mapped by ONNX Runtime, one copy);
    # CLIP's text tower is the one suffix graph, which also runs whole texts.
    directory = runtime.ExportCache(models_dir, model.model_id).directory
    assert {p.name for p in directory.glob("*.onnx")} == {"image_tower.onnx", "text_suffix.onnx"}
    for graph in directory.glob("*.onnx"):
        assert graph.with_suffix(".data").stat().st_size > graph.stat().st_size
    a = runtime.ExportCache(models_dir, "tiny-clip@a").directory
    b = runtime.ExportCache(models_dir, "tiny-clip@b").directory
    assert a != b and a.parent == b.parent
    monkeypatch.setattr(runtime, "onnxruntime_version", lambda: "0.0.0")
    assert runtime.ExportCache(models_dir, "tiny-clip@a").directory != a


def _spy(original, calls):
    def get(self, part, export):
        before = list(self.exported)
        path = original(self, part, export)
        calls.append(self.exported != before)
        return path

    return get


def test_failed_export_falls_back_to_torch(tmp_path, models_dir, caplog, photos):
    import shutil

    source = _load("tiny-sam", models_dir, "torch")
    local = tmp_path / "models"
    local.mkdir()
    shutil.copytree(models_dir / "tiny-sam", local / "tiny-sam")

    def broken(*args, **kwargs):
        raise RuntimeError("exporter exploded")

    with caplog.at_level(logging.WARNING, logger="seglens.models.runtime"):
        import seglens.models.onnx_sam as onnx_sam

        original = onnx_sam.export_module
        onnx_sam.export_module = broken
        try:
            model = _load("tiny-sam", local, "onnx")
        finally:
            onnx_sam.export_module = original
    assert model.backend_name == "torch" and model.runtime is None
    lines = [r for r in caplog.records if "ONNX export failed" in r.getMessage()]
    assert len(lines) == 1
    assert not list((local / ".onnx").rglob("*.onnx"))  # no half-written export left behind
    image = np.ascontiguousarray(photos["coffee"][:128, :128])
    assert len(model.propose(image, PARAMS).regions) == len(source.propose(image, PARAMS).regions)


def test_auto_backend_choice(monkeypatch):
    monkeypatch.setattr(runtime, "onnxruntime_version", lambda: "1.0")
    assert runtime.resolve_backend("auto", "cpu") == "onnx"
    assert runtime.resolve_backend(None, "cuda") == "torch"
    assert runtime.resolve_backend("auto", "mps") == "torch"
    assert runtime.resolve_backend("torch", "cpu") == "torch"
    with pytest.raises(ValueError, match="CPU only"):
        runtime.resolve_backend("onnx", "cuda")
    with pytest.raises(ValueError, match="unknown backend"):
        runtime.resolve_backend("tensorrt", "cpu")
    monkeypatch.setattr(runtime, "onnxruntime_version", lambda: None)
    assert runtime.resolve_backend("auto", "cpu") == "torch"
    with pytest.raises(ValueError, match="needs onnxruntime"):
        runtime.resolve_backend("onnx", "cpu")
