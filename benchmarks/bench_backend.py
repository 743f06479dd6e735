"""PyTorch eager vs ONNX Runtime (issue 14), side by side in one run, real-size random weights.

For each proposer (SAM 2.1 Hiera-T: the `cpu-fast` profile; SAM ViT-B), each with CLIP
ViT-B/32: one process exports (first use; cached in the models dir) and calibrates the
predicted-IoU threshold, then the two backends run in the order torch, onnx, onnx, torch,
each in a fresh process (its own peak RSS): cold segment + query of the 1024-px photo,
then new-keyword re-queries. Parity is computed between the best run of each.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

PROPOSERS = {"cpu-fast": "random-sam2.1-hiera-tiny", "sam-vit-b": "random-sam-vit-base"}
EMBEDDER = "random-clip-vit-b32"


def task_backend(args: dict[str, Any], data_dir: Path) -> dict[str, Any]:
    """One backend: load, cold segment + query, new keywords, parity material."""
    from benchmarks.worker import _params, _peak_rss_mb, photo_1024
    from seglens.core.crops import region_crops
    from seglens.models.loading import load_model
    from seglens.services.segment.pipeline import Pipeline
    from seglens.storage.cache import ArtifactCache

    backend = args["backend"]
    tick = time.perf_counter()
    proposer = load_model(
        args["proposer"], data_dir / "models", device="cpu", dtype="float32", backend=backend
    )
    embedder = load_model(
        args.get("embedder", EMBEDDER), data_dir / "models", device="cpu", dtype="float32", backend=backend
    )
    load_s = time.perf_counter() - tick
    pipe = Pipeline(
        proposer, embedder, cache=ArtifactCache(Path(args["cache_dir"])), generation=_params(args)
    )
    image = photo_1024()
    pipe.embed_texts(["warm-up"])
    tick = time.perf_counter()
    segmentation = pipe.segment(image)
    result = pipe.query(segmentation, "cup, saucer, table", threshold=0.3)
    pipe.render(segmentation, result)
    e2e = time.perf_counter() - tick
    keywords, keywords_plain, keyword_one = [], [], []
    prefix_cache = getattr(embedder, "_prefix_cache", None)
    for i in range(12):
        tick = time.perf_counter()
        pipe.query(image, f"object {i}, thing {i}", threshold=0.3)
        keywords.append((time.perf_counter() - tick) * 1000)
        tick = time.perf_counter()
        pipe.query(image, f"gadget {i}", threshold=0.3)
        keyword_one.append((time.perf_counter() - tick) * 1000)
        embedder._prefix_cache = None  # type: ignore[attr-defined]
        try:
            tick = time.perf_counter()
            pipe.query(image, f"item {i}, stuff {i}", threshold=0.3)
            keywords_plain.append((time.perf_counter() - tick) * 1000)
        finally:
            embedder._prefix_cache = prefix_cache  # type: ignore[attr-defined]
    peak = _peak_rss_mb()
    regions = segmentation.regions
    # Parity material: fixed crops of the photo (the same for both backends) and texts.
    rng = np.random.default_rng(0)
    boxes = [(int(x), int(y), int(x) + 160, int(y) + 160) for x, y in rng.integers(0, 500, size=(16, 2))]
    crops = region_crops(
        image, [_box_rle(b, image.shape[:2]) for b in boxes], np.asarray(boxes, np.float32), out_size=224
    )
    texts = [f"a photo of a {w}." for w in ("cup", "saucer", "table", "dog")] + ["coffee", "a red lamp"]
    return {
        "backend": getattr(proposer, "backend_name", "torch")
        + "/"
        + getattr(embedder, "backend_name", "torch"),
        "load_s": load_s,
        "e2e_s": e2e,
        "timings_ms": segmentation.timings_ms,
        "regions": len(regions),
        "rles": [r["counts"] for r in regions.rles],
        "points": regions.points_xy.tolist(),
        "ious": regions.predicted_iou.tolist(),
        "image_embeddings": embedder.embed_images(crops).tolist(),
        "text_embeddings": embedder.embed_texts(texts).tolist(),
        "new_keywords_ms_p50": float(np.percentile(keywords, 50)),
        "new_keyword_one_ms_p50": float(np.percentile(keyword_one, 50)),
        "new_keywords_plain_ms_p50": float(np.percentile(keywords_plain, 50)),
        "peak_rss_mb": peak,
    }


def _box_rle(box: tuple[int, int, int, int], hw: tuple[int, ...]) -> Any:
    from seglens.core.masks import encode_mask

    mask = np.zeros(hw[:2], bool)
    mask[box[1] : box[3], box[0] : box[2]] = True
    return encode_mask(mask)


def _parity(torch_run: dict[str, Any], onnx_run: dict[str, Any]) -> dict[str, Any]:
    from seglens.core.masks import rle_iou_matrix

    size = [683, 1024]
    points_t, points_o = np.asarray(torch_run["points"]), np.asarray(onnx_run["points"])
    ious_t, ious_o = np.asarray(torch_run["ious"]), np.asarray(onnx_run["ious"])
    mask_ious, iou_diffs = [], []
    for i in range(len(ious_t)):
        same = np.flatnonzero(np.abs(points_o - points_t[i]).max(axis=1) < 1e-3) if len(points_o) else []
        if len(same) == 0:
            continue
        j = int(same[np.argmin(np.abs(ious_o[same] - ious_t[i]))])
        iou_diffs.append(abs(float(ious_o[j] - ious_t[i])))
        a = {"size": size, "counts": torch_run["rles"][i]}
        b = {"size": size, "counts": onnx_run["rles"][j]}
        mask_ious.append(float(rle_iou_matrix([a], [b])[0, 0]))
    cos_img = (np.asarray(torch_run["image_embeddings"]) * np.asarray(onnx_run["image_embeddings"])).sum(1)
    cos_txt = (np.asarray(torch_run["text_embeddings"]) * np.asarray(onnx_run["text_embeddings"])).sum(1)
    return {
        "regions": {"torch": torch_run["regions"], "onnx": onnx_run["regions"]},
        "paired": len(mask_ious),
        "min_mask_iou": min(mask_ious, default=None),
        "max_predicted_iou_diff": max(iou_diffs, default=None),
        "min_image_cosine": float(cos_img.min()),
        "min_text_cosine": float(cos_txt.min()),
    }


def bench_backends(
    data_dir: Path,
    worker: Any,
    proposers: dict[str, str] | None = None,
    embedder: str = EMBEDDER,
    order: tuple[str, ...] = ("torch", "onnx", "onnx", "torch"),
) -> dict[str, Any]:
    """Both proposers, torch vs onnx, runs in `order`; `worker(task, args)` runs one task
    in a process."""
    base = {"points_per_side": 16, "points_per_batch": 64, "stability_score_thresh": 0.0}
    base |= {"min_region_area": 0, "box_nms_thresh": 1.0}
    out: dict[str, Any] = {}
    for label, proposer in (proposers or PROPOSERS).items():
        print(f"backends, {label}: export (first use) + calibration ...", flush=True)
        tick = time.perf_counter()
        quantiles = worker(
            "calibrate",
            {"data_dir": str(data_dir), "model": proposer, "embedder": embedder, "backend": "onnx"},
        )
        warm_s = time.perf_counter() - tick
        params = {**base, "pred_iou_thresh": quantiles["0.87"]}
        runs: dict[str, list[dict[str, Any]]] = {"torch": [], "onnx": []}
        for backend in order:
            print(f"backends, {label}: {backend} ...", flush=True)
            with tempfile.TemporaryDirectory() as cache_dir:
                args = {
                    "data_dir": str(data_dir),
                    "proposer": proposer,
                    "backend": backend,
                    "embedder": embedder,
                }
                runs[backend].append(worker("backend", {**args, "params": params, "cache_dir": cache_dir}))
        best = {b: min(rs, key=lambda r: float(r["e2e_s"])) for b, rs in runs.items()}
        out[label] = {
            "proposer": proposer,
            "embedder": embedder,
            "export_and_calibrate_s": warm_s,
            "params": params,
            "e2e_s": {b: [round(float(r["e2e_s"]), 2) for r in rs] for b, rs in runs.items()},
            "speedup": best["torch"]["e2e_s"] / best["onnx"]["e2e_s"],
            "best": {
                b: {
                    k: v
                    for k, v in r.items()
                    if k not in ("rles", "points", "ious") and "embeddings" not in k
                }
                for b, r in best.items()
            },
            "parity": _parity(best["torch"], best["onnx"]),
        }
    return out


def doc_lines(report: dict[str, Any]) -> list[str]:
    """The docs/benchmarks.md section for `bench_backends`' results."""
    lines = ["", "## Inference backend: PyTorch eager vs ONNX Runtime (CPU, fp32) -- issue 14", ""]
    lines += [
        "| | cpu-fast (SAM 2.1 Hiera-T) torch | onnx | SAM ViT-B torch | onnx |",
        "|---|---|---|---|---|",
    ]
    a, b = report.get("cpu-fast"), report.get("sam-vit-b")
    if not a or not b:
        return []

    def row(name: str, get: Any, digits: int = 2) -> str:
        cells = [f"{get(r['best'][k]):.{digits}f}" for r in (a, b) for k in ("torch", "onnx")]
        return f"| {name} | " + " | ".join(cells) + " |"

    lines.append(row("cold segment + query (s), best run", lambda r: r["e2e_s"]))
    lines.append(row("image encoder (s)", lambda r: r["timings_ms"]["image_encoder"] / 1000))
    lines.append(row("mask decoder (s)", lambda r: r["timings_ms"]["mask_decoder"] / 1000))
    lines.append(
        row("query, 1 new keyword p50 (ms), shared prefixes", lambda r: r["new_keyword_one_ms_p50"], 1)
    )
    lines.append(
        row("query, 2 new keywords p50 (ms), shared prefixes", lambda r: r["new_keywords_ms_p50"], 1)
    )
    lines.append(
        row("query, 2 new keywords p50 (ms), whole texts", lambda r: r["new_keywords_plain_ms_p50"], 1)
    )
    lines.append(row("peak RSS (MB)", lambda r: r["peak_rss_mb"], 0))
    lines.append(row("regions", lambda r: r["regions"], 0))
    for label, r in (("cpu-fast", a), ("SAM ViT-B", b)):
        p = r["parity"]
        lines.append(
            f"\n{label}: **{r['speedup']:.2f}x** end to end (runs torch {r['e2e_s']['torch']}, onnx "
            f"{r['e2e_s']['onnx']}); parity: regions {p['regions']['torch']} vs {p['regions']['onnx']}, "
            f"min mask IoU {p['min_mask_iou']}, max predicted-IoU diff {p['max_predicted_iou_diff']}, "
            f"CLIP cosine min {p['min_image_cosine']:.6f} (images) {p['min_text_cosine']:.6f} (texts). "
            f"First-use export + calibration {r['export_and_calibrate_s']:.0f} s."
        )
    lines += ["", *CHOICES]
    return lines


# Measured by hand (loaded shared machine, load average 7-16 on 2 cores: absolute seconds
# are several times the quiet machine's; each ratio is from runs side by side).
CHOICES = [
    "Choices (issue 14), measured side by side on this 2-core machine while it was shared "
    "(load average 7-16, so absolute seconds are inflated; ratios are what counts):",
    "",
    "- **ONNX Runtime 1.32, fp32, `ORT_ENABLE_ALL`, intra-op threads = torch's thread count** "
    "is the optimised backend. Component probe before building it: SAM ViT-B mask decoder, 32 "
    "multimask point prompts, 4 a call (torch's CPU chunk): torch 48.3 s / 41.5 s vs ORT 26.1 s / "
    "20.9 s (1.9-2.0x); CLIP B/32 image tower, 32 crops: torch 16.1 s vs ORT 14.4 s (1.12x).",
    "- **Decoder prompts per call: 8 on ONNX Runtime** (torch keeps 4): ORT 32 prompts in "
    "chunks of 16 took 13.8 s / 12.0 s against 26.1 s / 20.9 s in chunks of 4 (~1.7x); cpu-fast "
    "end to end, 8 a call was as fast as 16 (decoder 17.3 vs 19.2 s) for a peak RSS of 1646 vs "
    "1946 MB; 4 a call doubled the decoder time.",
    "- **Exporter: TorchScript-based `torch.onnx.export(dynamo=False)`, opset 17.** It exports "
    "SAM, SAM 2.1 (Hiera + multi-level decoder inputs) and CLIP's towers as they are in "
    "transformers 5.24 with exact parity (encoder max diff ~1e-7, decoder IoU diff ~2e-8, CLIP "
    "cosine 0.9999999). The dynamo exporter was not needed and not timed.",
    "- **Memory, earlier passes** (cpu-fast probe, peak RSS): torch 1.4 GB; ORT as first built 3.3 GB; arena off "
    "2.3 GB; + weights in external data files (memory-mapped, one copy), no PyTorch copies "
    "resident 2.05 GB. Rejected: a fixed glibc mmap/trim threshold (1.64 GB, but end to end "
    "2x slower), pre-packing off (decoder ~4x slower), optimisation levels basic/extended "
    "(no memory gain).",
    "- **The SAM-family image encoders stay on PyTorch:** on ORT SAM ViT-B's global attention "
    "peaked 3.0 GB above the loaded process (peak RSS 4358 vs 2643 MB); SAM 2.1 Hiera-T's encoder "
    "is as fast on PyTorch (3.9 vs 4.0 s) and peaked ~220 MB lower. The decoders run on ORT.",
    "- **CLIP's text tower is one suffix graph** on ORT: the shared-prefix path (new keywords) "
    "and whole texts (offset 0), so the PyTorch CLIP is released whole.",
    "- **The mask decoder graph is exported from `models/prompt_batch.py`** (export recipe 5): "
    "the same function laid out for a batch of prompts, with the shared first block, the "
    "reassociated attention, the upscaling one output offset at a time, and only the points "
    "with a candidate above the predicted-IoU threshold upscaled. Its session pools "
    "activations for a batch of prompts and gives them back after it (outputs written into the "
    "caller's arrays). cpu-fast decoder 4.5-4.9 s against torch's 24-26 s in the same runs; "
    "the fourth pass's graph took 10.4-11.4 s.",
    "- Measured and not taken (docs/benchmarks.md, fourth and fifth passes):",
    "  - `torch.compile`: 33-34 ms a prompt on the same layout, but it needs a C++ compiler "
    "at run time and about 30 s of compiling per process;",
    "  - OpenVINO 2026.4: 1.1x ORT on the decoder, slower on CLIP;",
    "  - dynamic int8: the decoder was no faster and its masks changed (IoU min 0.77); the CLIP "
    "image tower was 1.3x faster at cosine 0.9998 on random weights, and is not built "
    "without a check on real weights;",
    "  - glibc malloc thresholds: faster, but they cost peak RSS;",
    "  - the decoder as two graphs (IoUs, then upscaling): the second session cost what the skip saved.",
    "- **CLIP's image tower does not pre-pack its weights** (`onnx_clip.IMAGE_TOWER_PREPACK`): it "
    "reads them from the memory-mapped data file, resident once touched, as PyTorch's are. This is "
    "as fast, and cpu-fast's one-image peak RSS came to 1456 MB against torch's 1473 MB (was +17%). "
    "The text tower keeps pre-packing: a new keyword took 26-30 ms without it, against 10-14 ms.",
    "- bf16 is not available: this CPU has AVX2 and FMA only.",
]
