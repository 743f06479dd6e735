"""Interactive use cases: query one image, refine a mask with clicks or a box.

Both go ahead of batch work (`Scheduler.interactive`): a worker waits for the requests
in flight when it is about to start an image, not for later ones. A query reads the image's regions and region embeddings from the cache
and segments the image first only if it never was; changing only `alpha` re-renders and
nothing else.
"""

from __future__ import annotations

import io
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace

from PIL import Image

from seglens.core.query import parse_query
from seglens.core.types import (
    DEFAULT_ALPHA,
    GenerationParams,
    PromptResult,
    QueryParams,
    QueryResult,
    check_alpha,
)
from seglens.services.errors import InvalidInput, invalid_input
from seglens.services.history import HistoryService
from seglens.services.provider import PipelineProvider
from seglens.services.scheduler import Scheduler
from seglens.services.segment.images import ImageService
from seglens.storage.records import StoredImage

# Queries on one image in a row, each within this many seconds of the last (a slider being
# moved, keywords being tuned), are one history entry with the final settings.
QUERY_COALESCE_S = 120.0

__all__ = [
    "QUERY_COALESCE_S",
    "InteractiveService",
    "Overlay",
    "PromptOutcome",
    "QueryOutcome",
    "check_points_per_side",
]


def check_points_per_side(points_per_side: int | None, limit: int) -> None:
    """Raise `InvalidInput` for a point grid above the server's limit."""
    if points_per_side is not None and points_per_side > limit:
        raise InvalidInput(
            "invalid_params",
            f"points_per_side {points_per_side} is above this server's limit of {limit} "
            "(SEGLENS_MAX_POINTS_PER_SIDE)",
        )


@dataclass(frozen=True)
class Overlay:
    """A rendered overlay: PNG bytes and its size in pixels."""

    png: bytes
    width: int
    height: int


@dataclass(frozen=True)
class QueryOutcome:
    image: StoredImage
    result: QueryResult
    timings_ms: dict[str, float]
    cache_hits: dict[str, bool]
    overlay: Overlay | None
    meaningless: bool
    # The segmenter's own stages when it ran now (preprocess, image_encoder, mask_decoder,
    # postprocess, embed_regions); empty stages are cache hits.
    stage_timings_ms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class PromptOutcome:
    image: StoredImage
    masks: list[PromptResult]
    elapsed_ms: float
    meaningless: bool


class InteractiveService:
    def __init__(
        self,
        images: ImageService,
        provider: PipelineProvider,
        scheduler: Scheduler,
        history: HistoryService,
        *,
        models_wait_s: float,
        max_points_per_side: int = GenerationParams.POINTS_PER_SIDE_MAX,
    ):
        self.images = images
        self.provider = provider
        self.scheduler = scheduler
        self.history = history
        self.models_wait_s = models_wait_s
        self.max_points_per_side = max_points_per_side

    def query(
        self,
        image_id: str,
        query: str,
        params: QueryParams,
        *,
        alpha: float = DEFAULT_ALPHA,
        points_per_side: int | None = None,
        overlay: bool = True,
        overlay_max_side_px: int | None = None,
        record_history: bool = True,
    ) -> QueryOutcome:
        """Matches of `query` in the image and, when `overlay`, the rendered overlay
        (shrunk so its longest side is at most `overlay_max_side_px`, if given). With
        `record_history` False (the assistant reading what is on screen) the history log
        gets no entry."""
        image = self.images.get(image_id)
        with invalid_input("invalid_query"):
            parsed = parse_query(query)
        with invalid_input("invalid_params"):
            check_alpha(alpha)
        check_points_per_side(points_per_side, self.max_points_per_side)
        pipeline = self.provider.get(self.models_wait_s)
        generation = pipeline.generation
        if points_per_side is not None:
            with invalid_input("invalid_params"):
                generation = replace(generation, points_per_side=points_per_side)
        started = time.perf_counter()
        with self.scheduler.interactive():
            loaded = self.images.load(image.id)
            segmentation = pipeline.segment(loaded, generation)
            result = pipeline.match(segmentation, parsed, params)
        timings = {
            "segment": segmentation.timings_ms.get("total", 0.0),
            "match": result.elapsed_ms,
        }
        rendered = None
        if overlay:
            tick = time.perf_counter()
            picture = pipeline.render(segmentation, result, alpha=alpha)
            if overlay_max_side_px and max(picture.size) > overlay_max_side_px:
                picture.thumbnail((overlay_max_side_px, overlay_max_side_px), Image.Resampling.BILINEAR)
            buffer = io.BytesIO()
            picture.save(buffer, "PNG", compress_level=1)
            rendered = Overlay(buffer.getvalue(), picture.width, picture.height)
            timings["render"] = (time.perf_counter() - tick) * 1000
        timings["total"] = (time.perf_counter() - started) * 1000
        if record_history:
            self.history.record(
                "query",
                query=query,
                keywords=(*parsed.keywords, *parsed.exclusions),
                params={**asdict(params), "alpha": alpha, "points_per_side": points_per_side},
                image_id=image.id,
                image_count=1,
                match_count=len(result.matches),
                duration_ms=timings["total"],
                coalesce_within_s=QUERY_COALESCE_S,
            )
        return QueryOutcome(
            image=image,
            result=result,
            timings_ms=timings,
            cache_hits=dict(segmentation.cache_hits),
            overlay=rendered,
            meaningless=pipeline.meaningless,
            stage_timings_ms={
                k: v for k, v in segmentation.timings_ms.items() if k not in ("ingest", "total")
            },
        )

    def prompt(
        self,
        image_id: str,
        *,
        points: Sequence[Sequence[float]] | None = None,
        boxes: Sequence[Sequence[float]] | None = None,
    ) -> PromptOutcome:
        """One refined mask per box (or one for the points alone). Points are
        ``[x, y, label]`` with label 1 (positive) or 0 (negative), in image pixels."""
        image = self.images.get(image_id)
        if not points and not boxes:
            raise InvalidInput("invalid_prompt", "give at least one point or one box")
        pipeline = self.provider.get(self.models_wait_s)
        started = time.perf_counter()
        masks: list[PromptResult] = []
        with self.scheduler.interactive():
            loaded = self.images.load(image.id)
            with invalid_input("invalid_prompt"):
                for box in boxes or (None,):
                    masks.append(pipeline.prompt(loaded, points=points or None, box=box))
        elapsed = (time.perf_counter() - started) * 1000
        self.history.record(
            "prompt",
            params={"points": len(points or ()), "boxes": len(boxes or ())},
            image_id=image.id,
            image_count=1,
            match_count=len(masks),
            duration_ms=elapsed,
        )
        return PromptOutcome(image, masks, elapsed, pipeline.meaningless)
