"""One measurement per process, so that peak RSS belongs to that measurement alone.

Run as ``python -m benchmarks.worker TASK JSON_ARGS OUT_JSON``. Real-size architectures
with random weights (built locally, seed fixed): the timings are real, the masks are not.
"""

from __future__ import annotations

import json
import resource
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from seglens.models.device import quiet_transformers


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def photo_1024() -> np.ndarray:
    """scikit-image's coffee photo (a real photograph, 400x600) resized to 1024 px wide."""
    import skimage.data
    from PIL import Image

    image = Image.fromarray(skimage.data.coffee())
    return np.asarray(image.resize((1024, 683), Image.Resampling.BICUBIC))


def _load(name: str, data_dir: Path, backend: str = "torch") -> Any:
    from seglens.models.loading import load_model

    return load_model(name, data_dir / "models", device="cpu", dtype="float32", backend=backend)


def _params(args: dict[str, Any]) -> Any:
    from seglens.core.types import GenerationParams

    return GenerationParams(**args["params"])


def task_stages(args: dict[str, Any], data_dir: Path) -> dict[str, Any]:
    """Forward time of each model stage on the 1024-px photo (best of `repeat`)."""
    import torch

    image = photo_1024()
    repeat = int(args.get("repeat", 2))
    out: dict[str, Any] = {}
    for name in ("random-sam-vit-base", "random-sam2.1-hiera-tiny"):
        backend = _load(name, data_dir)
        prepared = backend.prepare(image)
        enc = []
        for _ in range(repeat):
            tick = time.perf_counter()
            payload = backend.encode_pixels(prepared.pixel_values)
            enc.append(time.perf_counter() - tick)
        points = torch.rand(1, 64, 1, 2) * 1000
        labels = torch.ones(1, 64, 1, dtype=torch.int64)
        dec = []
        for _ in range(repeat):
            tick = time.perf_counter()
            backend.decode(payload, points, labels, None, multimask=True)
            dec.append(time.perf_counter() - tick)
        out[name] = {"image_encoder_s": min(enc), "mask_decoder_64_points_s": min(dec)}
    embedder = _load("random-clip-vit-b32", data_dir)
    crops = [np.asarray(image[:224, :224]) for _ in range(64)]
    img_t, txt_t = [], []
    for _ in range(repeat):
        tick = time.perf_counter()
        embedder.embed_images(crops)
        img_t.append(time.perf_counter() - tick)
        tick = time.perf_counter()
        embedder.embed_texts([f"a photo of a thing number {i}." for i in range(8)])
        txt_t.append(time.perf_counter() - tick)
    out["random-clip-vit-b32"] = {
        "image_tower_64_crops_s": min(img_t),
        "text_tower_8_prompts_s": min(txt_t),
    }
    out["peak_rss_mb"] = _peak_rss_mb()
    return out


def task_calibrate(args: dict[str, Any], data_dir: Path) -> dict[str, Any]:
    """Predicted-IoU quantiles of one decoder batch: random weights predict IoUs near 0,
    so the benchmark picks the threshold that passes a realistic share of candidates.
    Loads `args["embedder"]` too, if given, so that its first-use export is made here and
    not inside a timed run."""
    import torch

    from seglens.core.geometry import point_grid

    if args.get("embedder"):
        _load(args["embedder"], data_dir, args.get("backend", "torch"))
    backend = _load(args["model"], data_dir, args.get("backend", "torch"))
    image = photo_1024()
    prepared = backend.prepare(image)
    payload = backend.encode_pixels(prepared.pixel_values)
    grid = point_grid(16) * np.asarray([image.shape[1], image.shape[0]], np.float32)
    points = torch.from_numpy(backend.to_input_coords(grid, prepared.original_hw, prepared.reshaped_hw))
    _, iou = backend.decode(
        payload, points[None, :, None, :], torch.ones(1, len(grid), 1, dtype=torch.int64), None, True
    )
    values = iou.flatten().numpy()
    return {str(q): float(np.quantile(values, q)) for q in (0.5, 0.67, 0.8, 0.87, 0.9)}


def task_amg(args: dict[str, Any], data_dir: Path) -> dict[str, Any]:
    """Automatic mask generation by SegLens or by transformers' pipeline stages."""
    from PIL import Image

    image = photo_1024()
    params = _params(args)
    if args["impl"] == "seglens":
        backend = _load(args["model"], data_dir)
        tick = time.perf_counter()
        proposal = backend.propose(image, params)
        elapsed = time.perf_counter() - tick
        rles = [r["counts"] for r in proposal.regions.rles]
        scores = proposal.regions.predicted_iou.tolist()
        timings = proposal.timings_ms
    else:
        from transformers import pipeline

        from seglens.core.masks import encode_mask
        from seglens.models.hub import resolve_model

        path = resolve_model(args["model"], data_dir / "models").path
        generator = pipeline("mask-generation", model=str(path), device="cpu")
        tick = time.perf_counter()
        masks, scores_t = [], []
        for chunk in generator.preprocess(
            Image.fromarray(image),
            points_per_batch=params.points_per_batch,
            points_per_crop=params.points_per_side,
        ):
            output = generator.forward(
                chunk,
                pred_iou_thresh=params.pred_iou_thresh,
                stability_score_thresh=params.stability_score_thresh,
            )
            masks.extend(output["masks"])
            scores_t.extend(output["iou_scores"].float().tolist())
        elapsed = time.perf_counter() - tick
        order = np.argsort(-np.asarray(scores_t), kind="stable")
        rles = [encode_mask(_uncompressed(masks[i]))["counts"] for i in order]
        scores = [scores_t[i] for i in order]
        timings = {}
    return {
        "elapsed_s": elapsed,
        "regions": len(rles),
        "rles": rles,
        "scores": scores,
        "timings_ms": timings,
        "peak_rss_mb": _peak_rss_mb(),
    }


def _uncompressed(rle: dict[str, Any]) -> np.ndarray:
    h, w = rle["size"]
    flat = np.zeros(h * w, dtype=bool)
    pos, value = 0, False
    for count in rle["counts"]:
        flat[pos : pos + count] = value
        pos += count
        value = not value
    return flat.reshape(w, h).T


def task_e2e(args: dict[str, Any], data_dir: Path) -> dict[str, Any]:
    """Cold segment + query end to end, the pure forward time inside it, then re-query
    latency from the warm cache (new thresholds, new keywords, new transparency)."""
    from seglens.core.query import BACKGROUND_PROMPTS, TEMPLATES
    from seglens.services.segment.pipeline import Pipeline
    from seglens.storage.cache import ArtifactCache

    cache_dir = Path(args["cache_dir"])
    pipe = Pipeline(
        _load(args["proposer"], data_dir),
        _load("random-clip-vit-b32", data_dir),
        cache=ArtifactCache(cache_dir),
        generation=_params(args),
    )
    image = photo_1024()
    pipe.embed_texts(["warm-up"])  # load tokenizer paths once, outside the timed region
    tick = time.perf_counter()
    segmentation = pipe.segment(image)
    result = pipe.query(segmentation, "cup, saucer, table", threshold=0.3)
    pipe.render(segmentation, result)
    e2e = time.perf_counter() - tick
    regions = segmentation.regions
    # Pure forward: the encoder and decoder forwards measured inside AMG, plus the CLIP
    # towers' forward alone on the same crops and prompts (preprocessing done beforehand).
    import torch
    from PIL import Image

    from seglens.core.crops import region_crops

    embedder = pipe.embedder
    crops = region_crops(image, regions.rles, regions.boxes_xyxy, out_size=embedder.input_size)
    pil = [Image.fromarray(c) for c in crops]
    batches = [
        embedder.image_processor(images=pil[i : i + 32], return_tensors="pt") for i in range(0, len(pil), 32)
    ]
    texts = [t.format(k) for k in ("cup", "saucer", "table") for t in TEMPLATES["en"]]
    tokens = embedder.tokenizer([*texts, *BACKGROUND_PROMPTS["en"]], padding=True, return_tensors="pt")
    with torch.inference_mode():
        tick = time.perf_counter()
        for batch in batches:
            embedder.model.get_image_features(pixel_values=batch["pixel_values"])
        clip_images = time.perf_counter() - tick
        tick = time.perf_counter()
        embedder.model.get_text_features(
            input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
        )
        clip_texts = time.perf_counter() - tick
    sam_forward = (
        segmentation.timings_ms.get("image_encoder", 0) + segmentation.timings_ms.get("mask_decoder", 0)
    ) / 1000

    thresholds = []
    for i in range(60):
        tick = time.perf_counter()
        pipe.query(
            image,
            "cup, saucer, table",
            threshold=0.05 + 0.01 * (i % 50),
            merge_threshold=0.3 + 0.01 * (i % 60),
        )
        thresholds.append((time.perf_counter() - tick) * 1000)
    # New keywords with the templates' shared prefixes (the default) and, alternated with
    # them, through the text tower's plain forward pass (the prefix cache detached).
    keywords, keywords_plain = [], []
    prefix_cache = embedder._prefix_cache
    for i in range(20):
        tick = time.perf_counter()
        pipe.query(image, f"object {i}, thing {i}", threshold=0.3)
        keywords.append((time.perf_counter() - tick) * 1000)
        embedder._prefix_cache = None
        try:
            tick = time.perf_counter()
            pipe.query(image, f"item {i}, stuff {i}", threshold=0.3)
            keywords_plain.append((time.perf_counter() - tick) * 1000)
        finally:
            embedder._prefix_cache = prefix_cache
    # New keywords while another thread runs mask generation on another image (a batch
    # worker), with one lock per model (as shipped) and with one lock for both models.
    small_grid = replace(_params(args), points_per_side=8)

    def during_segmentation(other: np.ndarray, queries: int, tag: str) -> list[float]:
        worker = threading.Thread(target=pipe.segment, args=(other, small_grid))
        worker.start()
        time.sleep(1.0)  # inside the image encoder by now
        waits = []
        for i in range(queries):
            tick = time.perf_counter()
            pipe.query(image, f"{tag} {i}, other {tag} {i}", threshold=0.3)
            waits.append((time.perf_counter() - tick) * 1000)
        worker.join()
        return waits

    peak_rss_mb = _peak_rss_mb()  # of the one-image work above, before a second image is segmented
    keywords_during_amg = during_segmentation(np.ascontiguousarray(image[:, ::-1]), 5, "lamp")
    locks = pipe._proposer_lock, pipe._embedder_lock
    pipe._embedder_lock = pipe._proposer_lock  # one lock for both models
    try:
        keywords_during_amg_one_lock = during_segmentation(np.ascontiguousarray(image[::-1]), 1, "vase")
    finally:
        pipe._proposer_lock, pipe._embedder_lock = locks
    renders = []
    for i in range(30):
        tick = time.perf_counter()
        pipe.render(image, result, alpha=0.1 + 0.02 * i)
        renders.append((time.perf_counter() - tick) * 1000)
    cold_requery = []
    fresh = Pipeline(pipe.proposer, pipe.embedder, cache=ArtifactCache(cache_dir), generation=_params(args))
    for i in range(5):
        tick = time.perf_counter()
        fresh.query(image, "cup", threshold=0.2 + 0.1 * i)
        cold_requery.append((time.perf_counter() - tick) * 1000)

    def pct(values: list[float]) -> dict[str, float]:
        return {
            "p50": float(np.percentile(values, 50)),
            "p95": float(np.percentile(values, 95)),
            "n": len(values),
        }

    return {
        "regions": len(regions),
        "matches": len(result.matches),
        "e2e_s": e2e,
        "segment_timings_ms": segmentation.timings_ms,
        "pure_forward_s": {
            "sam": sam_forward,
            "clip_images": clip_images,
            "clip_texts": clip_texts,
            "total": sam_forward + clip_images + clip_texts,
        },
        "requery_ms": {
            "new_thresholds_and_merge": pct(thresholds),
            "new_keywords": pct(keywords),
            "new_keywords_plain_text_tower": pct(keywords_plain),
            "new_keywords_during_mask_generation": pct(keywords_during_amg),
            "new_keywords_during_mask_generation_one_lock": pct(keywords_during_amg_one_lock),
            "render_new_alpha": pct(renders),
            "new_process_from_disk_cache": pct(cold_requery),
        },
        "peak_rss_mb": peak_rss_mb,
    }


def task_backend(args: dict[str, Any], data_dir: Path) -> dict[str, Any]:
    from benchmarks.bench_backend import task_backend as run

    return run(args, data_dir)


TASKS = {
    "stages": task_stages,
    "calibrate": task_calibrate,
    "amg": task_amg,
    "e2e": task_e2e,
    "backend": task_backend,
}


def main() -> None:
    quiet_transformers()
    task, raw_args, out_path = sys.argv[1], sys.argv[2], sys.argv[3]
    args = json.loads(raw_args)
    result = TASKS[task](args, Path(args["data_dir"]))
    Path(out_path).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
