"""What the user is looking at, in numbers: the assistant's screen context.

`build_context` turns query results (one image or a whole job) into a compact, JSON-able
`ScreenContext`: per keyword the match counts, the best scores just below and just above
the threshold and the overlaps among matches; region counts, image sizes, stage timings,
the device and the failures. Pure: no I/O, no model.

Scores are keyword probabilities in [0, 1]; a region matches when ``score >= threshold``,
and two matches of one keyword merge when their mask IoU is ``> merge_threshold``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypedDict

import numpy as np

from seglens.core.exports import ImageRecord
from seglens.core.masks import rle_iou_matrix
from seglens.core.types import Query, QueryParams, QueryResult

if TYPE_CHECKING:
    from seglens.services.pipeline import Pipeline

__all__ = [
    "BARELY_ABOVE_MARGIN",
    "OVERLAP_IOU",
    "PROPOSER_STAGES",
    "Failure",
    "KeywordStats",
    "PipelineFacts",
    "ScreenContext",
    "build_context",
    "pipeline_facts",
]

OVERLAP_IOU = 0.3  # two matches of one keyword with mask IoU above this "overlap"
BARELY_ABOVE_MARGIN = 0.05  # a match this close over the threshold is "barely above" it
PROPOSER_STAGES = ("preprocess", "image_encoder", "mask_decoder", "postprocess")
_KEEP_SCORES = 3
_KEEP_FAILURES = 5


@dataclass(frozen=True)
class KeywordStats:
    """One keyword over every image of the context.

    - `matches`: matches after merging; `images_matched`: images with at least one
    - `best_score`: best region probability anywhere (None without regions)
    - `best_below`: per-image best scores of images where it did not match, highest first
      (at most 3), i.e. the scores just under the threshold
    - `lowest_matches`: the lowest match scores, ascending (at most 3), i.e. the scores just
      above the threshold; `barely_above`: matches scoring under threshold + 0.05
    - `overlapping_pairs`: pairs of its matches in one image with mask IoU > 0.3, whose
      IoUs span [`overlap_iou_min`, `overlap_iou_max`]
    - `max_matches_per_image`: the most matches in one image
    """

    keyword: str
    matches: int = 0
    images_matched: int = 0
    best_score: float | None = None
    best_below: tuple[float, ...] = ()
    lowest_matches: tuple[float, ...] = ()
    barely_above: int = 0
    overlapping_pairs: int = 0
    overlap_iou_min: float | None = None
    overlap_iou_max: float | None = None
    max_matches_per_image: int = 0


@dataclass(frozen=True)
class Failure:
    file_name: str
    code: str | None
    message: str


@dataclass(frozen=True)
class ScreenContext:
    """A compact, JSON-able summary of one image or one job, for the advisor and the LLM.

    Thresholds in [0, 1]; `timings_ms` are per-image means over the images that ran that
    stage (cache hits skip the model stages); `largest_image_hw` is (height, width).
    """

    scope: Literal["image", "job"]
    keywords: tuple[str, ...]
    exclusions: tuple[str, ...] = ()
    threshold: float = 0.5
    merge_threshold: float = 0.7
    mode: str = "any"
    merge_strategy: str = "nms"
    subject_id: str | None = None
    points_per_side: int | None = None
    profile: str | None = None
    embedder: str | None = None
    embedder_language: str | None = None
    meaningless: bool = False
    device: str | None = None
    images_total: int = 0
    images_done: int = 0
    images_matched: int = 0
    images_failed: int = 0
    regions_mean: float = 0.0
    regions_max: int = 0
    keyword_stats: tuple[KeywordStats, ...] = ()
    exclusion_hits: dict[str, int] = field(default_factory=dict)
    largest_image_hw: tuple[int, int] | None = None
    mean_megapixels: float = 0.0
    timings_ms: dict[str, float] = field(default_factory=dict)
    cache_hit_images: int = 0
    failures: tuple[Failure, ...] = ()

    def stats_for(self, keyword: str) -> KeywordStats | None:
        return next((s for s in self.keyword_stats if s.keyword == keyword), None)

    @property
    def mask_generation_ms(self) -> float | None:
        """Mean SAM time per image that ran SAM (sum of its stages), None if none did."""
        stages = [self.timings_ms[s] for s in PROPOSER_STAGES if s in self.timings_ms]
        return sum(stages) if stages else None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data: floats rounded to 3 decimals, empty and None fields left out."""
        return _compact(asdict(self))


def _compact(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, dict):
        items = ((k, _compact(v)) for k, v in value.items())
        return {k: v for k, v in items if v not in (None, (), [], {}, "")}
    if isinstance(value, (list, tuple)):
        return [_compact(v) for v in value]
    return value


def build_context(
    images: Sequence[ImageRecord | QueryResult],
    *,
    query: Query | None = None,
    params: QueryParams | None = None,
    scope: Literal["image", "job"] | None = None,
    subject_id: str | None = None,
    points_per_side: int | None = None,
    profile: str | None = None,
    embedder: str | None = None,
    embedder_language: str | None = None,
    meaningless: bool = False,
    device: str | None = None,
    images_total: int | None = None,
) -> ScreenContext:
    """Summarise query results into a `ScreenContext`.

    `images` are the processed images (an `ImageRecord` carries timings and failures; a
    bare `QueryResult` counts as one successful image). `query` and `params` default to
    those of the first result; `scope` to ``image`` for one input, else ``job``;
    `images_total` (e.g. a job's size, pending images included) to ``len(images)``.
    """
    records = [
        r if isinstance(r, ImageRecord) else ImageRecord(f"image-{i + 1}", result=r)
        for i, r in enumerate(images)
    ]
    results = [r.result for r in records if r.result is not None]
    query = query or (results[0].query if results else Query(()))
    params = params or (results[0].params if results else QueryParams())
    failed = [r for r in records if r.result is None and r.error]

    sizes = [r.result.image_size_hw for r in records if r.result is not None]
    largest = max(sizes, key=lambda hw: hw[0] * hw[1]) if sizes else None
    regions = [res.num_regions for res in results]
    exclusion_hits: dict[str, int] = {}
    for res in results:
        for word in res.excluded_by:
            exclusion_hits[word] = exclusion_hits.get(word, 0) + 1

    stage_totals: dict[str, list[float]] = {}
    for record in records:
        for stage, ms in record.timings_ms.items():
            stage_totals.setdefault(stage, []).append(float(ms))

    return ScreenContext(
        scope=scope or ("image" if len(records) == 1 else "job"),
        keywords=query.keywords,
        exclusions=query.exclusions,
        threshold=params.threshold,
        merge_threshold=params.merge_threshold,
        mode=params.mode,
        merge_strategy=params.merge_strategy,
        subject_id=subject_id,
        points_per_side=points_per_side,
        profile=profile,
        embedder=embedder,
        embedder_language=embedder_language,
        meaningless=meaningless,
        device=device,
        images_total=images_total if images_total is not None else len(records),
        images_done=len(results),
        images_matched=sum(res.image_matched for res in results),
        images_failed=len(failed),
        regions_mean=float(np.mean(regions)) if regions else 0.0,
        regions_max=max(regions, default=0),
        keyword_stats=tuple(_keyword_stats(kw, results, params.threshold) for kw in query.keywords),
        exclusion_hits=exclusion_hits,
        largest_image_hw=(int(largest[0]), int(largest[1])) if largest else None,
        mean_megapixels=float(np.mean([h * w for h, w in sizes]) / 1e6) if sizes else 0.0,
        timings_ms={stage: float(np.mean(values)) for stage, values in stage_totals.items()},
        cache_hit_images=sum(bool(r.cache_hits) and all(r.cache_hits.values()) for r in records),
        failures=tuple(Failure(r.file_name, r.error_code, r.error or "") for r in failed[:_KEEP_FAILURES]),
    )


def _keyword_stats(keyword: str, results: Sequence[QueryResult], threshold: float) -> KeywordStats:
    match_scores: list[float] = []
    below: list[float] = []
    best: float | None = None
    images_matched = most = pairs = 0
    ious: list[float] = []
    for result in results:
        if result.num_regions and keyword in result.best_scores:
            score = result.best_scores[keyword]
            best = score if best is None else max(best, score)
        matches = [m for m in result.matches if m.keyword == keyword]
        if matches:
            images_matched += 1
            most = max(most, len(matches))
            match_scores.extend(m.score for m in matches)
            if len(matches) > 1:
                iou = rle_iou_matrix([m.rle for m in matches], [m.rle for m in matches])
                upper = iou[np.triu_indices(len(matches), k=1)]
                overlapping = upper[upper > OVERLAP_IOU]
                pairs += int(overlapping.size)
                ious.extend(float(v) for v in overlapping)
        elif result.num_regions and keyword in result.best_scores:
            below.append(result.best_scores[keyword])
    return KeywordStats(
        keyword=keyword,
        matches=len(match_scores),
        images_matched=images_matched,
        best_score=best,
        best_below=tuple(sorted(below, reverse=True)[:_KEEP_SCORES]),
        lowest_matches=tuple(sorted(match_scores)[:_KEEP_SCORES]),
        barely_above=sum(s < threshold + BARELY_ABOVE_MARGIN for s in match_scores),
        overlapping_pairs=pairs,
        overlap_iou_min=min(ious) if ious else None,
        overlap_iou_max=max(ious) if ious else None,
        max_matches_per_image=most,
    )


class PipelineFacts(TypedDict, total=False):
    """The `build_context` keyword arguments a `Pipeline` can answer."""

    profile: str | None
    embedder: str
    embedder_language: str
    meaningless: bool
    points_per_side: int
    device: str | None


def pipeline_facts(pipeline: Pipeline) -> PipelineFacts:
    """Profile, embedder id and language, tiny flag, point grid and device of `pipeline`,
    for ``build_context(records, **pipeline_facts(pipe))``. Loads nothing."""
    config = getattr(pipeline.proposer, "device", None)
    device = getattr(config, "device", None)
    return PipelineFacts(
        profile=pipeline.profile,
        embedder=pipeline.embedder.model_id,
        embedder_language=pipeline.embedder.language,
        meaningless=pipeline.meaningless,
        points_per_side=pipeline.generation.points_per_side,
        device=str(device).split(":")[0] if device else None,
    )
