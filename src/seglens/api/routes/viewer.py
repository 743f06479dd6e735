"""Data for a client-side viewer: one image's regions, overlaps and probabilities.

The browser fetches the masks once per image and the probabilities again only when the
keywords change; thresholds, merging, mode and transparency are then recomputed in the
page (`seglens/ui/static/viewer.js`), with the rules of `seglens.core.matching`.
"""

from __future__ import annotations

import base64
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Path, Query

from seglens.api.deps import ViewDataDep
from seglens.api.errors import responses
from seglens.api.schemas import GRID_LIMIT_MARK, QUERY_TEXT_SCHEMA
from seglens.api.view_schemas import ArrayOut, DisplayMasksOut, OverlapsOut, RegionScoresOut, RegionsOut
from seglens.api.views import warning_for
from seglens.core.query import MAX_QUERY_CHARS
from seglens.core.types import GenerationParams

__all__ = ["router"]

router = APIRouter(tags=["interactive"])


def _array(values: np.ndarray, dtype: str) -> ArrayOut:
    data = np.ascontiguousarray(values, dtype=np.dtype(dtype).newbyteorder("<"))
    return ArrayOut(
        dtype=dtype,  # type: ignore[arg-type]
        shape=list(data.shape),
        data_base64=base64.b64encode(data.tobytes()).decode("ascii"),
    )


@router.get(
    "/images/{image_id}/regions",
    summary="Regions, overlaps and probabilities for a client-side viewer",
    responses=responses(400, 404, 422, 429, 503),
)
def read_regions(
    service: ViewDataDep,
    image_id: Annotated[str, Path(min_length=1, max_length=128)],
    query: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=MAX_QUERY_CHARS,
            description='Keywords; "-word" excludes.',
            json_schema_extra=QUERY_TEXT_SCHEMA,
        ),
    ] = None,
    masks: Annotated[bool, Query(description="Include masks, overlaps and the photo.")] = True,
    max_side_px: Annotated[int, Query(ge=16, le=4096, description="Longer side of the masks.")] = 1024,
    points_per_side: Annotated[
        int | None,
        Query(
            ge=GenerationParams.POINTS_PER_SIDE_MIN,
            le=GenerationParams.POINTS_PER_SIDE_MAX,
            json_schema_extra=GRID_LIMIT_MARK,
        ),
    ] = None,
) -> RegionsOut:
    """Segments the image first if it never was. With `masks=false` only the
    probabilities come back (what new keywords change)."""
    view = service.regions(
        image_id, query=query, points_per_side=points_per_side, max_side_px=max_side_px, masks=masks
    )
    scores = None
    if view.scores is not None:
        scores = RegionScoresOut(
            classes=list(view.scores.classes),
            num_keywords=view.scores.num_keywords,
            num_exclusions=view.scores.num_exclusions,
            score_kind=view.score_kind,  # type: ignore[arg-type]
            probabilities=_array(view.scores.probabilities, "float32"),
            cosines=_array(view.scores.cosines, "float32"),
        )
    display = overlaps = None
    if view.runs is not None and view.overlaps is not None and view.photo_jpeg is not None:
        height, width = view.runs.size_hw
        display = DisplayMasksOut(
            width=width,
            height=height,
            offsets=_array(view.runs.offsets, "uint32"),
            runs=_array(view.runs.runs, "uint32"),
            photo_jpeg_base64=base64.b64encode(view.photo_jpeg).decode("ascii"),
        )
        overlaps = OverlapsOut(
            first=_array(view.overlaps.first, "uint32"),
            second=_array(view.overlaps.second, "uint32"),
            intersection=_array(view.overlaps.intersection, "uint32"),
            areas=_array(view.overlaps.areas, "uint32"),
        )
    return RegionsOut(
        image_id=view.image.id,
        width=view.image.width,
        height=view.image.height,
        num_regions=view.num_regions,
        query=query,
        keywords=list(view.keywords),
        exclusions=list(view.exclusions),
        scores=scores,
        masks=display,
        overlaps=overlaps,
        timings_ms=view.timings_ms,
        meaningless=view.meaningless,
        warning=warning_for(view.meaningless),
    )
