"""Request and response bodies of the HTTP API (the OpenAPI schema at ``/docs``).

Conventions: ids are strings; times are ISO 8601 UTC; boxes are ``bbox_xyxy`` pixel
coordinates ``[x0, y0, x1, y1]`` with exclusive right/bottom edges; masks are COCO
compressed RLE (``size`` is ``[height, width]``); durations are ``*_ms`` milliseconds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, StrictBool

from seglens.core.query import (
    KEYWORD_PRESENT_PATTERN,
    MAX_KEYWORD_CHARS,
    MAX_KEYWORDS,
    MAX_QUERY_CHARS,
    QUERY_PATTERN,
)
from seglens.core.types import (
    ALPHA_RANGE,
    DEFAULT_ALPHA,
    GenerationParams,
    MatchMode,
    MergeStrategy,
    QueryParams,
)
from seglens.services.jobs.types import JobParams

__all__ = [
    "ErrorBody",
    "ErrorResponse",
    "HealthOut",
    "HistoryClearedOut",
    "HistoryEntryOut",
    "HistoryPage",
    "ImageOut",
    "JobCreate",
    "JobEventOut",
    "JobOut",
    "JobPage",
    "JobParamsIn",
    "JobParamsOut",
    "JobStatsOut",
    "LivenessOut",
    "LoadingOut",
    "MatchOut",
    "PromptIn",
    "PromptOut",
    "QueryIn",
    "QueryOut",
    "QuerySettings",
    "ResultOut",
    "ResultPage",
    "RleOut",
    "SearchOut",
    "UploadOut",
]


def _integral(value: object) -> object:
    # JSON Schema's `integer` is any number without a fractional part: 8.0 is 8.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# JSON bodies are validated strictly: `true` is not 1 and "0.5" is not 0.5 (but 8.0 is 8).
Coordinate = Annotated[float, Strict(), Field(allow_inf_nan=False, ge=-1e6, le=1e6)]
# `x-server-limit`: the app writes this server's SEGLENS_MAX_POINTS_PER_SIDE into `maximum`
# (`seglens.api.openapi`), the limit the services enforce.
GRID_LIMIT_MARK = {"x-server-limit": "max_points_per_side"}
GridSide = Annotated[
    int,
    Strict(),
    Field(
        ge=GenerationParams.POINTS_PER_SIDE_MIN,
        le=GenerationParams.POINTS_PER_SIDE_MAX,
        json_schema_extra=GRID_LIMIT_MARK,
    ),
    BeforeValidator(_integral),
]
OverlaySide = Annotated[int, Strict(), Field(ge=16, le=16384), BeforeValidator(_integral)]
ImageId = Annotated[str, Field(min_length=1, max_length=128, description="sha256 of the file's bytes")]
# The query's grammar (core `parse_query`) as JSON Schema: the terms, their lengths and
# number, no control characters, and at least one keyword.
QUERY_TEXT_SCHEMA: dict[str, Any] = {
    "pattern": QUERY_PATTERN,
    "allOf": [{"pattern": KEYWORD_PRESENT_PATTERN}],
}
QueryText = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_QUERY_CHARS,
        description='Keywords, separated by commas, semicolons or line breaks; "-word" excludes. '
        f"At most {MAX_KEYWORDS} terms of at most {MAX_KEYWORD_CHARS} characters, at least one "
        "keyword, no control characters.",
        json_schema_extra=QUERY_TEXT_SCHEMA,
    ),
]


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- errors --------------------------------------------------------------------------------
class ErrorBody(_Out):
    code: str = Field(description="Stable machine-readable reason, e.g. `job_not_found`.")
    message: str = Field(description="One human sentence.")
    details: list[dict[str, Any]] | None = Field(
        default=None, description="Per-field or per-file problems, when there are several."
    )


class ErrorResponse(_Out):
    error: ErrorBody


# -- health --------------------------------------------------------------------------------
class QueueOut(_Out):
    depth: int = Field(description="Images waiting or in flight across queued and running jobs.")
    jobs: dict[str, int] = Field(description="Number of jobs per status.")
    workers: int
    in_flight: int
    interactive_in_flight: int


class LoadingOut(_Out):
    name: str = Field(description="The model on its way in.")
    phase: Literal["checking", "downloading", "building", "loading"] = Field(
        description="`checking` the hub, `downloading` its files, `building` it locally (tiny), "
        "`loading` it into memory."
    )
    bytes_done: int = Field(description="Bytes of this download written so far.")
    bytes_total: int | None = Field(description="Bytes this download writes in all; null until known.")


class HealthOut(_Out):
    status: Literal["idle", "loading", "ready", "error"] = Field(
        description="`ready` once the models are loaded; `error` with `load_error` if they cannot be."
    )
    version: str
    profile: str
    models: dict[str, str] | None
    device: str
    backend: str = Field(
        default="torch", description="What runs the forward passes: torch or onnx (ONNX Runtime)."
    )
    meaningless: bool = Field(
        description="True for the `tiny` profile: random weights, results mean nothing."
    )
    warning: str | None
    load_error: str | None
    loading: list[LoadingOut] = Field(
        default_factory=list, description="While `status` is `loading`: which models, and download progress."
    )
    queue: QueueOut


class LivenessOut(_Out):
    """What ``GET /health`` tells a client without the token (a load balancer, a container
    runtime's liveness probe): that the server answers, and its version."""

    status: Literal["idle", "loading", "ready", "error"] = Field(
        description="`ready` once the models are loaded; the details need the token."
    )
    version: str


# -- images --------------------------------------------------------------------------------
class ImageOut(_Out):
    id: str = Field(description="sha256 of the file's bytes: the same content always gets the same id.")
    sha256: str
    filename: str = Field(description="The name the file was uploaded under (metadata only).")
    width: int
    height: int
    format: str
    bytes: int
    created_at: datetime
    file_url: str
    thumbnail_url: str


class UploadResultOut(_Out):
    index: int = Field(description="Position of the file in the request.")
    filename: str
    status: Literal["created", "exists", "rejected"]
    image: ImageOut | None = None
    error: ErrorBody | None = None


class UploadOut(_Out):
    files: list[UploadResultOut]
    accepted: int
    rejected: int


# -- masks and matches -----------------------------------------------------------------------
class RleOut(_Out):
    size: list[int] = Field(description="[height, width]")
    counts: str = Field(description="pycocotools compressed counts")


class MatchSummaryOut(_Out):
    keyword: str
    score: float = Field(description="Probability in [0, 1] that the region is the keyword.")
    cosine: float = Field(description="Raw image-text cosine similarity.")
    bbox_xyxy: list[float]
    area: int


class MatchOut(_Out):
    keyword: str
    score: float = Field(description="Probability in [0, 1] that the region is the keyword.")
    cosine: float = Field(description="Raw image-text cosine similarity.")
    bbox_xyxy: list[float]
    area: int
    region_indices: list[int]
    rle: RleOut


# -- query settings: the fields of core `QueryParams`, with its defaults and limits ----------
_QUERY = QueryParams()


class QuerySettings(BaseModel):
    """Base of every schema that carries the query settings (core `QueryParams`): the
    fields, their defaults and their limits are declared there, and only there."""

    threshold: Annotated[
        float, Strict(), Field(ge=QueryParams.THRESHOLD_RANGE[0], le=QueryParams.THRESHOLD_RANGE[1])
    ] = Field(default=_QUERY.threshold, description="Minimum keyword probability for a region to match.")
    merge_threshold: Annotated[
        float,
        Strict(),
        Field(ge=QueryParams.MERGE_THRESHOLD_RANGE[0], le=QueryParams.MERGE_THRESHOLD_RANGE[1]),
    ] = Field(default=_QUERY.merge_threshold, description="Mask IoU above which matches merge; 1 = never.")
    mode: MatchMode = Field(
        default=_QUERY.mode,
        description="`any`: regions matching any keyword; `all`: every keyword must match.",
    )
    merge_strategy: MergeStrategy = Field(
        default=_QUERY.merge_strategy,
        description="`nms` keeps the best of overlapping matches, `union` fuses them.",
    )

    def query_params(self) -> QueryParams:
        """The core settings (validated again there)."""
        return QueryParams(**{name: getattr(self, name) for name in QuerySettings.model_fields})


class ViewSettings(QuerySettings):
    """The query settings plus the point grid and the overlay opacity."""

    points_per_side: GridSide | None = Field(
        default=None,
        description="Point grid of mask generation (at most SEGLENS_MAX_POINTS_PER_SIDE); default: the profile's.",
    )
    alpha: Annotated[float, Strict(), Field(ge=ALPHA_RANGE[0], le=ALPHA_RANGE[1])] = Field(
        default=DEFAULT_ALPHA, description="Overlay opacity; changing only this re-renders, nothing else."
    )


class JobSettings(ViewSettings):
    """What a job runs with (services `JobParams`)."""

    profile: Annotated[str, Field(max_length=64)] | None = Field(
        default=None, description="Must be the server's profile when given."
    )

    def job_params(self) -> JobParams:
        """The service's parameters; ValueError for a value the core refuses."""
        return JobParams(
            matching=self.query_params(),
            points_per_side=self.points_per_side,
            alpha=self.alpha,
            profile=self.profile,
        )


# -- jobs ----------------------------------------------------------------------------------
class JobParamsIn(JobSettings):
    model_config = ConfigDict(extra="forbid")


class JobCreate(_In):
    image_ids: list[ImageId] = Field(min_length=1, description="Uploaded image ids; duplicates are dropped.")
    query: QueryText
    params: JobParamsIn = Field(default_factory=JobParamsIn)


class JobParamsOut(JobSettings):
    # Every field is always sent: required in the response schema.
    model_config = ConfigDict(from_attributes=True, json_schema_serialization_defaults_required=True)


class ProgressOut(_Out):
    total: int
    done: int
    failed: int
    skipped: int
    remaining: int = Field(description="Pending or in flight.")


class JobOut(_Out):
    id: str
    status: Literal["queued", "running", "completed", "failed", "cancelled", "interrupted"]
    query: str
    params: JobParamsOut
    progress: ProgressOut
    matches: int = Field(description="Matches found so far across the job's images.")
    profile: str | None
    models: dict[str, str] = Field(description="Model ids, once the first image has run.")
    meaningless: bool
    warning: str | None
    priority: int = Field(description="1 for one-image jobs, which go ahead of batches.")
    interruptions: int
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime


T = TypeVar("T")


class Page(_Out, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class JobPage(Page[JobOut]):
    pass


class JobEventOut(_Out):
    at: datetime
    kind: str
    message: str | None


class ResultOut(_Out):
    image_id: str
    position: int
    status: Literal["pending", "running", "done", "failed", "skipped"]
    filename: str | None
    num_regions: int | None
    image_matched: bool | None
    matches: list[MatchOut]
    timings_ms: dict[str, float]
    cache_hits: dict[str, bool]
    warnings: list[str]
    error: ErrorBody | None
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None


class ResultPage(Page[ResultOut]):
    meaningless: bool
    warning: str | None


class ImageLogOut(_Out):
    job_id: str
    image_id: str
    filename: str | None
    status: Literal["pending", "running", "done", "failed", "skipped"]
    attempts: int
    width: int | None
    height: int | None
    num_regions: int | None
    timings_ms: dict[str, float]
    cache_hits: dict[str, bool]
    matches_per_keyword: dict[str, int]
    best_scores: dict[str, float]
    matches: list[MatchSummaryOut] = Field(description="The matches, without their masks.")
    warnings: list[str]
    error: ErrorBody | None
    started_at: datetime | None
    finished_at: datetime | None


class StageStatsOut(_Out):
    count: int
    mean_ms: float
    p50_ms: float
    p95_ms: float
    max_ms: float


class KeywordStatsOut(_Out):
    matches: int
    images: int
    best_score: float


class SlowImageOut(_Out):
    image_id: str
    filename: str
    total_ms: float


class JobStatsOut(_Out):
    job_id: str
    status: str
    progress: ProgressOut
    elapsed_s: float | None = Field(description="First image started to last image finished.")
    busy_s: float = Field(description="Sum of per-image processing times.")
    images_per_minute: float | None
    stages: dict[str, StageStatsOut]
    keywords: dict[str, KeywordStatsOut]
    slowest: list[SlowImageOut]
    cache_hits: dict[str, int]
    errors: dict[str, int] = Field(description="Failed images per error code.")
    retried: int = Field(description="Images that needed more than one attempt.")
    meaningless: bool
    warning: str | None


# -- interactive ---------------------------------------------------------------------------
class QueryIn(ViewSettings):
    model_config = ConfigDict(extra="forbid")

    image_id: ImageId
    query: QueryText
    overlay: StrictBool = Field(default=True, description="Return the overlay as a base64 PNG.")
    overlay_max_side_px: OverlaySide | None = Field(
        default=2048, description="Shrink the overlay to this longest side; null for full size."
    )


class QueryOut(_Out):
    image_id: str
    query: str
    keywords: list[str]
    exclusions: list[str]
    num_regions: int
    image_matched: bool
    missing_keywords: list[str]
    excluded_by: list[str]
    best_scores: dict[str, float]
    matches: list[MatchOut]
    timings_ms: dict[str, float]
    cache_hits: dict[str, bool]
    overlay_png_base64: str | None = Field(description="PNG of the image with the matches drawn on it.")
    overlay_width: int | None
    overlay_height: int | None
    meaningless: bool
    warning: str | None


def _not_bool(value: object) -> object:
    # JSON true/false are not the labels 1/0 (Python would say True == 1).
    if isinstance(value, bool):
        raise ValueError("a point's label must be the number 1 (positive) or 0 (negative)")
    return value


PointLabel = Annotated[Literal[0, 1], BeforeValidator(_not_bool)]


class PromptIn(_In):
    """At least one point or one box (the service refuses an empty prompt: 422 `invalid_prompt`)."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["points"], "properties": {"points": {"minItems": 1}}},
                {"required": ["boxes"], "properties": {"boxes": {"minItems": 1}}},
            ]
        }
    )

    points: list[tuple[Coordinate, Coordinate, PointLabel]] = Field(
        default_factory=list, max_length=64, description="[[x, y, 1 positive | 0 negative], ...]"
    )
    boxes: list[Annotated[list[Coordinate], Field(min_length=4, max_length=4)]] = Field(
        default_factory=list, max_length=16, description="[[x0, y0, x1, y1], ...]: one mask per box."
    )


class PromptMaskOut(_Out):
    rle: RleOut
    score: float = Field(description="The model's predicted IoU.")
    bbox_xyxy: list[float]
    area: int


class PromptOut(_Out):
    image_id: str
    masks: list[PromptMaskOut]
    elapsed_ms: float
    meaningless: bool
    warning: str | None


class SearchHitOut(_Out):
    image_id: str | None = Field(description="null for images processed outside the server.")
    pixels_sha256: str
    thumbnail_url: str | None
    region_index: int
    keyword: str
    score: float
    cosine: float
    bbox_xyxy: list[float]
    area: int
    rle: RleOut


class SearchOut(_Out):
    query: str
    keywords: list[str]
    hits: list[SearchHitOut]
    scanned_images: int
    scanned_regions: int
    elapsed_ms: float
    meaningless: bool
    warning: str | None


# -- history -------------------------------------------------------------------------------
class HistoryEntryOut(_Out):
    kind: Literal["job", "query", "prompt", "search"]
    ref: str = Field(description="The job id, or the interactive request's number.")
    created_at: datetime
    query: str
    params: dict[str, Any]
    status: str
    image_count: int
    match_count: int
    duration_ms: float | None
    image_id: str | None


class HistoryPage(Page[HistoryEntryOut]):
    pass


class HistoryClearedOut(_Out):
    deleted: int = Field(description="Entries removed: interactive requests plus jobs.")
    interactions: int
    jobs: int
