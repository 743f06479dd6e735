"""Scoring regions against keywords, thresholding, query-time merging and joint retrieval.

Scores are absolute per region: for each region, a probability per class from a softmax
over the query's keywords, its exclusions and a few background prompts (sigmoid per class
for SigLIP-style embedders), never a softmax across the regions of one image. So an image
with no dog in it does not "match" dog just because some region is the least unlike one.
"""

from __future__ import annotations

import time

import numpy as np

from seglens.core.masks import coarse_iou_matrix, rle_iou_matrix, rle_union
from seglens.core.types import Match, Query, QueryParams, QueryResult, Regions, RegionScores

__all__ = ["match_regions", "score_regions"]


def score_regions(
    region_embeddings: np.ndarray,
    keyword_embeddings: np.ndarray,
    exclusion_embeddings: np.ndarray,
    background_embeddings: np.ndarray,
    *,
    classes: tuple[str, ...],
    logit_scale: float,
    logit_bias: float = 0.0,
    score_kind: str = "softmax",
) -> RegionScores:
    """Per-region class probabilities.

    Embeddings are (N, D), (K, D), (E, D), (B, D) float arrays of unit rows; `classes`
    names the K + E + B columns. Returns `RegionScores` with (N, K + E + B) float32
    probabilities and cosines.
    """
    text = np.concatenate([keyword_embeddings, exclusion_embeddings, background_embeddings])
    if len(classes) != len(text):
        raise ValueError(f"{len(classes)} class names for {len(text)} text embeddings")
    if region_embeddings.ndim != 2 or (
        len(region_embeddings) and region_embeddings.shape[1] != text.shape[1]
    ):
        raise ValueError(
            f"region embeddings {region_embeddings.shape} do not match text embeddings {text.shape}"
        )
    cosines = (region_embeddings.astype(np.float32) @ text.T.astype(np.float32)).astype(np.float32)
    logits = logit_scale * cosines + logit_bias
    if score_kind == "softmax":
        logits = logits - logits.max(axis=1, keepdims=True) if len(logits) else logits
        exp = np.exp(logits)
        probabilities = exp / exp.sum(axis=1, keepdims=True) if len(exp) else exp
    elif score_kind == "sigmoid":
        probabilities = 1.0 / (1.0 + np.exp(-logits))
    else:
        raise ValueError(f"score_kind must be 'softmax' or 'sigmoid', got {score_kind!r}")
    return RegionScores(
        classes=classes,
        num_keywords=len(keyword_embeddings),
        num_exclusions=len(exclusion_embeddings),
        probabilities=probabilities.astype(np.float32),
        cosines=cosines,
    )


def match_regions(
    regions: Regions,
    scores: RegionScores,
    query: Query,
    params: QueryParams,
    overlap_masks: np.ndarray | None = None,
) -> QueryResult:
    """Decide which regions answer the query.

    1. Each region takes its best keyword; it is a candidate when that keyword's
       probability reaches `params.threshold`. A region whose best exclusion both reaches
       the threshold and beats its best keyword is an exclusion hit instead.
    2. Per keyword, overlapping candidates (mask IoU > `merge_threshold`) merge: ``nms``
       keeps the best, ``union`` fuses their masks into one region.
    3. ``any``: the image matches if any keyword matched. ``all``: only if every keyword
       matched. Any exclusion hit means the image does not match. Matches are reported in
       both cases, best first, so a screen can show why.

    `overlap_masks` (N, h, w) from `coarse_masks` makes the merging IoUs a matrix product
    on a coarse grid (milliseconds); without it they are exact RLE IoUs, which cost about
    0.1 ms per pair of full-size masks.
    """
    started = time.perf_counter()
    n = len(regions)
    k, e = scores.num_keywords, scores.num_exclusions
    if k != len(query.keywords) or e != len(query.exclusions):
        raise ValueError("scores were computed for a different query")
    if scores.probabilities.shape[0] != n:
        raise ValueError(f"{scores.probabilities.shape[0]} score rows for {n} regions")

    probs = scores.probabilities
    keyword_probs = probs[:, :k]
    best_scores = {kw: float(keyword_probs[:, i].max()) if n else 0.0 for i, kw in enumerate(query.keywords)}
    matches: list[Match] = []
    excluded_by: list[str] = []
    if n:
        best_kw = keyword_probs.argmax(axis=1)
        best_p = keyword_probs[np.arange(n), best_kw]
        is_exclusion = np.zeros(n, dtype=bool)
        if e:
            excl_probs = probs[:, k : k + e]
            best_excl = excl_probs.argmax(axis=1)
            best_excl_p = excl_probs[np.arange(n), best_excl]
            is_exclusion = (best_excl_p >= params.threshold) & (best_excl_p > best_p)
            excluded_by = [query.exclusions[j] for j in sorted(set(best_excl[is_exclusion].tolist()))]
        candidate = (best_p >= params.threshold) & ~is_exclusion
        for kw_index, keyword in enumerate(query.keywords):
            members = np.flatnonzero(candidate & (best_kw == kw_index))
            matches.extend(_merge(regions, scores, members, kw_index, keyword, params, overlap_masks))
    matches.sort(key=lambda m: -m.score)

    found = {m.keyword for m in matches}
    missing = tuple(kw for kw in query.keywords if kw not in found)
    matched = bool(found) if params.mode == "any" else not missing
    matched = matched and not excluded_by
    return QueryResult(
        query=query,
        params=params,
        image_size_hw=regions.image_size_hw,
        num_regions=n,
        matches=tuple(matches),
        image_matched=matched,
        missing_keywords=missing,
        excluded_by=tuple(excluded_by),
        best_scores=best_scores,
        elapsed_ms=(time.perf_counter() - started) * 1000,
    )


def _merge(
    regions: Regions,
    scores: RegionScores,
    members: np.ndarray,
    kw_index: int,
    keyword: str,
    params: QueryParams,
    overlap_masks: np.ndarray | None,
) -> list[Match]:
    if members.size == 0:
        return []
    probs = scores.probabilities[members, kw_index]
    order = members[np.argsort(-probs, kind="stable")]
    rles = [regions.rles[i] for i in order]
    if len(order) == 1:
        iou = np.ones((1, 1))
    elif overlap_masks is not None:
        iou = coarse_iou_matrix(overlap_masks[order])
    else:
        iou = rle_iou_matrix(rles, rles)
    taken = np.zeros(len(order), dtype=bool)
    out: list[Match] = []
    for seed in range(len(order)):
        if taken[seed]:
            continue
        group = np.flatnonzero(~taken & (iou[seed] > params.merge_threshold))
        group = np.union1d(group, [seed])
        taken[group] = True
        indices = order[group] if params.merge_strategy == "union" else order[[seed]]
        out.append(_make_match(regions, scores, indices, int(order[seed]), kw_index, keyword))
    return out


def _make_match(
    regions: Regions,
    scores: RegionScores,
    indices: np.ndarray,
    best: int,
    kw_index: int,
    keyword: str,
) -> Match:
    if len(indices) == 1:
        rle = regions.rles[best]
        box = tuple(float(v) for v in regions.boxes_xyxy[best])
        area = int(regions.areas[best])
    else:
        from seglens.core.masks import rle_areas, rle_boxes_xyxy

        rle = rle_union([regions.rles[i] for i in indices])
        box = tuple(float(v) for v in rle_boxes_xyxy([rle])[0])
        area = int(rle_areas([rle])[0])
    ordered = (best, *sorted(int(i) for i in indices if int(i) != best))
    return Match(
        keyword=keyword,
        score=float(scores.probabilities[best, kw_index]),
        cosine=float(scores.cosines[best, kw_index]),
        rle=rle,
        bbox_xyxy=box,  # type: ignore[arg-type]
        area=area,
        region_indices=ordered,
    )
