"""What the user is looking at, in numbers: the assistant's screen context.

`build_context` turns query results (one image or a whole job) into a compact, JSON-able
`ScreenContext`: per keyword the match counts, a histogram of the match scores, the best
scores just below and just above the threshold, the image holding the best score, and
the overlaps among matches; region counts, image sizes, stage timings, the device and the
failures. Pure: no I/O, no model.

Bounded work and size, whatever the job: one pass over the images, each reduced to an
`ImageSummary` (see `item_summary`: per keyword counts, a histogram, a few scores and the
overlaps among its `OVERLAP_TOP_K` best matches, each mask comparison one small
pycocotools call, never one big IoU matrix that holds the GIL for seconds). Overlaps are
counted in at most `OVERLAP_MAX_IMAGES` images per keyword. A job's images come as
`SummarisedImage`s, summarised when they finished, so no mask is decoded at all.

Scores are keyword probabilities in [0, 1]; a region matches when ``score >= threshold``,
and two matches of one keyword merge when their mask IoU is ``> merge_threshold``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypedDict

import numpy as np

from seglens.core.exports import ImageRecord
from seglens.core.types import Query, QueryParams, QueryResult
from seglens.services.jobs.summary import (
    BARELY_ABOVE_MARGIN,
    HISTOGRAM_BINS,
    KEEP_SCORES,
    OVERLAP_IOU,
    OVERLAP_TOP_K,
    KeywordSummary,
    SummarisedImage,
    summarise_result,
)

if TYPE_CHECKING:
    from seglens.services.segment.pipeline import Pipeline

__all__ = [
    "BARELY_ABOVE_MARGIN",
    "HISTOGRAM_BINS",
    "OVERLAP_IOU",
    "OVERLAP_MAX_IMAGES",
    "OVERLAP_TOP_K",
    "PROPOSER_STAGES",
    "Failure",
    "KeywordStats",
    "PipelineFacts",
    "ScreenContext",
    "build_context",
    "pipeline_facts",
]

OVERLAP_MAX_IMAGES = 50  # overlaps are counted in at most this many images per keyword
PROPOSER_STAGES = ("preprocess", "image_encoder", "mask_decoder", "postprocess")

_KEEP_FAILURES = 5


@dataclass(frozen=True)
class KeywordStats:
    """One keyword over every image of the context.

    - `matches`: matches after merging; `images_matched`: images with at least one
    - `best_score`: best region probability anywhere (None without regions), found in
      the image named `best_image` (its file name)
    - `best_below`: per-image best scores of images where it did not match, highest first
      (at most 3), i.e. the scores just under the threshold
    - `lowest_matches`: the lowest match scores, ascending (at most 3), i.e. the scores just
      above the threshold; `barely_above`: matches scoring under threshold + 0.05
    - `score_histogram`: match counts per score bin ``[i/10, (i+1)/10)`` (the last bin
      includes 1.0), `HISTOGRAM_BINS` entries; empty without matches
    - `overlapping_pairs`: pairs of its matches in one image with mask IoU > 0.3 (among
      each image's `OVERLAP_TOP_K` best matches), whose IoUs span [`overlap_iou_min`,
      `overlap_iou_max`]
    - `max_matches_per_image`: the most matches in one image
    """

    keyword: str
    matches: int = 0
    images_matched: int = 0
    best_score: float | None = None
    best_image: str | None = None
    best_below: tuple[float, ...] = ()
    lowest_matches: tuple[float, ...] = ()
    barely_above: int = 0
    score_histogram: tuple[int, ...] = ()
    overlapping_pairs: int = 0
    overlap_iou_min: float | None = None
    overlap_iou_max: float | None = None
    max_matches_per_image: int = 0

    def matches_at_or_above(self, threshold: float) -> int | None:
        """How many of the current matches score at least `threshold`, when the histogram
        and the lowest scores can tell exactly (a threshold on a bin edge, or under every
        match); None otherwise."""
        if not self.score_histogram:
            return 0
        if self.lowest_matches and threshold <= self.lowest_matches[0]:
            return self.matches
        edge = threshold * HISTOGRAM_BINS
        if abs(edge - round(edge)) < 1e-9:
            return int(sum(self.score_histogram[round(edge) :]))
        return None


@dataclass(frozen=True)
class Failure:
    file_name: str
    code: str | None
    message: str


@dataclass(frozen=True)
class ScreenContext:
    """A compact, JSON-able summary of one image or one job, for the advisor and the LLM.

    `params` are the query settings the results were computed with; `subject_name` is the
    image's file name (image scope) or the job's name when it has one. `timings_ms` are
    per-image means over the images that ran that stage (cache hits skip the model
    stages); `largest_image_hw` is (height, width). Its size does not grow with the
    number of images or matches (at most 32 keywords, 5 failures, fixed-size stats).
    """

    scope: Literal["image", "job"]
    keywords: tuple[str, ...]
    exclusions: tuple[str, ...] = ()
    params: QueryParams = field(default_factory=QueryParams)
    subject_id: str | None = None
    subject_name: str | None = None
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

    @property
    def threshold(self) -> float:
        return self.params.threshold

    @property
    def merge_threshold(self) -> float:
        return self.params.merge_threshold

    def stats_for(self, keyword: str) -> KeywordStats | None:
        return next((s for s in self.keyword_stats if s.keyword == keyword), None)

    @property
    def mask_generation_ms(self) -> float | None:
        """Mean SAM time per image that ran SAM (sum of its stages), None if none did."""
        stages = [self.timings_ms[s] for s in PROPOSER_STAGES if s in self.timings_ms]
        return sum(stages) if stages else None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data: the query settings flattened in (``threshold``,
        ``merge_threshold``, ``mode``, ``merge_strategy``), floats rounded to 3 decimals,
        empty and None fields left out."""
        data = asdict(self)
        params = data.pop("params")
        return _compact({"scope": data.pop("scope"), "keywords": data.pop("keywords"), **params, **data})


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
    images: Sequence[ImageRecord | QueryResult | SummarisedImage],
    *,
    query: Query | None = None,
    params: QueryParams | None = None,
    scope: Literal["image", "job"] | None = None,
    subject_id: str | None = None,
    subject_name: str | None = None,
    points_per_side: int | None = None,
    profile: str | None = None,
    embedder: str | None = None,
    embedder_language: str | None = None,
    meaningless: bool = False,
    device: str | None = None,
    images_total: int | None = None,
) -> ScreenContext:
    """Summarise query results into a `ScreenContext`, in time linear in the images and
    matches (see the module's note on overlaps); from `SummarisedImage`s (stored
    summaries) in time linear in the images alone, no mask decoded.

    `images` are the processed images (an `ImageRecord` carries its file name, timings and
    failures; a bare `QueryResult` counts as one successful image named ``image-<n>``; a
    `SummarisedImage` must have been summarised for `query`'s keywords at `params`'
    threshold). `query` and `params` default to those of the first result (give them
    with summaries); `scope` to ``image`` for one input, else ``job``; `subject_name` for
    an image to its file name; `images_total` (e.g. a job's size, pending images
    included) to ``len(images)``.
    """
    results = [r.result if isinstance(r, ImageRecord) else r for r in images]
    first = next((r for r in results if isinstance(r, QueryResult)), None)
    query = query or (first.query if first is not None else Query(()))
    params = params or (first.params if first is not None else QueryParams())
    records = [_summarised(r, i, query, params) for i, r in enumerate(images)]
    done = [r.summary for r in records if r.summary is not None]
    failed = [r for r in records if r.summary is None and r.error]
    scope = scope or ("image" if len(records) == 1 else "job")
    if subject_name is None and scope == "image" and len(records) == 1:
        subject_name = records[0].file_name

    sizes = [s.image_size_hw for s in done]
    largest = max(sizes, key=lambda hw: hw[0] * hw[1]) if sizes else None
    regions = [s.num_regions for s in done]
    exclusion_hits: dict[str, int] = {}
    for summary in done:
        for word in summary.excluded_by:
            exclusion_hits[word] = exclusion_hits.get(word, 0) + 1

    stage_totals: dict[str, list[float]] = {}
    for record in records:
        for stage, ms in record.timings_ms.items():
            stage_totals.setdefault(stage, []).append(float(ms))

    return ScreenContext(
        scope=scope,
        keywords=query.keywords,
        exclusions=query.exclusions,
        params=params,
        subject_id=subject_id,
        subject_name=subject_name,
        points_per_side=points_per_side,
        profile=profile,
        embedder=embedder,
        embedder_language=embedder_language,
        meaningless=meaningless,
        device=device,
        images_total=images_total if images_total is not None else len(records),
        images_done=len(done),
        images_matched=sum(s.image_matched for s in done),
        images_failed=len(failed),
        regions_mean=float(np.mean(regions)) if regions else 0.0,
        regions_max=max(regions, default=0),
        keyword_stats=_all_keyword_stats(query.keywords, records),
        exclusion_hits=exclusion_hits,
        largest_image_hw=(int(largest[0]), int(largest[1])) if largest else None,
        mean_megapixels=float(np.mean([h * w for h, w in sizes]) / 1e6) if sizes else 0.0,
        timings_ms={stage: float(np.mean(values)) for stage, values in stage_totals.items()},
        cache_hit_images=sum(bool(r.cache_hits) and all(r.cache_hits.values()) for r in records),
        failures=tuple(Failure(r.file_name, r.error_code, r.error or "") for r in failed[:_KEEP_FAILURES]),
    )


def _summarised(
    image: ImageRecord | QueryResult | SummarisedImage, n: int, query: Query, params: QueryParams
) -> SummarisedImage:
    if isinstance(image, SummarisedImage):
        return image
    record = image if isinstance(image, ImageRecord) else ImageRecord(f"image-{n + 1}", result=image)
    summary = None
    if record.result is not None:
        summary = summarise_result(
            record.result, keywords=query.keywords, threshold=params.threshold, cache_hits=record.cache_hits
        )
    return SummarisedImage(record.file_name, summary, record.timings_ms, record.error, record.error_code)


@dataclass
class _Tally:
    """One keyword's running totals while `build_context` walks the images once."""

    matches: int = 0
    images_matched: int = 0
    most: int = 0
    best: float | None = None
    best_image: str | None = None
    below: list[float] = field(default_factory=list)
    lowest: list[float] = field(default_factory=list)
    barely: int = 0
    histogram: list[int] = field(default_factory=lambda: [0] * HISTOGRAM_BINS)
    pairs: int = 0
    ious: list[float] = field(default_factory=list)
    overlap_images: int = 0


def _all_keyword_stats(
    keywords: Sequence[str], records: Sequence[SummarisedImage]
) -> tuple[KeywordStats, ...]:
    tallies = {kw: _Tally() for kw in keywords}
    for record in records:
        summary = record.summary
        if summary is None:
            continue
        for keyword, tally in tallies.items():
            _add_image(
                tally, record.file_name, summary.best_scores.get(keyword), summary.matched.get(keyword)
            )
    return tuple(_stats(kw, tallies[kw]) for kw in keywords)


def _add_image(tally: _Tally, name: str, score: float | None, image: KeywordSummary | None) -> None:
    if score is not None and (tally.best is None or score > tally.best):
        tally.best, tally.best_image = score, name
    if image is None or not image.matches:
        if score is not None:
            tally.below = sorted([*tally.below, score], reverse=True)[:KEEP_SCORES]
        return
    tally.matches += image.matches
    tally.images_matched += 1
    tally.most = max(tally.most, image.matches)
    tally.lowest = sorted([*tally.lowest, *image.lowest])[:KEEP_SCORES]
    for i, count in enumerate(image.histogram):
        tally.histogram[i] += count
    tally.barely += image.barely_above
    if image.matches > 1 and tally.overlap_images < OVERLAP_MAX_IMAGES:
        tally.overlap_images += 1
        tally.pairs += len(image.overlap_ious)
        tally.ious.extend(image.overlap_ious)


def _stats(keyword: str, tally: _Tally) -> KeywordStats:
    return KeywordStats(
        keyword=keyword,
        matches=tally.matches,
        images_matched=tally.images_matched,
        best_score=tally.best,
        best_image=tally.best_image,
        best_below=tuple(tally.below),
        lowest_matches=tuple(tally.lowest),
        barely_above=tally.barely,
        score_histogram=tuple(int(v) for v in tally.histogram) if tally.matches else (),
        overlapping_pairs=tally.pairs,
        overlap_iou_min=min(tally.ious) if tally.ious else None,
        overlap_iou_max=max(tally.ious) if tally.ious else None,
        max_matches_per_image=tally.most,
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
