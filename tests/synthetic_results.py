"""Synthetic query results with known numbers, for the advisor and assistant tests."""

from __future__ import annotations

import numpy as np

from seglens.core.masks import encode_mask
from seglens.core.types import Match, Query, QueryParams, QueryResult

H, W = 100, 120


def match_of(keyword: str, score: float, box: tuple[int, int, int, int] = (0, 0, 10, 10)) -> Match:
    """A match of `keyword` scoring `score` whose mask fills `box` (x0, y0, x1, y1) of a
    100x120 image."""
    x0, y0, x1, y1 = box
    mask = np.zeros((H, W), bool)
    mask[y0:y1, x0:x1] = True
    return Match(keyword, float(score), 0.3, encode_mask(mask), (x0, y0, x1, y1), int(mask.sum()), (0,))


def query_result(
    keywords: tuple[str, ...],
    matches: list[Match],
    best: dict[str, float] | None = None,
    *,
    threshold: float = 0.5,
    merge_threshold: float = 0.7,
    exclusions: tuple[str, ...] = (),
    excluded_by: tuple[str, ...] = (),
    regions: int = 40,
    size_hw: tuple[int, int] = (H, W),
) -> QueryResult:
    """A result whose best score per keyword is its best match, or `best[keyword]` (the
    best region score of a keyword that did not match)."""
    scores = {kw: max((m.score for m in matches if m.keyword == kw), default=0.0) for kw in keywords}
    scores.update(best or {})
    found = {m.keyword for m in matches}
    return QueryResult(
        query=Query(keywords, exclusions),
        params=QueryParams(threshold, merge_threshold),
        image_size_hw=size_hw,
        num_regions=regions,
        matches=tuple(sorted(matches, key=lambda m: -m.score)),
        image_matched=bool(found) and not excluded_by,
        missing_keywords=tuple(k for k in keywords if k not in found),
        excluded_by=excluded_by,
        best_scores=scores,
    )
