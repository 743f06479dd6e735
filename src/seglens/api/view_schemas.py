"""Response body of ``GET /api/v1/images/{id}/regions``: everything a client-side viewer
needs to redo ``/query``'s matching and paint it without asking again.

Arrays travel as base64 of little-endian raw bytes (`ArrayOut`), a few megabytes for an
image with a thousand regions instead of tens as JSON numbers.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from seglens.api.schemas import _Out

__all__ = ["ArrayOut", "DisplayMasksOut", "OverlapsOut", "RegionScoresOut", "RegionsOut"]


class ArrayOut(_Out):
    dtype: Literal["uint32", "float32"] = Field(description="Little-endian element type.")
    shape: list[int]
    data_base64: str = Field(description="The raw bytes, C order, base64.")


class RegionScoresOut(_Out):
    classes: list[str] = Field(description="Keywords, then exclusions, then background prompts.")
    num_keywords: int
    num_exclusions: int
    score_kind: Literal["softmax", "sigmoid"]
    probabilities: ArrayOut = Field(description="(N, C) float32: what `/query` thresholds.")
    cosines: ArrayOut = Field(description="(N, C) float32 raw cosine similarities.")


class DisplayMasksOut(_Out):
    width: int
    height: int
    format: Literal["row-major-runs"] = "row-major-runs"
    offsets: ArrayOut = Field(
        description="(N + 1,) uint32: region i's runs are runs[offsets[i]:offsets[i+1]]."
    )
    runs: ArrayOut = Field(
        description="uint32 run lengths over the row-major display grid, alternating outside and "
        "inside, starting with outside (possibly 0)."
    )
    photo_jpeg_base64: str = Field(description="The image at this size.")


class OverlapsOut(_Out):
    """Coarse-mask overlaps: IoU(i, j) = inter / (areas[i] + areas[j] - inter), in float64,
    is exactly the value `/query` compares with `merge_threshold`; absent pairs have IoU 0."""

    first: ArrayOut
    second: ArrayOut
    intersection: ArrayOut
    areas: ArrayOut


class RegionsOut(_Out):
    image_id: str
    width: int
    height: int
    num_regions: int
    query: str | None
    keywords: list[str]
    exclusions: list[str]
    scores: RegionScoresOut | None = Field(description="null without a query.")
    masks: DisplayMasksOut | None = Field(description="null unless masks=true.")
    overlaps: OverlapsOut | None = Field(description="null unless masks=true.")
    timings_ms: dict[str, float]
    meaningless: bool
    warning: str | None
