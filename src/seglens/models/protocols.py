"""The two model seams: a region proposer (SAM family) and an image-text embedder (CLIP
family). Everything above `models/` sees only these protocols, so unit tests plug in fakes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from seglens.core.types import GenerationParams, PromptResult, Regions

__all__ = ["ImageEmbedding", "ImageTextEmbedder", "Proposal", "RegionProposer"]


@dataclass
class ImageEmbedding:
    """An image encoded once by a proposer, prompted many times. `payload` is backend-owned
    (tensors); `arrays()` and `from_arrays()` on the proposer turn it into numpy for the
    disk cache."""

    model_id: str
    image_size_hw: tuple[int, int]
    payload: Any


@dataclass
class Proposal:
    """Output of automatic mask generation with per-stage timings in ms
    (``preprocess``, ``image_encoder``, ``mask_decoder``, ``postprocess``)."""

    regions: Regions
    embedding: ImageEmbedding | None
    timings_ms: dict[str, float] = field(default_factory=dict)


@runtime_checkable
class RegionProposer(Protocol):
    """SAM-family model: cuts an image into candidate regions and answers prompts.

    Images are (H, W, 3) uint8 RGB arrays. Point coordinates are image pixels (x, y).
    """

    model_id: str
    meaningless: bool

    def propose(self, image: np.ndarray, params: GenerationParams) -> Proposal:
        """Every candidate region of `image` under `params` (automatic mask generation), with
        the image embedding it computed on the way and the per-stage timings."""

    def encode(self, image: np.ndarray) -> ImageEmbedding:
        """The image embedding of `image` (the expensive half of prompting), reusable by any
        number of `prompt` calls."""

    def prompt(
        self,
        embedding: ImageEmbedding,
        points_xy: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        box_xyxy: np.ndarray | None = None,
    ) -> PromptResult:
        """One mask for the prompts on an encoded image: positive (label 1) and negative (0)
        points as (N, 2) image pixels, and/or one box [x0, y0, x1, y1); ValueError for prompts
        it cannot use."""

    def embedding_to_arrays(self, embedding: ImageEmbedding) -> dict[str, np.ndarray]:
        """`embedding` as named float32 arrays for the on-disk cache (`embedding_from_arrays`
        is the inverse)."""

    def embedding_from_arrays(
        self, arrays: dict[str, np.ndarray], image_size_hw: tuple[int, int]
    ) -> ImageEmbedding:
        """The embedding `embedding_to_arrays` wrote, for an image of `image_size_hw`."""


@runtime_checkable
class ImageTextEmbedder(Protocol):
    """CLIP-family model mapping image crops and texts into one space.

    - `embed_images(crops)`: crops are (h, w, 3) uint8 RGB arrays, already masked and padded
      square; returns (N, D) float32 rows of unit L2 norm.
    - `embed_texts(texts)`: returns (N, D) float32 rows of unit L2 norm.
    - `score_kind`: ``softmax`` (CLIP: probabilities from a softmax over the classes with
      `logit_scale`) or ``sigmoid`` (SigLIP: independent ``sigmoid(scale * cos + bias)``).

    - `input_size`: the side in pixels of the square crops the image tower takes (crops
      are resized to it before `embed_images`), or None to pass crops at their own size.
    - `image_batch_size`: crops per `embed_images` call the caller should send at most
      (the pipeline sends a batch at a time so that text queries can run in between).

    Optional: `share_prefixes(prefixes)`, offered the prompt templates' text before the
    keyword, for an embedder that can encode it once (CLIP's causal text tower does);
    callers look it up with `getattr` and embedders without it need nothing.
    """

    model_id: str
    meaningless: bool
    logit_scale: float
    logit_bias: float
    score_kind: Literal["softmax", "sigmoid"]
    language: str
    input_size: int | None
    image_batch_size: int

    def embed_images(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """(N, D) float32 unit rows for N crops (see the class docstring); N may be 0."""

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(N, D) float32 unit rows for N texts; N may be 0."""
