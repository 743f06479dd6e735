"""The typed objects that cross every module boundary.

One type per concept: `Regions` (candidate regions of one image), `Match` (a region that
answers a keyword), `QueryResult` (everything one query returns), `GenerationParams` and
`QueryParams` (the knobs), `JobParams` (what a job runs with). Units and formats live in the names: `boxes_xyxy` are pixel
boxes ``[x0, y0, x1, y1)`` with exclusive right/bottom edges (so ``x1 - x0`` is the COCO
width), `*_ms` are milliseconds, `rles` are COCO compressed RLE dicts.

A type that is stored or sent as JSON serialises itself here, once: `JobParams`, `Match`
and `QueryResult` have ``to_dict()`` (plain JSON data) and ``from_dict(...)`` (its inverse).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, ClassVar, Literal, TypedDict, get_args

import numpy as np

__all__ = [
    "ALPHA_RANGE",
    "DEFAULT_ALPHA",
    "CocoRle",
    "GenerationParams",
    "ImageInfo",
    "JobParams",
    "Match",
    "MatchMode",
    "MergeStrategy",
    "PromptResult",
    "Query",
    "QueryParams",
    "QueryResult",
    "RegionScores",
    "Regions",
    "check_alpha",
]

MatchMode = Literal["any", "all"]
MergeStrategy = Literal["nms", "union"]

# Overlay fill opacity: its range, and the value wherever none is given (API, CLI, jobs,
# Python API).
ALPHA_RANGE = (0.0, 1.0)
DEFAULT_ALPHA = 0.5


def check_alpha(alpha: float) -> float:
    """`alpha` when it is a number in `ALPHA_RANGE`; ValueError otherwise."""
    low, high = ALPHA_RANGE
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not low <= alpha <= high:
        raise ValueError(f"alpha must be a number in [{low:g}, {high:g}], got {alpha!r}")
    return alpha


class CocoRle(TypedDict):
    """COCO compressed run-length encoding: ``size`` is ``[height, width]``, ``counts`` the
    pycocotools string (column-major runs)."""

    size: list[int]
    counts: str


@dataclass(frozen=True)
class ImageInfo:
    """A decoded image. `sha256` hashes the oriented RGB pixels (plus shape), so the same
    picture saved as PNG or as a lossless WebP shares its cache entries."""

    sha256: str
    width: int
    height: int
    format: str | None = None
    bytes: int | None = None
    filename: str | None = None


@dataclass(frozen=True)
class GenerationParams:
    """Automatic mask generation settings (the expensive stage; part of the cache key).

    Defaults follow Segment Anything's automatic mask generator, except that generation-time
    NMS is loose (`box_nms_thresh` 0.9 instead of 0.7): near-duplicates go, but overlapping
    alternatives stay so that the query-time merging threshold can decide.
    """

    # The hard limit of the point grid (a server may set a lower one, SEGLENS_MAX_POINTS_PER_SIDE).
    POINTS_PER_SIDE_MIN: ClassVar[int] = 1
    POINTS_PER_SIDE_MAX: ClassVar[int] = 128

    points_per_side: int = 32
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.88
    stability_score_thresh: float = 0.95
    stability_score_offset: float = 1.0
    mask_threshold: float = 0.0
    box_nms_thresh: float = 0.9
    min_region_area: int = 100
    crop_n_layers: int = 0
    crop_overlap_ratio: float = 512 / 1500
    crop_n_points_downscale_factor: int = 1

    def __post_init__(self) -> None:
        checks = [
            (
                self.POINTS_PER_SIDE_MIN <= self.points_per_side <= self.POINTS_PER_SIDE_MAX,
                f"points_per_side must be in {self.POINTS_PER_SIDE_MIN}..{self.POINTS_PER_SIDE_MAX}",
            ),
            (1 <= self.points_per_batch <= 4096, "points_per_batch must be in 1..4096"),
            (-1.0 <= self.pred_iou_thresh <= 1.0, "pred_iou_thresh must be in [-1, 1]"),
            (0.0 <= self.stability_score_thresh <= 1.0, "stability_score_thresh must be in [0, 1]"),
            (0.0 < self.box_nms_thresh <= 1.0, "box_nms_thresh must be in (0, 1]"),
            (self.min_region_area >= 0, "min_region_area must be >= 0"),
            (0 <= self.crop_n_layers <= 3, "crop_n_layers must be in 0..3"),
            (0.0 <= self.crop_overlap_ratio < 1.0, "crop_overlap_ratio must be in [0, 1)"),
            (self.crop_n_points_downscale_factor >= 1, "crop_n_points_downscale_factor >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def cache_fields(self) -> dict[str, float | int]:
        """Fields that change the regions (`points_per_batch` only changes speed)."""
        fields = dict(self.__dict__)
        fields.pop("points_per_batch")
        return fields


@dataclass(frozen=True)
class Regions:
    """Candidate regions of one image as parallel arrays of length N.

    - `rles`: N COCO RLEs of size ``image_size_hw``
    - `boxes_xyxy`: (N, 4) float32, exclusive right/bottom
    - `areas`: (N,) int64 pixel counts
    - `predicted_iou`, `stability`: (N,) float32 model quality estimates
    - `points_xy`: (N, 2) float32 image coordinates of the prompt point that produced each region
    """

    image_size_hw: tuple[int, int]
    rles: tuple[CocoRle, ...]
    boxes_xyxy: np.ndarray
    areas: np.ndarray
    predicted_iou: np.ndarray
    stability: np.ndarray
    points_xy: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.rles)
        for name in ("boxes_xyxy", "areas", "predicted_iou", "stability", "points_xy"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"Regions.{name} has {len(getattr(self, name))} rows, expected {n}")

    def __len__(self) -> int:
        return len(self.rles)

    @classmethod
    def empty(cls, image_size_hw: tuple[int, int]) -> Regions:
        """No regions, for an image of `image_size_hw` (arrays of length 0 with the documented
        dtypes)."""
        return cls(
            image_size_hw=image_size_hw,
            rles=(),
            boxes_xyxy=np.zeros((0, 4), np.float32),
            areas=np.zeros((0,), np.int64),
            predicted_iou=np.zeros((0,), np.float32),
            stability=np.zeros((0,), np.float32),
            points_xy=np.zeros((0, 2), np.float32),
        )

    def select(self, indices: np.ndarray | list[int]) -> Regions:
        """The regions at `indices` (in that order; repeats allowed), every array sliced alike."""
        idx = np.asarray(indices, dtype=np.int64)
        return Regions(
            image_size_hw=self.image_size_hw,
            rles=tuple(self.rles[i] for i in idx),
            boxes_xyxy=self.boxes_xyxy[idx],
            areas=self.areas[idx],
            predicted_iou=self.predicted_iou[idx],
            stability=self.stability[idx],
            points_xy=self.points_xy[idx],
        )


@dataclass(frozen=True)
class Query:
    """A parsed keyword query: `keywords` to find, `exclusions` written ``-word``."""

    keywords: tuple[str, ...]
    exclusions: tuple[str, ...] = ()
    raw: str = ""


@dataclass(frozen=True)
class QueryParams:
    """Query-time knobs; none of them re-runs a model on pixels.

    - `threshold`: minimum keyword probability in [0, 1] for a region to match
    - `merge_threshold`: mask IoU in [0, 1] above which overlapping matches of one keyword
      are merged (1.0 merges nothing, lower merges more)
    - `mode`: ``any`` keeps every region matching any keyword; ``all`` matches the image
      only if every keyword matches somewhere
    - `merge_strategy`: ``nms`` keeps the best of overlapping matches, ``union`` fuses them

    This class is the one declaration of these settings: every other layer (the HTTP
    schemas, the CLI options, job parameters, the viewer) takes the fields' defaults from
    here and the limits from the class constants below (see `limits()`).
    """

    THRESHOLD_RANGE: ClassVar[tuple[float, float]] = (0.0, 1.0)
    MERGE_THRESHOLD_RANGE: ClassVar[tuple[float, float]] = (0.0, 1.0)
    MODES: ClassVar[tuple[MatchMode, ...]] = get_args(MatchMode)
    MERGE_STRATEGIES: ClassVar[tuple[MergeStrategy, ...]] = get_args(MergeStrategy)

    threshold: float = 0.5
    merge_threshold: float = 0.7
    mode: MatchMode = "any"
    merge_strategy: MergeStrategy = "nms"

    def __post_init__(self) -> None:
        for name, (low, high) in (
            ("threshold", self.THRESHOLD_RANGE),
            ("merge_threshold", self.MERGE_THRESHOLD_RANGE),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
                raise ValueError(f"{name} must be a number in [{low:g}, {high:g}], got {value!r}")
        if self.mode not in self.MODES:
            raise ValueError(f"mode must be one of {', '.join(self.MODES)}, got {self.mode!r}")
        if self.merge_strategy not in self.MERGE_STRATEGIES:
            raise ValueError(
                f"merge_strategy must be one of {', '.join(self.MERGE_STRATEGIES)}, got {self.merge_strategy!r}"
            )

    def updated(self, **changes: Any) -> QueryParams:
        """A copy with some fields changed (validated); None values leave a field as it is.
        Raises ValueError for a name that is not a field."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(
                f"unknown query setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def limits(cls) -> dict[str, dict[str, Any]]:
        """Every field's default and limits as plain JSON data, for front ends that mirror
        them (the viewer, the UI): ``{"threshold": {"default": 0.5, "minimum": 0.0,
        "maximum": 1.0}, "mode": {"default": "any", "choices": ["any", "all"]}, ...}``."""
        defaults = cls()
        return {
            "threshold": {
                "default": defaults.threshold,
                "minimum": cls.THRESHOLD_RANGE[0],
                "maximum": cls.THRESHOLD_RANGE[1],
            },
            "merge_threshold": {
                "default": defaults.merge_threshold,
                "minimum": cls.MERGE_THRESHOLD_RANGE[0],
                "maximum": cls.MERGE_THRESHOLD_RANGE[1],
            },
            "mode": {"default": defaults.mode, "choices": list(cls.MODES)},
            "merge_strategy": {"default": defaults.merge_strategy, "choices": list(cls.MERGE_STRATEGIES)},
        }


@dataclass(frozen=True)
class JobParams:
    """What a job runs with: the query settings `matching` (a `QueryParams`), the point
    grid `points_per_side` (None: the profile's), `alpha` the overlay opacity of exported
    overlays, and `profile` (None: the server's).

    Stored flat, as a job's ``params`` column and in exports: ``{"threshold",
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
        """`base` with this job's point grid (unchanged when `points_per_side` is None)."""
        if self.points_per_side is None:
            return base
        return replace(base, points_per_side=self.points_per_side)

    def to_dict(self) -> dict[str, Any]:
        """The flat stored form (see the class docstring), keys in that order."""
        return {
            **asdict(self.matching),
            "points_per_side": self.points_per_side,
            "alpha": self.alpha,
            "profile": self.profile,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobParams:
        """The inverse of `to_dict`; missing keys take their defaults, unknown keys are
        ignored. Raises ValueError for a value out of range."""
        matching = QueryParams(**{k: v for k, v in data.items() if k in _QUERY_FIELDS})
        rest = {k: v for k, v in data.items() if k in _JOB_OWN_FIELDS}
        return cls(matching=matching, **rest)


_QUERY_FIELDS = frozenset(f.name for f in fields(QueryParams))
_JOB_OWN_FIELDS = frozenset(f.name for f in fields(JobParams)) - {"matching"}


@dataclass(frozen=True)
class RegionScores:
    """Per-region scores against the query's classes.

    `classes` lists keywords, then exclusions, then background prompts. `probabilities`
    (N, C) float32 rows sum to 1 for softmax embedders (independent sigmoids otherwise);
    `cosines` (N, C) float32 raw cosine similarities.
    """

    classes: tuple[str, ...]
    num_keywords: int
    num_exclusions: int
    probabilities: np.ndarray
    cosines: np.ndarray


@dataclass(frozen=True)
class Match:
    """One highlighted region: `score` is the keyword probability in [0, 1], `cosine` the raw
    similarity. `region_indices` lists the candidate regions it stands for (several after a
    union merge)."""

    keyword: str
    score: float
    cosine: float
    rle: CocoRle
    bbox_xyxy: tuple[float, float, float, float]
    area: int
    region_indices: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        """``{"keyword", "score", "cosine", "bbox_xyxy": [x0, y0, x1, y1], "area",
        "region_indices": [...], "rle": {"size": [h, w], "counts": "..."}}`` (plain
        Python numbers): the form of a match in stored job results, exports and the API."""
        return {
            "keyword": self.keyword,
            "score": float(self.score),
            "cosine": float(self.cosine),
            "bbox_xyxy": [float(v) for v in self.bbox_xyxy],
            "area": int(self.area),
            "region_indices": [int(i) for i in self.region_indices],
            "rle": {"size": [int(v) for v in self.rle["size"]], "counts": self.rle["counts"]},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Match:
        """The inverse of `to_dict` (`region_indices` may be missing: none)."""
        box = data["bbox_xyxy"]
        return cls(
            keyword=data["keyword"],
            score=float(data["score"]),
            cosine=float(data["cosine"]),
            rle=CocoRle(size=[int(v) for v in data["rle"]["size"]], counts=str(data["rle"]["counts"])),
            bbox_xyxy=(float(box[0]), float(box[1]), float(box[2]), float(box[3])),
            area=int(data["area"]),
            region_indices=tuple(int(i) for i in data.get("region_indices", ())),
        )


@dataclass(frozen=True)
class QueryResult:
    """What one query over one image returns."""

    query: Query
    params: QueryParams
    image_size_hw: tuple[int, int]
    num_regions: int
    matches: tuple[Match, ...]
    image_matched: bool
    missing_keywords: tuple[str, ...] = ()
    excluded_by: tuple[str, ...] = ()
    best_scores: dict[str, float] = field(default_factory=dict)
    elapsed_ms: float = 0.0

    def keywords_found(self) -> tuple[str, ...]:
        """The keywords with at least one match, in the order of their first match."""
        return tuple(dict.fromkeys(m.keyword for m in self.matches))

    def to_dict(self) -> dict[str, Any]:
        """``{"num_regions", "image_matched", "missing_keywords", "excluded_by",
        "best_scores", "matches": [Match.to_dict(), ...]}``: the outcome of the query. The
        query, the settings and the image size are not in it; whoever stores it keeps
        them beside it (a job: its query and params, the result's ``image``)."""
        return {
            "num_regions": int(self.num_regions),
            "image_matched": bool(self.image_matched),
            "missing_keywords": list(self.missing_keywords),
            "excluded_by": list(self.excluded_by),
            "best_scores": {k: float(v) for k, v in self.best_scores.items()},
            "matches": [m.to_dict() for m in self.matches],
        }

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, query: Query, params: QueryParams, image_size_hw: tuple[int, int]
    ) -> QueryResult:
        """The inverse of `to_dict`, given what it leaves out; missing keys read as an
        empty outcome (no regions, no matches)."""
        return cls(
            query=query,
            params=params,
            image_size_hw=image_size_hw,
            num_regions=int(data.get("num_regions", 0)),
            matches=tuple(Match.from_dict(m) for m in data.get("matches", ())),
            image_matched=bool(data.get("image_matched", False)),
            missing_keywords=tuple(data.get("missing_keywords", ())),
            excluded_by=tuple(data.get("excluded_by", ())),
            best_scores={k: float(v) for k, v in data.get("best_scores", {}).items()},
        )


@dataclass(frozen=True)
class PromptResult:
    """A mask refined from click or box prompts; `score` is the model's predicted IoU."""

    rle: CocoRle
    score: float
    bbox_xyxy: tuple[float, float, float, float]
    area: int
