"""Assistant benchmark: a real `seglens serve` (tiny profile, CPU, no LLM) holding jobs of
4 images (1500x2000 px) with 2,500 stored matches each (ragged SAM-like masks), as a
reopened job the user asks about.

- chat: ``/health`` latency (one request every 25 ms from a thread of the bench) while the
  assistant answers four questions about the job five times over (the first one builds
  the context, the others find it in the cache; 20 answers give the probe enough
  samples for a p95, its max shows the worst stall); the time each answer took;
- 'Suggest settings' (``GET /assistant/advice``) for a job never looked at and again
  (its images carry the summaries the job worker stores), for a job whose images have
  none (done before summaries existed: computed from the stored masks, then stored),
  and for one image of it (its regions from the cache, threshold 0 so every region
  matches) and again, with ``/health`` probed the same way meanwhile;
- the time to summarise one image's stored result (the job worker's cost per image);
- the LLM prompt for a synthetic 1,000-image job with 32 keywords: characters and
  estimated tokens against `PROMPT_TOKEN_BUDGET`.

The stored results (and their summaries) are written into the job's rows after the tiny
models ran it (their own matches mean nothing); the masks are blobs with ragged edges, drawn at 1/10 scale
and enlarged, ~7,600 RLE characters each like a real mask of that size.
``python -m benchmarks.bench_assistant`` prints the figures; ``run(results_dir)`` also
writes ``results_dir/assistant-latest.json``. With ``PYTHONPATH`` pointing at another
checkout's ``src`` the server runs that code (how the old figures were taken).
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from benchmarks.bench_server import _percentiles, _Server

__all__ = ["run"]

IMAGES = 4
MATCHES_PER_IMAGE = 625
SIZE_HW = (1500, 2000)
KEYWORDS = ("cat", "grass", "tree")
MASK_POOL = 200
CHAT_ROUNDS = 5  # the questions are asked this many times (the first builds the context)
QUESTIONS = (
    "Why is the cat not found?",
    "What threshold should I use?",
    "The same tree is found twice, why?",
    "How do I export the results?",
)


def _photos() -> list[tuple[str, bytes]]:
    import skimage.data
    from PIL import Image

    out = []
    for n, name in enumerate(("astronaut", "coffee", "chelsea", "rocket")[:IMAGES]):
        picture = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
        picture = picture.resize((SIZE_HW[1], SIZE_HW[0]), Image.Resampling.BILINEAR)
        buffer = io.BytesIO()
        picture.save(buffer, "JPEG", quality=85)
        out.append((f"IMG_{4021 + n}.jpg", buffer.getvalue()))
    return out


def _mask_pool(rng: np.random.Generator) -> list[dict[str, Any]]:
    """`MASK_POOL` blob masks as COCO RLE (string counts) with their boxes and areas."""
    from pycocotools import mask as mask_utils

    h, w, k = SIZE_HW[0] // 10, SIZE_HW[1] // 10, 10
    y, x = np.ogrid[:h, :w]
    pool = []
    for _ in range(MASK_POOL):
        small = np.zeros((h, w), bool)
        cy, cx = int(rng.integers(10, h - 10)), int(rng.integers(10, w - 10))
        for _ in range(int(rng.integers(1, 4))):
            ry, rx = int(rng.integers(3, 40)), int(rng.integers(3, 50))
            oy, ox = cy + int(rng.integers(-10, 10)), cx + int(rng.integers(-10, 10))
            small |= ((y - oy) / ry) ** 2 + ((x - ox) / rx) ** 2 + rng.normal(0, 0.15, small.shape) <= 1
        mask = np.repeat(np.repeat(small, k, 0), k, 1)
        rle = mask_utils.encode(np.asfortranarray(mask[:, :, None]))[0]
        ys, xs = np.nonzero(small)
        box = [float(xs.min() * k), float(ys.min() * k), float((xs.max() + 1) * k), float((ys.max() + 1) * k)]
        pool.append(
            {
                "rle": {"size": [SIZE_HW[0], SIZE_HW[1]], "counts": rle["counts"].decode()},
                "box": box,
                "area": int(mask.sum()),
            }
        )
    return pool


def _stored_result(rng: np.random.Generator, pool: list[dict[str, Any]]) -> dict[str, Any]:
    """One image's stored result: 625 matches of grass and tree (none of cat)."""
    matches = []
    for i in range(MATCHES_PER_IMAGE):
        blob = pool[int(rng.integers(0, len(pool)))]
        matches.append(
            {
                "keyword": KEYWORDS[1 + i % 2],
                "score": float(rng.uniform(0.3, 0.95)),
                "cosine": 0.3,
                "bbox_xyxy": blob["box"],
                "area": blob["area"],
                "region_indices": [i],
                "rle": blob["rle"],
            }
        )
    matches.sort(key=lambda m: -m["score"])
    return {
        "num_regions": 900,
        "image_matched": True,
        "missing_keywords": ["cat"],
        "excluded_by": [],
        "best_scores": {"cat": float(rng.uniform(0.15, 0.28)), "grass": matches[0]["score"], "tree": 0.95},
        "matches": matches,
        "image": {"height": SIZE_HW[0], "width": SIZE_HW[1]},
    }


def _seed(
    server: _Server, job_ids: list[str], image_ids: list[str], *, without_summaries: tuple[str, ...] = ()
) -> list[float]:
    """Write the stored results, and the summaries the job worker stores with them (none
    for the jobs in `without_summaries`: images done before summaries existed). Returns
    the milliseconds each summary took (the worker's cost per image)."""
    try:
        from seglens.services.jobs.summary import summarise_item
    except ImportError:  # a checkout from before the stored summaries
        summarise_item = None
    rng = np.random.default_rng(0)
    pool = _mask_pool(rng)
    params = {"threshold": 0.3}
    summary_ms: list[float] = []
    with sqlite3.connect(server.data_dir / "seglens.db", timeout=60) as db:
        for job_id in job_ids:
            for image_id in image_ids:
                result = _stored_result(rng, pool)
                db.execute(
                    "UPDATE job_items SET result = ? WHERE job_id = ? AND image_id = ?",
                    (json.dumps(result), job_id, image_id),
                )
                if summarise_item is None:
                    continue
                started = time.perf_counter()
                summary = summarise_item(result, ", ".join(KEYWORDS), params)
                summary_ms.append((time.perf_counter() - started) * 1000)
                db.execute(
                    "DELETE FROM job_item_summaries WHERE job_id = ? AND image_id = ?", (job_id, image_id)
                )
                if job_id not in without_summaries:
                    db.execute(
                        "INSERT INTO job_item_summaries (job_id, image_id, summary, timings_ms)"
                        " SELECT job_id, image_id, ?, timings_ms FROM job_items WHERE job_id = ? AND image_id = ?",
                        (json.dumps(summary), job_id, image_id),
                    )
            db.execute("UPDATE jobs SET params = ? WHERE id = ?", (json.dumps(params), job_id))
    return summary_ms


class _HealthProbe:
    """GET /health every 25 ms from a thread of this process until stopped; a request
    that fails (a frozen server resets kept-alive connections) counts in `errors`, its
    time until the failure in `latencies_ms`."""

    def __init__(self, base_url: str):
        self.client = httpx.Client(base_url=base_url, timeout=120)
        self.latencies_ms: list[float] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                self.client.get("/health").raise_for_status()
            except httpx.HTTPError:
                self.errors += 1
            self.latencies_ms.append((time.perf_counter() - started) * 1000)
            self._stop.wait(0.025)

    def __enter__(self) -> _HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(300)
        self.client.close()


def _probe_figures(probe: _HealthProbe) -> dict[str, Any]:
    return {
        **_percentiles(probe.latencies_ms),
        "max": round(max(probe.latencies_ms), 1),
        "errors": probe.errors,
    }


def _chat_s(server: _Server, question: str, job_id: str) -> float:
    started = time.perf_counter()
    body = {"message": question, "context": {"job_id": job_id}}
    with server.client.stream("POST", "/assistant/chat", json=body) as response:
        response.raise_for_status()
        text = "".join(response.iter_text())
    if "event: done" not in text:
        raise RuntimeError(f"the chat did not finish: {text[-500:]}")
    return time.perf_counter() - started


def _get_ms(server: _Server, path: str, params: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    response = server.client.get(path, params=params)
    response.raise_for_status()
    return (time.perf_counter() - started) * 1000, response.json()


def _prompt_size() -> dict[str, Any] | None:
    try:
        from seglens.services.assistant.prompt import PROMPT_TOKEN_BUDGET, build_messages, prompt_tokens
    except ImportError:  # a checkout from before the prompt budget
        return None
    from seglens.core.exports import ImageRecord
    from seglens.core.types import CocoRle, Match, Query, QueryParams, QueryResult
    from seglens.services.assistant.advisor import advise
    from seglens.services.assistant.guide import load_user_guide
    from seglens.services.assistant.screen_context import build_context

    keywords = tuple(f"keyword {i}" for i in range(32))
    rle = CocoRle(size=[100, 120], counts="0PY8")
    records = []
    for n in range(1000):
        matches = tuple(
            Match(keywords[(n + k) % 32], 0.5 + (n % 40) / 100, 0.3, rle, (0, 0, 10, 10), 100, (k,))
            for k in range(5)
        )
        result = QueryResult(
            Query(keywords),
            QueryParams(),
            (3000, 4000),
            400,
            matches,
            True,
            (),
            (),
            {kw: 0.3 for kw in keywords},
        )
        records.append(ImageRecord(f"photo-{n:05d}.jpg", result=result))
    started = time.perf_counter()
    context = build_context(records, query=Query(keywords))
    build_ms = (time.perf_counter() - started) * 1000
    messages = build_messages(
        "Why is the cat not found?", context, advise(context), [], guide=load_user_guide()
    )
    return {
        "images": 1000,
        "keywords": 32,
        "matches": 5000,
        "context_build_ms_in_process": round(build_ms, 1),
        "prompt_chars": sum(len(m.content) for m in messages),
        "prompt_tokens_estimated": prompt_tokens(messages),
        "budget_tokens": PROMPT_TOKEN_BUDGET,
    }


def run(results_dir: Path) -> dict[str, Any]:
    """Run the scenario; returns (and saves) the figures."""
    results_dir = Path(results_dir)
    with tempfile.TemporaryDirectory(prefix="seglens-bench-assistant-") as tmp:
        root = Path(tmp)
        (root / "models").mkdir()
        server = _Server(root, root / "models")
        try:
            image_ids = server.upload(_photos())
            jobs = [server.submit(image_ids, ", ".join(KEYWORDS)) for _ in range(3)]
            server.wait(jobs)
            summary_ms = _seed(server, jobs, image_ids, without_summaries=(jobs[2],))
            idle = [_get_ms(server, "/health", {})[0] for _ in range(40)]
            load_before = os.getloadavg()
            with _HealthProbe(str(server.client.base_url)) as probe:
                chats = [_chat_s(server, question, jobs[0]) for question in QUESTIONS * CHAT_ROUNDS]
            with _HealthProbe(str(server.client.base_url)) as advice_probe:
                advice_cold, advice = _get_ms(server, "/assistant/advice", {"job_id": jobs[1]})
                advice_warm, _ = _get_ms(server, "/assistant/advice", {"job_id": jobs[1]})
                legacy_cold, _ = _get_ms(server, "/assistant/advice", {"job_id": jobs[2]})
                image = {"image_id": image_ids[0], "query": ", ".join(KEYWORDS), "threshold": 0.0}
                image_cold, image_advice = _get_ms(server, "/assistant/advice", image)
                image_warm, _ = _get_ms(server, "/assistant/advice", image)
            load_after = os.getloadavg()
        finally:
            server.close()
    stats = advice["context"].get("keyword_stats", [])
    report: dict[str, Any] = {
        "setup": f"real `seglens serve`, tiny profile, CPU, no LLM (offline advisor); {IMAGES} images of "
        f"{SIZE_HW[1]}x{SIZE_HW[0]} px, {IMAGES * MATCHES_PER_IMAGE} stored matches per job",
        "job_matches": sum(int(s.get("matches", 0)) for s in stats),
        "health_idle_ms": _percentiles(idle),
        "load_average_1_5_15": {
            "before": [round(v, 2) for v in load_before],
            "after": [round(v, 2) for v in load_after],
        },
        "health_during_chat_ms": _probe_figures(probe),
        "health_during_advice_ms": _probe_figures(advice_probe),
        "chat_s": {"first": round(chats[0], 3), "cached_median": round(statistics.median(chats[1:]), 3)},
        "advice_job_ms": {
            "first": round(advice_cold, 1),
            "cached": round(advice_warm, 1),
            "first_without_stored_summaries": round(legacy_cold, 1),
        },
        "summary_per_image_ms": _percentiles(summary_ms) if summary_ms else None,
        "advice_image_ms": {
            "first": round(image_cold, 1),
            "cached": round(image_warm, 1),
            "matches": sum(
                int(s.get("matches", 0)) for s in image_advice["context"].get("keyword_stats", [])
            ),
        },
        "prompt_1000_images": _prompt_size(),
        "targets": {"health_p95_ms": 200, "advice_ms": 1000},
    }
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "assistant-latest.json").write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    print(json.dumps(run(Path(__file__).resolve().parent / "results"), indent=2))
