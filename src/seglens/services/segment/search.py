"""Search every region the server has ever embedded: ``GET /search?query=dog``.

Scans the artifact cache's region embeddings of the current embedder (one ``.npy`` per
image and generation setting, see `seglens.storage.cache`), scores each region against
the query exactly as a per-image query would (keyword probability against the background
prompts), and keeps the best `limit` with a heap. Cost is O(all regions) in numpy; only
the hits' masks are read. Regions whose best class is an exclusion (``-grass``) are left
out.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seglens.core.query import parse_query
from seglens.core.types import CocoRle, Query, Regions
from seglens.services.errors import invalid_input
from seglens.services.history import HistoryService
from seglens.services.provider import PipelineProvider
from seglens.services.scheduler import Scheduler
from seglens.services.segment.pipeline import Pipeline
from seglens.storage.images_repo import ImageRepository
from seglens.storage.records import StoredImage

__all__ = ["SearchHit", "SearchOutcome", "SearchService"]


@dataclass(frozen=True)
class SearchHit:
    """One region: `image` is None for images processed outside the server (CLI)."""

    pixels_sha256: str
    image: StoredImage | None
    region_index: int
    keyword: str
    score: float
    cosine: float
    bbox_xyxy: tuple[float, float, float, float]
    area: int
    rle: CocoRle


@dataclass(frozen=True)
class SearchOutcome:
    query: Query
    hits: list[SearchHit]
    scanned_images: int
    scanned_regions: int
    elapsed_ms: float
    meaningless: bool


class SearchService:
    def __init__(
        self,
        images: ImageRepository,
        provider: PipelineProvider,
        scheduler: Scheduler,
        history: HistoryService,
        *,
        models_wait_s: float,
    ):
        self.images = images
        self.provider = provider
        self.scheduler = scheduler
        self.history = history
        self.models_wait_s = models_wait_s

    def search(self, query: str, *, limit: int = 50, threshold: float = 0.0) -> SearchOutcome:
        with invalid_input("invalid_query"):
            parsed = parse_query(query)
        pipeline = self.provider.get(self.models_wait_s)
        started = time.perf_counter()
        # Interactive: scoring may embed new keywords with the models, ahead of batch work.
        with self.scheduler.interactive():
            heap, scanned_images, scanned_regions = self._scan(pipeline, parsed, limit, threshold)
        ranked = sorted(heap, key=lambda h: (-h[0], h[1]))
        known = self.images.by_pixels(list({h[2] for h in ranked}))
        regions: dict[tuple[str, str], Regions | None] = {}
        hits = []
        for score, _, sha, regions_key, region, keyword, cosine in ranked:
            if (sha, regions_key) not in regions:
                regions[(sha, regions_key)] = (
                    pipeline.cache.load_regions(sha, regions_key) if pipeline.cache else None
                )
            found = regions[(sha, regions_key)]
            if found is None or region >= len(found):
                continue
            box = found.boxes_xyxy[region]
            hits.append(
                SearchHit(
                    pixels_sha256=sha,
                    image=known.get(sha),
                    region_index=region,
                    keyword=keyword,
                    score=score,
                    cosine=cosine,
                    bbox_xyxy=(float(box[0]), float(box[1]), float(box[2]), float(box[3])),
                    area=int(found.areas[region]),
                    rle=found.rles[region],
                )
            )
        elapsed = (time.perf_counter() - started) * 1000
        self.history.record(
            "search",
            query=query,
            keywords=(*parsed.keywords, *parsed.exclusions),
            params={"limit": limit, "threshold": threshold},
            image_count=scanned_images,
            match_count=len(hits),
            duration_ms=elapsed,
        )
        return SearchOutcome(parsed, hits, scanned_images, scanned_regions, elapsed, pipeline.meaningless)

    def _scan(
        self, pipeline: Pipeline, parsed: Query, limit: int, threshold: float
    ) -> tuple[list[tuple[float, int, str, str, int, str, float]], int, int]:
        """The best `limit` regions as a heap of (score, tiebreak, sha, regions_key,
        region, keyword, cosine), and how many images and regions were scanned."""
        heap: list[tuple[float, int, str, str, int, str, float]] = []
        scanned_images = scanned_regions = 0
        counter = 0
        k, e = len(parsed.keywords), len(parsed.exclusions)
        files = self._embedding_files(pipeline.cache.root, pipeline.embedding_key) if pipeline.cache else []
        for path, sha, regions_key in files:
            try:
                embeddings = np.load(path, allow_pickle=False)
            except (OSError, ValueError):
                continue  # a file being replaced right now; the next search sees it
            if embeddings.ndim != 2 or len(embeddings) == 0:
                continue
            scanned_images += 1
            scanned_regions += len(embeddings)
            scores = pipeline.score(embeddings, parsed)
            keyword_probs = scores.probabilities[:, :k]
            best = keyword_probs.argmax(axis=1)
            best_prob = keyword_probs[np.arange(len(best)), best]
            keep = best_prob >= threshold
            if e:
                keep &= scores.probabilities[:, k : k + e].max(axis=1) <= best_prob
            for index in np.flatnonzero(keep):
                counter += 1
                entry = (
                    float(best_prob[index]),
                    counter,
                    sha,
                    regions_key,
                    int(index),
                    parsed.keywords[int(best[index])],
                    float(scores.cosines[index, best[index]]),
                )
                if len(heap) < limit:
                    heapq.heappush(heap, entry)
                elif entry[0] > heap[0][0]:
                    heapq.heapreplace(heap, entry)
        return heap, scanned_images, scanned_regions

    @staticmethod
    def _embedding_files(root: Path, embed_key: str) -> list[tuple[Path, str, str]]:
        """``(path, pixels_sha256, regions_key)`` of every region-embedding file of this
        embedder, from the layout ``region-embeddings/<sha[:2]>/<sha>/<regions>-<embed>.npy``."""
        suffix = f"-{embed_key}"
        found = []
        for path in sorted((root / "region-embeddings").glob(f"*/*/*{suffix}.npy")):
            found.append((path, path.parent.name, path.stem[: -len(suffix)]))
        return found
