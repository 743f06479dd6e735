"""A compact, stored summary of one image's query result, for the assistant's context.

A job image's stored result holds every match with its mask (COCO RLE): a few MB of JSON
per crowded image. The assistant's screen context needs none of the masks, only per
keyword counts, a score histogram, a few scores and the overlaps among the best matches.
So the job worker stores an `ImageSummary` (a few hundred bytes per keyword) with the
result when an image finishes (`summarise_item`), and the context reads the summaries
instead of the results. Items finished before summaries existed get theirs computed and
stored the first time a context needs them.

Every number here means what it means in `screen_context` (scores are keyword
probabilities in [0, 1]; a region matches when ``score >= threshold``). A summary is
computed at one threshold (the job's own) and for one set of keywords; `usable_summary`
refuses a stored summary that does not fit (another threshold, a keyword missing, an
older `SUMMARY_VERSION`), so the caller computes it again.

Overlaps: only between the `OVERLAP_TOP_K` best matches of a keyword in the image, only
for pairs whose boxes can reach `OVERLAP_IOU`, each pair one short pycocotools call
(pycocotools holds the GIL for a whole call; one big IoU matrix froze the server).
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from seglens.core.masks import rle_iou_matrix
from seglens.core.query import parse_query
from seglens.core.types import Match, QueryResult
from seglens.services.jobs import types as jobs_types

__all__ = [
    "BARELY_ABOVE_MARGIN",
    "HISTOGRAM_BINS",
    "KEEP_SCORES",
    "OVERLAP_IOU",
    "OVERLAP_TOP_K",
    "SUMMARY_VERSION",
    "ImageSummary",
    "KeywordSummary",
    "SummarisedImage",
    "summarise_item",
    "summarise_result",
    "usable_summary",
]

log = logging.getLogger(__name__)

SUMMARY_VERSION = 1  # bump when the stored format or a computed figure changes
OVERLAP_IOU = 0.3  # two matches of one keyword with mask IoU above this "overlap"
BARELY_ABOVE_MARGIN = 0.05  # a match this close over the threshold is "barely above" it
OVERLAP_TOP_K = 20  # overlaps are looked for among this many best matches per keyword and image
HISTOGRAM_BINS = 10  # match scores are counted in bins of 0.1 over [0, 1]
KEEP_SCORES = 3  # lowest match scores kept per keyword


@dataclass(frozen=True)
class KeywordSummary:
    """One keyword that matched in one image.

    - `matches`: matches after merging (at least one)
    - `lowest`: the lowest match scores, ascending (at most `KEEP_SCORES`)
    - `histogram`: match counts per score bin ``[i/10, (i+1)/10)`` (the last bin includes
      1.0), `HISTOGRAM_BINS` entries; empty without matches
    - `barely_above`: matches scoring under threshold + `BARELY_ABOVE_MARGIN`
    - `overlap_ious`: mask IoUs above `OVERLAP_IOU` among the `OVERLAP_TOP_K` best matches
    """

    matches: int = 0
    lowest: tuple[float, ...] = ()
    histogram: tuple[int, ...] = ()
    barely_above: int = 0
    overlap_ious: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "matches": self.matches,
            "lowest": list(self.lowest),
            "histogram": list(self.histogram),
            "barely_above": self.barely_above,
            "overlap_ious": list(self.overlap_ious),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KeywordSummary:
        return cls(
            matches=int(data["matches"]),
            lowest=tuple(float(v) for v in data.get("lowest", ())),
            histogram=tuple(int(v) for v in data.get("histogram", ())),
            barely_above=int(data.get("barely_above", 0)),
            overlap_ious=tuple(float(v) for v in data.get("overlap_ious", ())),
        )


@dataclass(frozen=True)
class ImageSummary:
    """One image's result in a few numbers, computed at `threshold` for `keywords` (in
    query order): `best_scores` holds each keyword's best region probability (empty when
    the image has no regions), `matched` a `KeywordSummary` per keyword that matched;
    `image_size_hw` is (height, width) in pixels; `cache_hits` says which model stages
    came from the cache."""

    threshold: float
    keywords: tuple[str, ...]
    num_regions: int
    image_size_hw: tuple[int, int]
    image_matched: bool
    best_scores: dict[str, float] = field(default_factory=dict)
    matched: dict[str, KeywordSummary] = field(default_factory=dict)
    excluded_by: tuple[str, ...] = ()
    cache_hits: dict[str, bool] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON, as stored in ``job_items.summary`` (with its `SUMMARY_VERSION`)."""
        return {
            "version": SUMMARY_VERSION,
            "threshold": self.threshold,
            "keywords": list(self.keywords),
            "num_regions": self.num_regions,
            "image_size_hw": list(self.image_size_hw),
            "image_matched": self.image_matched,
            "best_scores": dict(self.best_scores),
            "matched": {kw: s.to_dict() for kw, s in self.matched.items()},
            "excluded_by": list(self.excluded_by),
            "cache_hits": dict(self.cache_hits),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ImageSummary:
        """The inverse of `to_dict`. Raises ValueError for another version or a bad shape."""
        if not isinstance(data, Mapping) or data.get("version") != SUMMARY_VERSION:
            raise ValueError("not an image summary of this version")
        try:
            height, width = (int(v) for v in data["image_size_hw"])
            return cls(
                threshold=float(data["threshold"]),
                keywords=tuple(str(kw) for kw in data["keywords"]),
                num_regions=int(data["num_regions"]),
                image_size_hw=(height, width),
                image_matched=bool(data["image_matched"]),
                best_scores={str(kw): float(v) for kw, v in data.get("best_scores", {}).items()},
                matched={str(kw): KeywordSummary.from_dict(s) for kw, s in data.get("matched", {}).items()},
                excluded_by=tuple(str(w) for w in data.get("excluded_by", ())),
                cache_hits={str(k): bool(v) for k, v in data.get("cache_hits", {}).items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ValueError(f"a malformed image summary: {error}") from None


@dataclass(frozen=True)
class SummarisedImage:
    """One image of a context: its file name, its `summary` (None when it failed or was
    not processed; `error` and `error_code` then say why) and its per-stage timings."""

    file_name: str
    summary: ImageSummary | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    error_code: str | None = None

    @property
    def cache_hits(self) -> dict[str, bool]:
        return self.summary.cache_hits if self.summary is not None else {}


def summarise_result(
    result: QueryResult,
    *,
    keywords: Sequence[str] | None = None,
    threshold: float | None = None,
    cache_hits: Mapping[str, bool] | None = None,
) -> ImageSummary:
    """Summarise `result` for `keywords` (default: its query's) at `threshold` (default:
    its params'). Work: one pass over the matches plus at most
    ``OVERLAP_TOP_K * (OVERLAP_TOP_K - 1) / 2`` single-pair mask comparisons per keyword."""
    keywords = tuple(keywords if keywords is not None else result.query.keywords)
    threshold = float(result.params.threshold if threshold is None else threshold)
    by_keyword: dict[str, list[Match]] = {kw: [] for kw in keywords}
    for match in result.matches:
        if match.keyword in by_keyword:
            by_keyword[match.keyword].append(match)
    height, width = result.image_size_hw
    best = result.best_scores if result.num_regions else {}
    return ImageSummary(
        threshold=threshold,
        keywords=keywords,
        num_regions=int(result.num_regions),
        image_size_hw=(int(height), int(width)),
        image_matched=bool(result.image_matched),
        best_scores={kw: float(best[kw]) for kw in keywords if kw in best},
        matched={kw: _keyword_summary(found, threshold) for kw, found in by_keyword.items() if found},
        excluded_by=tuple(result.excluded_by),
        cache_hits=dict(cache_hits or {}),
    )


def _keyword_summary(matches: list[Match], threshold: float) -> KeywordSummary:
    scores = [float(m.score) for m in matches]
    histogram = [0] * HISTOGRAM_BINS
    for score in scores:
        histogram[min(HISTOGRAM_BINS - 1, max(0, int(score * HISTOGRAM_BINS)))] += 1
    edge = threshold + BARELY_ABOVE_MARGIN
    return KeywordSummary(
        matches=len(matches),
        lowest=tuple(sorted(heapq.nsmallest(KEEP_SCORES, scores))),
        histogram=tuple(histogram),
        barely_above=sum(score < edge for score in scores),
        overlap_ious=tuple(_overlaps(matches)) if len(matches) > 1 else (),
    )


def _overlaps(matches: Sequence[Match]) -> list[float]:
    """Mask IoUs above `OVERLAP_IOU` among the `OVERLAP_TOP_K` best of `matches`; a pair
    whose boxes cannot reach it (IoU <= min(box intersection, areas) / union bound) is
    never decoded, and each remaining pair is its own short pycocotools call."""
    top = sorted(matches, key=lambda m: -m.score)[:OVERLAP_TOP_K]
    boxes = np.array([m.bbox_xyxy for m in top], np.float64)
    areas = np.array([max(m.area, 1) for m in top], np.float64)
    x0 = np.maximum(boxes[:, None, 0], boxes[None, :, 0])
    y0 = np.maximum(boxes[:, None, 1], boxes[None, :, 1])
    x1 = np.minimum(boxes[:, None, 2], boxes[None, :, 2])
    y1 = np.minimum(boxes[:, None, 3], boxes[None, :, 3])
    inter_box = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    inter = np.minimum(inter_box, np.minimum(areas[:, None], areas[None, :]))
    bound = inter / np.maximum(areas[:, None] + areas[None, :] - inter, 1.0)
    first, second = np.nonzero(np.triu(bound > OVERLAP_IOU, k=1))
    found = []
    for i, j in zip(first.tolist(), second.tolist(), strict=True):
        iou = float(rle_iou_matrix([top[i].rle], [top[j].rle])[0, 0])
        if iou > OVERLAP_IOU:
            found.append(iou)
    return found


def usable_summary(
    stored: Mapping[str, Any] | None, keywords: Sequence[str], threshold: float
) -> ImageSummary | None:
    """The stored summary when it was computed at `threshold` for every one of
    `keywords` by this version; None otherwise (missing, outdated, malformed, other
    settings): the caller then summarises the stored result again."""
    if stored is None:
        return None
    try:
        summary = ImageSummary.from_dict(stored)
    except ValueError:
        return None
    if abs(summary.threshold - threshold) > 1e-12 or not set(keywords) <= set(summary.keywords):
        return None
    return summary


def summarise_item(
    result: Mapping[str, Any] | None, query: str, params: jobs_types.JobParams
) -> dict[str, Any] | None:
    """The summary to store with a job image's stored `result` (``QueryResult.to_dict``
    plus ``image`` and ``cache_hits``), for the job's `query` text and `params`;
    None without a result. Never raises: a summary that cannot be computed is logged and
    left out (the assistant computes it from the result when it needs it)."""
    if not result:
        return None
    try:
        parsed = jobs_types.result_to_query_result(dict(result), query, params)
        summary = summarise_result(
            parsed,
            keywords=parse_query(query).keywords,
            threshold=params.matching.threshold,
            cache_hits={str(k): bool(v) for k, v in dict(result.get("cache_hits") or {}).items()},
        )
        return summary.to_dict()
    except Exception:  # a summary must never stop a result from being committed
        log.exception("could not summarise the image's result")
        return None
