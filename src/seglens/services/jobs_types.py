"""Job parameters and the stored form of one image's result.

A job's result for one image is stored as a JSON dict (``job_items.result``)::

    {"num_regions": 87, "image_matched": true,
     "missing_keywords": [], "excluded_by": [], "best_scores": {"cat": 0.91},
     "matches": [{"keyword": "cat", "score": 0.91, "cosine": 0.31,
                  "bbox_xyxy": [x0, y0, x1, y1], "area": 1234, "region_indices": [4],
                  "rle": {"size": [h, w], "counts": "..."}}],
     "image": {"width": 640, "height": 480, "pixels_sha256": "..."},
     "cache_hits": {"regions": false, "region_embeddings": false},
     "warnings": ["..."]}

`result_to_query_result` turns it back into the core `QueryResult`, and `item_image_record`
a whole stored image of a job into the core `ImageRecord` (exports, the assistant's screen
context).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from seglens.core.exports import ImageRecord
from seglens.core.query import parse_query
from seglens.core.types import (
    DEFAULT_ALPHA,
    CocoRle,
    GenerationParams,
    ImageInfo,
    Match,
    QueryParams,
    QueryResult,
    check_alpha,
)
from seglens.storage.records import JobItemRecord, JobRecord, StoredImage

__all__ = ["JobParams", "item_image_record", "query_result_to_dict", "result_to_query_result"]


@dataclass(frozen=True)
class JobParams:
    """What a job runs with: the query settings `matching` (core `QueryParams`), the point
    grid `points_per_side` (None: the profile's), `alpha` the overlay opacity of exported
    overlays, and `profile` (None: the server's).

    Stored flat, as the job's ``params`` column and in exports: ``{"threshold",
    "merge_threshold", "mode", "merge_strategy", "points_per_side", "alpha", "profile"}``
    (`to_dict` / `from_dict`).
    """

    matching: QueryParams = field(default_factory=QueryParams)
    points_per_side: int | None = None
    alpha: float = DEFAULT_ALPHA
    profile: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.matching, QueryParams):
            raise ValueError(f"matching must be a QueryParams, got {type(self.matching).__name__}")
        grid = self.points_per_side
        low, high = GenerationParams.POINTS_PER_SIDE_MIN, GenerationParams.POINTS_PER_SIDE_MAX
        if grid is not None and (
            isinstance(grid, bool) or not isinstance(grid, int) or not low <= grid <= high
        ):
            raise ValueError(f"points_per_side must be an integer in {low}..{high}, got {grid!r}")
        check_alpha(self.alpha)

    def query_params(self) -> QueryParams:
        """The query settings (`matching`)."""
        return self.matching

    def generation(self, base: GenerationParams) -> GenerationParams:
        if self.points_per_side is None:
            return base
        return replace(base, points_per_side=self.points_per_side)

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self.matching),
            "points_per_side": self.points_per_side,
            "alpha": self.alpha,
            "profile": self.profile,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobParams:
        """The inverse of `to_dict`; missing keys take their defaults, unknown keys are
        ignored. Raises ValueError for a value out of range."""
        matching = QueryParams(**{k: v for k, v in data.items() if k in _QUERY_FIELDS})
        rest = {k: v for k, v in data.items() if k in _OWN_FIELDS}
        return cls(matching=matching, **rest)


_QUERY_FIELDS = frozenset(f.name for f in fields(QueryParams))
_OWN_FIELDS = frozenset(f.name for f in fields(JobParams)) - {"matching"}


def match_to_dict(match: Match) -> dict[str, Any]:
    return {
        "keyword": match.keyword,
        "score": float(match.score),
        "cosine": float(match.cosine),
        "bbox_xyxy": [float(v) for v in match.bbox_xyxy],
        "area": int(match.area),
        "region_indices": [int(i) for i in match.region_indices],
        "rle": {"size": [int(v) for v in match.rle["size"]], "counts": match.rle["counts"]},
    }


def query_result_to_dict(result: QueryResult) -> dict[str, Any]:
    return {
        "num_regions": int(result.num_regions),
        "image_matched": bool(result.image_matched),
        "missing_keywords": list(result.missing_keywords),
        "excluded_by": list(result.excluded_by),
        "best_scores": {k: float(v) for k, v in result.best_scores.items()},
        "matches": [match_to_dict(m) for m in result.matches],
    }


def result_to_query_result(stored: dict[str, Any], query: str, params: JobParams) -> QueryResult:
    """The core `QueryResult` of a stored result (for COCO, CSV and overlay exports)."""
    image = stored.get("image", {})
    matches = tuple(
        Match(
            keyword=m["keyword"],
            score=float(m["score"]),
            cosine=float(m["cosine"]),
            rle=CocoRle(size=[int(v) for v in m["rle"]["size"]], counts=str(m["rle"]["counts"])),
            bbox_xyxy=(
                float(m["bbox_xyxy"][0]),
                float(m["bbox_xyxy"][1]),
                float(m["bbox_xyxy"][2]),
                float(m["bbox_xyxy"][3]),
            ),
            area=int(m["area"]),
            region_indices=tuple(int(i) for i in m.get("region_indices", ())),
        )
        for m in stored.get("matches", ())
    )
    return QueryResult(
        query=parse_query(query),
        params=params.matching,
        image_size_hw=(int(image.get("height", 0)), int(image.get("width", 0))),
        num_regions=int(stored.get("num_regions", 0)),
        matches=matches,
        image_matched=bool(stored.get("image_matched", False)),
        missing_keywords=tuple(stored.get("missing_keywords", ())),
        excluded_by=tuple(stored.get("excluded_by", ())),
        best_scores={k: float(v) for k, v in stored.get("best_scores", {}).items()},
    )


def item_image_record(item: JobItemRecord, job: JobRecord, image: StoredImage | None) -> ImageRecord:
    """One image of a job as the core `ImageRecord`: `result` (a `QueryResult`) when the
    image is done, `error` and `error_code` when it failed; an image not processed
    (pending, running, skipped) has no result and the error ``image not processed
    (<status>)``. `timings_ms` are the stored per-stage timings; `file_name` is the name it
    was uploaded under (the image id when the image is gone)."""
    record = ImageRecord(file_name=image.filename if image else item.image_id)
    record.error, record.error_code = item.error, item.error_code
    record.timings_ms = {k: float(v) for k, v in (item.timings_ms or {}).items()}
    if item.status != "done":
        record.error = record.error or f"image not processed ({item.status})"
    if item.result is not None and image is not None:
        record.info = ImageInfo(
            sha256=item.result.get("image", {}).get("pixels_sha256", image.pixels_sha256),
            width=image.width,
            height=image.height,
            format=image.format,
            bytes=image.bytes,
            filename=image.filename,
        )
        record.result = result_to_query_result(item.result, job.query, JobParams.from_dict(job.params))
        record.cache_hits = dict(item.result.get("cache_hits", {}))
    return record
