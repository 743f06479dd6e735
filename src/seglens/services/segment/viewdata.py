"""The data a client-side viewer repaints from: one image's candidate regions at display
resolution, their merging overlaps and their class probabilities for a query.

`ViewDataService.regions` answers ``GET /images/{id}/regions``. With `masks` it returns
everything (sent once per image); without, only the probabilities for new keywords (the
text tower runs, nothing else). Like ``/query`` it segments an image first only if it
never was, and it goes ahead of batch work.
"""

from __future__ import annotations

import io
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from threading import Lock

import numpy as np
from PIL import Image

from seglens.core.query import parse_query
from seglens.core.types import GenerationParams, RegionScores
from seglens.core.viewdata import DisplayRuns, OverlapPairs, display_runs, display_size, overlap_pairs
from seglens.services.errors import InvalidInput, invalid_input
from seglens.services.provider import PipelineProvider
from seglens.services.scheduler import Scheduler
from seglens.services.segment.images import ImageService
from seglens.services.segment.interactive import check_points_per_side
from seglens.services.segment.pipeline import Pipeline, Segmentation
from seglens.storage.records import StoredImage

__all__ = ["RegionsView", "ViewDataService"]

_MEMO_ENTRIES = 4


@dataclass(frozen=True)
class RegionsView:
    """One image's regions for a viewer.

    - `num_regions`: N candidate regions (the ``region_indices`` of ``/query``'s matches)
    - `scores`: per-region probabilities for the query's classes, or None without a query
    - `runs`, `overlaps`, `photo_jpeg`, `display_size_hw`: None unless masks were asked for
    """

    image: StoredImage
    num_regions: int
    scores: RegionScores | None
    keywords: tuple[str, ...]
    exclusions: tuple[str, ...]
    display_size_hw: tuple[int, int] | None
    runs: DisplayRuns | None
    overlaps: OverlapPairs | None
    photo_jpeg: bytes | None
    timings_ms: dict[str, float]
    meaningless: bool
    score_kind: str = "softmax"


class ViewDataService:
    def __init__(
        self,
        images: ImageService,
        provider: PipelineProvider,
        scheduler: Scheduler,
        *,
        models_wait_s: float,
        max_points_per_side: int = GenerationParams.POINTS_PER_SIDE_MAX,
    ):
        self.images = images
        self.provider = provider
        self.scheduler = scheduler
        self.models_wait_s = models_wait_s
        self.max_points_per_side = max_points_per_side
        self._memo: OrderedDict[tuple[object, ...], tuple[DisplayRuns, OverlapPairs, bytes]] = OrderedDict()
        self._memo_lock = Lock()

    def regions(
        self,
        image_id: str,
        *,
        query: str | None,
        points_per_side: int | None = None,
        max_side_px: int = 1024,
        masks: bool = True,
    ) -> RegionsView:
        """The image's N regions: probabilities for `query` (keywords, exclusions and the
        background prompts, exactly what ``/query`` thresholds) and, with `masks`, the
        masks shrunk so the longer side is `max_side_px`, the overlapping pairs merging
        uses and the photo at that size as JPEG. Raises `InvalidInput` for a bad query,
        size or grid, `NotFound` for an unknown image."""
        image = self.images.get(image_id)
        parsed = None
        if query is not None:
            with invalid_input("invalid_query"):
                parsed = parse_query(query)
        if not 16 <= max_side_px <= 4096:
            raise InvalidInput("invalid_params", f"max_side_px must be in 16..4096, got {max_side_px}")
        if not masks and parsed is None:
            raise InvalidInput("invalid_params", "give a query, or ask for the masks")
        check_points_per_side(points_per_side, self.max_points_per_side)
        pipeline = self.provider.get(self.models_wait_s)
        generation = pipeline.generation
        if points_per_side is not None:
            with invalid_input("invalid_params"):
                generation = replace(generation, points_per_side=points_per_side)
        timings: dict[str, float] = {}
        started = time.perf_counter()
        with self.scheduler.interactive():
            loaded = self.images.load(image.id)
            segmentation = pipeline.segment(loaded, generation)
            timings["segment"] = (time.perf_counter() - started) * 1000
            tick = time.perf_counter()
            scores = pipeline.score(segmentation.region_embeddings, parsed) if parsed else None
            timings["score"] = (time.perf_counter() - tick) * 1000
            packed = None
            size_hw = None
            if masks:
                tick = time.perf_counter()
                size_hw = display_size(segmentation.regions.image_size_hw, max_side_px)
                key = (
                    image.id,
                    segmentation.proposer_id,
                    str(sorted(generation.cache_fields().items())),
                    size_hw,
                )
                packed = self._packed(key, segmentation, pipeline, loaded.pixels, size_hw)
                timings["masks"] = (time.perf_counter() - tick) * 1000
        timings["total"] = (time.perf_counter() - started) * 1000
        return RegionsView(
            image=image,
            num_regions=len(segmentation.regions),
            scores=scores,
            keywords=parsed.keywords if parsed else (),
            exclusions=parsed.exclusions if parsed else (),
            display_size_hw=size_hw,
            runs=packed[0] if packed else None,
            overlaps=packed[1] if packed else None,
            photo_jpeg=packed[2] if packed else None,
            timings_ms=timings,
            meaningless=pipeline.meaningless,
            score_kind=str(getattr(pipeline.embedder, "score_kind", "softmax")),
        )

    def _packed(
        self,
        key: tuple[object, ...],
        segmentation: Segmentation,
        pipeline: Pipeline,
        pixels: np.ndarray,
        size_hw: tuple[int, int],
    ) -> tuple[DisplayRuns, OverlapPairs, bytes]:
        with self._memo_lock:
            if key in self._memo:
                self._memo.move_to_end(key)
                return self._memo[key]
        runs = display_runs(segmentation.regions.rles, size_hw)
        overlaps = overlap_pairs(pipeline.overlap_masks(segmentation))
        photo = Image.fromarray(pixels)
        if photo.size != (size_hw[1], size_hw[0]):
            photo = photo.resize((size_hw[1], size_hw[0]), Image.Resampling.BILINEAR)
        buffer = io.BytesIO()
        photo.save(buffer, "JPEG", quality=90)
        packed = (runs, overlaps, buffer.getvalue())
        with self._memo_lock:
            self._memo[key] = packed
            while len(self._memo) > _MEMO_ENTRIES:
                self._memo.popitem(last=False)
        return packed
