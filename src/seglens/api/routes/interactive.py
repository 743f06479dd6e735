"""Interactive requests: query one image, refine a mask with prompts, search all regions.

`/query` and `/prompt` go ahead of batch work; the overlay comes back inline as a base64
PNG (``overlay_png_base64``), so one round trip gives everything a viewer needs.
"""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from seglens.api.deps import InteractiveDep, SearchDep
from seglens.api.errors import responses
from seglens.api.schemas import (
    QUERY_TEXT_SCHEMA,
    PromptIn,
    PromptMaskOut,
    PromptOut,
    QueryIn,
    QueryOut,
    RleOut,
    SearchHitOut,
    SearchOut,
)
from seglens.api.views import API_PREFIX, match_out, warning_for
from seglens.core.query import MAX_QUERY_CHARS

__all__ = ["router"]

router = APIRouter(tags=["interactive"])


@router.post(
    "/query",
    summary="Matches and overlay for one image, from the cache",
    responses=responses(400, 404, 422, 429, 503),
)
def query_image(service: InteractiveDep, body: QueryIn) -> QueryOut:
    """Segments the image first if it never was; afterwards every change of keywords,
    thresholds, merging or `alpha` reuses the cached regions and embeddings."""
    outcome = service.query(
        body.image_id,
        body.query,
        body.query_params(),
        alpha=body.alpha,
        points_per_side=body.points_per_side,
        overlay=body.overlay,
        overlay_max_side_px=body.overlay_max_side_px,
    )
    result, overlay = outcome.result, outcome.overlay
    return QueryOut(
        image_id=outcome.image.id,
        query=body.query,
        keywords=list(result.query.keywords),
        exclusions=list(result.query.exclusions),
        num_regions=result.num_regions,
        image_matched=result.image_matched,
        missing_keywords=list(result.missing_keywords),
        excluded_by=list(result.excluded_by),
        best_scores=dict(result.best_scores),
        matches=[match_out(m) for m in result.matches],
        timings_ms=outcome.timings_ms,
        cache_hits=outcome.cache_hits,
        overlay_png_base64=base64.b64encode(overlay.png).decode("ascii") if overlay else None,
        overlay_width=overlay.width if overlay else None,
        overlay_height=overlay.height if overlay else None,
        meaningless=outcome.meaningless,
        warning=warning_for(outcome.meaningless),
    )


@router.post(
    "/images/{image_id}/prompt",
    summary="Refine a mask from clicks and/or boxes",
    responses=responses(400, 404, 422, 429, 503),
)
def prompt_image(
    service: InteractiveDep,
    body: PromptIn,
    image_id: Annotated[str, Path(min_length=1, max_length=128)],
) -> PromptOut:
    """One mask per box, each refined by all the points; with no box, one mask from the
    points. The image is encoded once and cached; later prompts reuse it."""
    outcome = service.prompt(image_id, points=body.points, boxes=body.boxes)
    return PromptOut(
        image_id=outcome.image.id,
        masks=[
            PromptMaskOut(
                rle=RleOut(size=list(m.rle["size"]), counts=m.rle["counts"]),
                score=m.score,
                bbox_xyxy=list(m.bbox_xyxy),
                area=m.area,
            )
            for m in outcome.masks
        ],
        elapsed_ms=outcome.elapsed_ms,
        meaningless=outcome.meaningless,
        warning=warning_for(outcome.meaningless),
    )


@router.get(
    "/search",
    summary="Regions matching a query across every image processed",
    responses=responses(422, 503),
)
def search_regions(
    request: Request,
    service: SearchDep,
    query: Annotated[
        str,
        Query(
            min_length=1,
            max_length=MAX_QUERY_CHARS,
            description="Keywords, e.g. `dog` (the grammar of `POST /query`'s `query`).",
            json_schema_extra=QUERY_TEXT_SCHEMA,
        ),
    ],
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    threshold: Annotated[float, Query(ge=0.0, le=1.0, description="Minimum keyword probability.")] = 0.0,
) -> SearchOut:
    """Best first. Reads cached region embeddings only: images never segmented are not
    searched."""
    outcome = service.search(query, limit=limit, threshold=threshold)
    root = request.scope.get("root_path", "")
    return SearchOut(
        query=query,
        keywords=list(outcome.query.keywords),
        hits=[
            SearchHitOut(
                image_id=h.image.id if h.image else None,
                pixels_sha256=h.pixels_sha256,
                thumbnail_url=f"{root}{API_PREFIX}/images/{h.image.id}/thumbnail" if h.image else None,
                region_index=h.region_index,
                keyword=h.keyword,
                score=h.score,
                cosine=h.cosine,
                bbox_xyxy=list(h.bbox_xyxy),
                area=h.area,
                rle=RleOut(size=list(h.rle["size"]), counts=h.rle["counts"]),
            )
            for h in outcome.hits
        ],
        scanned_images=outcome.scanned_images,
        scanned_regions=outcome.scanned_regions,
        elapsed_ms=outcome.elapsed_ms,
        meaningless=outcome.meaningless,
        warning=warning_for(outcome.meaningless),
    )
