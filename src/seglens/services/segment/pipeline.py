"""The segment → embed → query → render use case, with every expensive stage cached.

`Pipeline` is the Python API (``seglens.Pipeline``) and the engine under the CLI and the
server. Segmenting an image runs SAM and CLIP once per (image pixels, model, generation
parameters); every later query, threshold, merge or transparency change reads the cache.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from PIL import Image

from seglens.core.crops import region_crops
from seglens.core.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, LoadedImage, load_image
from seglens.core.masks import coarse_masks
from seglens.core.matching import match_regions, score_regions
from seglens.core.query import background_prompts, parse_query, templates_for
from seglens.core.render import render_cutouts, render_overlay
from seglens.core.types import (
    DEFAULT_ALPHA,
    GenerationParams,
    ImageInfo,
    Match,
    PromptResult,
    Query,
    QueryParams,
    QueryResult,
    Regions,
    RegionScores,
)
from seglens.models.protocols import ImageEmbedding, ImageTextEmbedder, RegionProposer
from seglens.storage.cache import ArtifactCache, digest

if TYPE_CHECKING:
    from seglens.settings import Settings

__all__ = ["TINY_BANNER", "ImageSource", "Pipeline", "Segmentation"]

ImageSource = str | Path | bytes | Image.Image | np.ndarray | LoadedImage
TINY_BANNER = "TINY MODEL: random weights - results are meaningless"
_CROP_VERSION = "crop-v2"


@dataclass
class Segmentation:
    """One image's regions and region embeddings, plus how long each stage took (ms) and
    which stages came from the cache."""

    image: ImageInfo
    regions: Regions
    region_embeddings: np.ndarray
    proposer_id: str
    embedder_id: str
    params: GenerationParams
    timings_ms: dict[str, float] = field(default_factory=dict)
    cache_hits: dict[str, bool] = field(default_factory=dict)
    pixels: np.ndarray | None = field(default=None, repr=False)


class _Lru(OrderedDict[str, Any]):
    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = capacity

    def get_item(self, key: str) -> Any:
        if key in self:
            self.move_to_end(key)
            return self[key]
        return None

    def put(self, key: str, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.capacity:
            self.popitem(last=False)


class Pipeline:
    """SAM regions + CLIP matching with a content-addressed cache.

    >>> pipe = Pipeline.from_profile("tiny")            # doctest: +SKIP
    >>> result = pipe.query("cat.jpg", "cat, -grass", threshold=0.4)   # doctest: +SKIP
    >>> pipe.render("cat.jpg", result, alpha=0.5).save("overlay.png")  # doctest: +SKIP
    """

    def __init__(
        self,
        proposer: RegionProposer,
        embedder: ImageTextEmbedder,
        *,
        cache: ArtifactCache | None = None,
        generation: GenerationParams | None = None,
        profile: str | None = None,
        crop_fill: Literal["grey", "blur"] = "grey",
        max_pixels: int = DEFAULT_MAX_PIXELS,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ):
        self.proposer = proposer
        self.embedder = embedder
        self.cache = cache
        self.generation = generation or GenerationParams()
        self.profile = profile
        self.crop_fill = crop_fill
        self.max_pixels = max_pixels
        self.max_bytes = max_bytes
        # One lock per model: each model runs one call at a time, and the two run side by
        # side, so a new keyword (text tower) never waits for mask generation in another
        # thread, only for the embedder's batch in flight.
        self._proposer_lock = threading.RLock()
        self._embedder_lock = threading.RLock()
        self._state_lock = threading.Lock()
        self._pixels = _Lru(8)
        self._segmentations = _Lru(256)
        self._embeddings = _Lru(4)
        self._coarse = _Lru(16)
        self._texts: dict[str, np.ndarray] = {}
        self._shared_templates: set[tuple[str, ...]] = set()

    # -- construction -----------------------------------------------------------------
    @classmethod
    def from_profile(
        cls,
        profile: str = "cpu-fast",
        *,
        data_dir: str | Path | None = None,
        device: str | None = None,
        dtype: str | None = None,
        proposer: str | None = None,
        embedder: str | None = None,
        allow_download: bool = True,
        cache: bool = True,
        backend: str | None = None,
    ) -> Pipeline:
        """Load a named profile (``seglens models list`` shows them); `proposer` and
        `embedder` override its models by name or local directory. Weights missing and
        not downloadable raise `ModelNotAvailableError` saying what to do. `backend`
        (``auto``, ``torch``, ``onnx``; default ``SEGLENS_BACKEND``) runs the forward passes."""
        from seglens.settings import Settings

        if backend is not None:
            from seglens.models.runtime import BACKENDS

            if backend not in BACKENDS:
                raise ValueError(f"unknown backend {backend!r}: use {', '.join(BACKENDS)}")
        settings = Settings()
        chosen = {
            "profile": profile,
            "data_dir": Path(data_dir) if data_dir is not None else settings.data_dir,
            "device": device or settings.device,
            "dtype": dtype or settings.dtype,
            "proposer": proposer,
            "embedder": embedder,
            "allow_download": allow_download,
            "backend": backend or settings.backend,
        }
        return cls.from_settings(settings.model_copy(update=chosen), cache=cache)

    @classmethod
    def from_settings(cls, settings: Settings, *, cache: bool = True) -> Pipeline:
        """The settings' profile with their model overrides, device, dtype, limits and
        cache budget (what the server and ``seglens batch`` run)."""
        from seglens.models.loading import load_models

        loaded = load_models(
            settings.profile,
            models_dir=settings.data_dir / "models",
            device=settings.device,
            dtype=settings.dtype,
            proposer=settings.proposer,
            embedder=settings.embedder,
            allow_download=settings.allow_download,
            backend=settings.backend,
        )
        budget = settings.image_embedding_cache_mb * 2**20
        return cls(
            loaded.proposer,
            loaded.embedder,
            cache=ArtifactCache(settings.cache_dir, image_embeddings_max_bytes=budget) if cache else None,
            generation=loaded.generation,
            profile=settings.profile,
            max_pixels=settings.max_pixels,
            max_bytes=settings.max_upload_bytes,
        )

    @property
    def meaningless(self) -> bool:
        """True when a model has random weights (the ``tiny`` profile)."""
        return bool(self.proposer.meaningless or self.embedder.meaningless)

    @property
    def banner(self) -> str | None:
        return TINY_BANNER if self.meaningless else None

    @property
    def backend(self) -> str:
        """What runs the forward passes: ``torch``, ``onnx``, or e.g. ``onnx+torch`` when
        the proposer's and the embedder's differ (an export fell back)."""
        names = [str(getattr(m, "backend_name", "torch")) for m in (self.proposer, self.embedder)]
        return names[0] if names[0] == names[1] else "+".join(names)

    def model_ids(self) -> dict[str, str]:
        return {"proposer": self.proposer.model_id, "embedder": self.embedder.model_id}

    # -- ingest -----------------------------------------------------------------------
    def load(self, image: ImageSource, *, filename: str | None = None) -> LoadedImage:
        """Decode and hash an image (see `seglens.core.images.load_image`)."""
        if isinstance(image, LoadedImage):
            loaded = image
        else:
            loaded = load_image(
                image, filename=filename, max_pixels=self.max_pixels, max_bytes=self.max_bytes
            )
        with self._state_lock:
            self._pixels.put(loaded.info.sha256, loaded.pixels)
        return loaded

    def _regions_key(self, params: GenerationParams) -> str:
        return digest(self.proposer.model_id, params.cache_fields())

    def _embed_key(self) -> str:
        return digest(self.embedder.model_id, _CROP_VERSION, self.crop_fill)

    @property
    def embedding_key(self) -> str:
        """The cache key of region embeddings made by this embedder and crop recipe (the
        ``<embed_key>`` of `seglens.storage.cache`'s layout)."""
        return self._embed_key()

    # -- expensive stages, cached -----------------------------------------------------
    def segment(
        self, image: ImageSource | Segmentation, params: GenerationParams | None = None
    ) -> Segmentation:
        """Regions and region embeddings for an image, from the cache when possible.

        Timings (ms): ``ingest``, the proposer's stages (``preprocess``, ``image_encoder``,
        ``mask_decoder``, ``postprocess``), ``embed_regions``, ``total``."""
        if isinstance(image, Segmentation):
            return image
        started = time.perf_counter()
        loaded = self.load(image)
        timings = {"ingest": (time.perf_counter() - started) * 1000}
        params = params or self.generation
        sha = loaded.info.sha256
        regions_key = self._regions_key(params)
        memo_key = f"{sha}:{regions_key}:{self._embed_key()}"
        with self._state_lock:
            memo: Segmentation | None = self._segmentations.get_item(memo_key)
        if memo is not None:
            hits = {"regions": True, "region_embeddings": True}
            timings["total"] = (time.perf_counter() - started) * 1000
            return replace(memo, image=loaded.info, pixels=loaded.pixels, timings_ms=timings, cache_hits=hits)

        regions = self.cache.load_regions(sha, regions_key) if self.cache else None
        hits = {"regions": regions is not None}
        if regions is None:
            with self._proposer_lock:
                proposal = self.proposer.propose(loaded.pixels, params)
            regions = proposal.regions
            timings.update(proposal.timings_ms)
            if proposal.embedding is not None:
                self._remember_embedding(sha, proposal.embedding)
            if self.cache:
                meta = {"proposer": self.proposer.model_id, "params": params.cache_fields()}
                self.cache.save_regions(sha, regions_key, regions, meta)

        tick = time.perf_counter()
        path = self.cache.region_embeddings_path(sha, regions_key, self._embed_key()) if self.cache else None
        embeddings = self.cache.load_array(path) if self.cache and path else None
        hits["region_embeddings"] = embeddings is not None and len(embeddings) == len(regions)
        if not hits["region_embeddings"]:
            embeddings = self._embed_regions(loaded.pixels, regions)
            if self.cache and path:
                self.cache.save_array(path, embeddings)
        timings["embed_regions"] = (time.perf_counter() - tick) * 1000
        timings["total"] = (time.perf_counter() - started) * 1000
        assert embeddings is not None
        segmentation = Segmentation(
            image=loaded.info,
            regions=regions,
            region_embeddings=embeddings,
            proposer_id=self.proposer.model_id,
            embedder_id=self.embedder.model_id,
            params=params,
            timings_ms=timings,
            cache_hits=hits,
            pixels=loaded.pixels,
        )
        with self._state_lock:
            self._segmentations.put(memo_key, replace(segmentation, pixels=None))
        return segmentation

    def _embed_regions(self, pixels: np.ndarray, regions: Regions) -> np.ndarray:
        if len(regions) == 0:
            return np.zeros((0, self._text_dim()), np.float32)
        out_size = self.embedder.input_size
        crops = region_crops(pixels, regions.rles, regions.boxes_xyxy, fill=self.crop_fill, out_size=out_size)
        # A batch at a time, so that a text query from another thread waits for one batch.
        step = max(1, int(self.embedder.image_batch_size))
        parts = []
        for start in range(0, len(crops), step):
            with self._embedder_lock:
                parts.append(np.asarray(self.embedder.embed_images(crops[start : start + step]), np.float32))
        return np.concatenate(parts)

    def _text_dim(self) -> int:
        return int(self.embed_texts(["object"]).shape[1])

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(N, D) unit text embeddings, memoised in memory and on disk."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._texts]
        if missing and self.cache:
            key = self._embed_key()
            for text in list(missing):
                cached = self.cache.load_array(self.cache.text_embedding_path(key, text))
                if cached is not None:
                    self._texts[text] = cached
                    missing.remove(text)
        if missing:
            with self._embedder_lock:
                vectors = np.asarray(self.embedder.embed_texts(missing), np.float32)
            for text, vector in zip(missing, vectors, strict=True):
                self._texts[text] = vector
                if self.cache:
                    self.cache.save_array(self.cache.text_embedding_path(self._embed_key(), text), vector)
        return np.stack([self._texts[t] for t in texts]) if texts else np.zeros((0, 0), np.float32)

    def keyword_embeddings(self, keywords: Sequence[str]) -> np.ndarray:
        """(K, D) prompt-ensemble embeddings: the mean over templates, re-normalised."""
        if not keywords:
            return np.zeros((0, self._text_dim()), np.float32)
        templates = templates_for(self.embedder.language)
        self._share_template_prefixes(templates)
        texts = [t.format(k) for k in keywords for t in templates]
        vectors = self.embed_texts(texts).reshape(len(keywords), len(templates), -1).mean(axis=1)
        return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)

    def _share_template_prefixes(self, templates: Sequence[str]) -> None:
        """Let an embedder that can (CLIP's causal text tower) encode the templates' text
        before the keyword once, so a new keyword costs only its own tokens."""
        share = getattr(self.embedder, "share_prefixes", None)  # optional capability
        key = tuple(templates)
        if share is None or key in self._shared_templates:
            return
        prefixes = [t.split("{}")[0].rstrip() for t in templates if "{}" in t]
        with self._embedder_lock:
            share(prefixes)
        self._shared_templates.add(key)

    # -- cheap stages -----------------------------------------------------------------
    def query(
        self,
        image: ImageSource | Segmentation,
        query: str | Query,
        settings: QueryParams | None = None,
        *,
        params: GenerationParams | None = None,
        **changes: Any,
    ) -> QueryResult:
        """Match keywords against an image's regions; segments it first if needed.

        The query settings are `settings` (default: `QueryParams()`) with `changes`, any
        of its fields by name, e.g. ``pipe.query(image, "cat", threshold=0.4, mode="all")``.
        Raises ValueError for a bad query, an unknown setting or one out of range."""
        parsed = parse_query(query) if isinstance(query, str) else query
        query_params = (settings or QueryParams()).updated(**changes)
        segmentation = self.segment(image, params)
        return self.match(segmentation, parsed, query_params)

    def match(self, segmentation: Segmentation, query: Query, params: QueryParams) -> QueryResult:
        started = time.perf_counter()
        scores = self.score(segmentation.region_embeddings, query)
        result = match_regions(segmentation.regions, scores, query, params, self._overlap_masks(segmentation))
        return replace(result, elapsed_ms=(time.perf_counter() - started) * 1000)

    def overlap_masks(self, segmentation: Segmentation) -> np.ndarray:
        """(N, h, w) bool coarse masks that merging measures overlap on (memoised)."""
        return self._overlap_masks(segmentation)

    def _overlap_masks(self, segmentation: Segmentation) -> np.ndarray:
        key = f"{segmentation.image.sha256}:{self._regions_key(segmentation.params)}"
        with self._state_lock:
            masks = self._coarse.get_item(key)
        if masks is None or len(masks) != len(segmentation.regions):
            masks = coarse_masks(segmentation.regions.rles)
            with self._state_lock:
                self._coarse.put(key, masks)
        return masks

    def score(self, region_embeddings: np.ndarray, query: Query) -> RegionScores:
        """Scores of (N, D) region embeddings against the query's keywords, exclusions and
        the background prompts (see `seglens.core.matching.score_regions`)."""
        background = list(background_prompts(self.embedder.language))
        return score_regions(
            region_embeddings,
            self.keyword_embeddings(query.keywords),
            self.keyword_embeddings(query.exclusions),
            self.embed_texts(background),
            classes=(*query.keywords, *query.exclusions, *background),
            logit_scale=self.embedder.logit_scale,
            logit_bias=self.embedder.logit_bias,
            score_kind=self.embedder.score_kind,
        )

    def pixels_for(self, image: ImageSource | Segmentation) -> np.ndarray:
        if isinstance(image, Segmentation):
            if image.pixels is not None:
                return image.pixels
            with self._state_lock:
                cached = self._pixels.get_item(image.image.sha256)
            if cached is None:
                raise ValueError("the segmentation's pixels are no longer in memory: pass the image")
            return cached
        return self.load(image).pixels

    def render(
        self,
        image: ImageSource | Segmentation,
        result: QueryResult,
        *,
        alpha: float = DEFAULT_ALPHA,
        contours: bool = True,
        labels: bool = True,
        legend: bool = True,
    ) -> Image.Image:
        """Overlay of the matches; the tiny profile's output carries a warning banner."""
        return render_overlay(
            self.pixels_for(image),
            result,
            alpha=alpha,
            contours=contours,
            labels=labels,
            legend=legend,
            banner=self.banner,
        )

    def cutouts(
        self, image: ImageSource | Segmentation, result: QueryResult
    ) -> list[tuple[Match, Image.Image]]:
        """Transparent RGBA cut-outs of the matches."""
        return render_cutouts(self.pixels_for(image), result)

    # -- interactive prompts ---------------------------------------------------------
    def _remember_embedding(self, sha: str, embedding: ImageEmbedding) -> None:
        with self._state_lock:
            self._embeddings.put(sha, embedding)
        if self.cache:
            self.cache.save_image_embedding(
                sha, digest(self.proposer.model_id), self.proposer.embedding_to_arrays(embedding)
            )

    def image_embedding(self, image: ImageSource) -> tuple[ImageEmbedding, bool]:
        """The proposer's embedding of an image and whether it came from a cache."""
        loaded = self.load(image)
        sha = loaded.info.sha256
        with self._state_lock:
            embedding = self._embeddings.get_item(sha)
        if embedding is not None:
            return embedding, True
        if self.cache:
            arrays = self.cache.load_image_embedding(sha, digest(self.proposer.model_id))
            if arrays is not None:
                embedding = self.proposer.embedding_from_arrays(
                    arrays, (loaded.info.height, loaded.info.width)
                )
                with self._state_lock:
                    self._embeddings.put(sha, embedding)
                return embedding, True
        with self._proposer_lock:
            embedding = self.proposer.encode(loaded.pixels)
        self._remember_embedding(sha, embedding)
        return embedding, False

    def prompt(
        self,
        image: ImageSource,
        *,
        points: Sequence[Sequence[float]] | None = None,
        box: Sequence[float] | None = None,
    ) -> PromptResult:
        """Refine a mask from clicks ``[[x, y, 1 or 0], ...]`` (1 positive, 0 negative)
        and/or a box ``[x0, y0, x1, y1]`` in image pixels. The image is encoded once."""
        embedding, _ = self.image_embedding(image)
        points_xy = labels = None
        if points:
            array = np.asarray(points, np.float32)
            if array.ndim != 2 or array.shape[1] not in (2, 3):
                raise ValueError(
                    "points must be [[x, y, label], ...] with label 1 (positive) or 0 (negative)"
                )
            points_xy = array[:, :2]
            labels = array[:, 2].astype(np.int64) if array.shape[1] == 3 else np.ones(len(array), np.int64)
        box_array = np.asarray(box, np.float32) if box is not None else None
        with self._proposer_lock:
            return self.proposer.prompt(embedding, points_xy, labels, box_array)
