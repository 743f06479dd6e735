"""A third-party SegLens plugin, as an outside author writes it from the registry's docs:
an entry point in ``seglens.models``, loaders with the documented ``(path, device)``
signature, a proposer that needs no weights, an embedder type for local directories
(``register_model_type``), numpy only: no torch, no transformers.

When ``SEGLENS_TOY_RECORD`` names a file, the process writes there, at exit, whether torch
or transformers were imported."""

from __future__ import annotations

import atexit
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from seglens.core.masks import encode_mask, mask_boxes_xyxy, rle_areas
from seglens.core.types import GenerationParams, PromptResult, Regions
from seglens.models.protocols import ImageEmbedding, Proposal
from seglens.models.registry import ModelSpec, Profile, register_model_type

WORDS = ("red", "green", "blue", "other", "background")
RGB = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


def _record() -> None:
    target = os.environ.get("SEGLENS_TOY_RECORD")
    if target:
        Path(target).write_text(json.dumps({m: m in sys.modules for m in ("torch", "transformers")}))


atexit.register(_record)


class GridProposer:
    """Cuts an image into `side` x `side` cells: one region per cell."""

    def __init__(self, side: int, model_id: str):
        self.side = side
        self.model_id = model_id
        self.meaningless = False

    def _masks(self, hw: tuple[int, int]) -> list[np.ndarray]:
        h, w = hw
        out = []
        for row in range(self.side):
            for col in range(self.side):
                mask = np.zeros((h, w), bool)
                mask[
                    row * h // self.side : (row + 1) * h // self.side,
                    col * w // self.side : (col + 1) * w // self.side,
                ] = True
                out.append(mask)
        return out

    def propose(self, image: np.ndarray, params: GenerationParams) -> Proposal:
        masks = self._masks(image.shape[:2])
        rles = tuple(encode_mask(m) for m in masks)
        regions = Regions(
            image_size_hw=image.shape[:2],
            rles=rles,
            boxes_xyxy=mask_boxes_xyxy(np.stack(masks)),
            areas=rle_areas(list(rles)),
            predicted_iou=np.full(len(masks), 0.9, np.float32),
            stability=np.full(len(masks), 0.9, np.float32),
            points_xy=np.zeros((len(masks), 2), np.float32),
        )
        return Proposal(regions, self.encode(image), {})

    def encode(self, image: np.ndarray) -> ImageEmbedding:
        return ImageEmbedding(self.model_id, image.shape[:2], None)

    def prompt(self, embedding, points_xy=None, point_labels=None, box_xyxy=None) -> PromptResult:
        mask = self._masks(embedding.image_size_hw)[0]
        box = tuple(float(v) for v in mask_boxes_xyxy(mask[None])[0])
        return PromptResult(encode_mask(mask), 0.9, box, int(mask.sum()))

    def embedding_to_arrays(self, embedding: ImageEmbedding) -> dict[str, np.ndarray]:
        return {}

    def embedding_from_arrays(self, arrays, image_size_hw) -> ImageEmbedding:
        return ImageEmbedding(self.model_id, image_size_hw, None)


class ColourEmbedder:
    """Embeds a crop as the one-hot of its dominant colour, a text as its colour word."""

    logit_scale = 100.0
    logit_bias = 0.0
    score_kind = "softmax"
    language = "en"
    input_size = None
    image_batch_size = 16

    def __init__(self, model_id: str, tolerance: float):
        self.model_id = model_id
        self.meaningless = False
        self.tolerance = tolerance

    def _onehot(self, word: str) -> np.ndarray:
        v = np.full(len(WORDS), 0.02, np.float32)
        v[WORDS.index(word)] = 1.0
        return v / np.linalg.norm(v)

    def embed_images(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        rows = []
        for crop in crops:
            mean = np.asarray(crop, np.float32).reshape(-1, 3).mean(axis=0)
            name, best = min(((n, float(np.abs(mean - c).sum())) for n, c in RGB.items()), key=lambda p: p[1])
            rows.append(self._onehot(name if best < self.tolerance else "other"))
        return np.stack(rows) if rows else np.zeros((0, len(WORDS)), np.float32)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        rows = []
        for text in texts:
            word = next((w for w in RGB if w in text.lower()), None)
            background = any(
                w in text.lower() for w in ("background", "texture", "blurry", "part of", "an object")
            )
            rows.append(self._onehot(word or ("background" if background else "other")))
        return np.stack(rows) if rows else np.zeros((0, len(WORDS)), np.float32)


def load_grid(path, device):
    """The documented loader signature: (path, DeviceConfig). No weights: path is None."""
    if path is not None:
        raise ValueError(f"toy-grid needs no weights, got {path}")
    return GridProposer(2, "toy-grid@1")


def load_colour(path, device):
    """An embedder directory: config.json says model_type toy_colour and its tolerance."""
    tolerance = 200.0
    if path is not None:
        tolerance = float(json.loads((Path(path) / "config.json").read_text())["tolerance"])
    return ColourEmbedder(f"toy-colour@{tolerance:g}", tolerance)


def models():
    register_model_type("toy_colour", "embedder", "seglens_toy_plugin:load_colour", needs_torch=False)
    return [
        ModelSpec(
            "toy-grid",
            "proposer",
            "toy",
            "seglens_toy_plugin:load_grid",
            needs_weights=False,
            needs_torch=False,
        ),
        ModelSpec(
            "toy-colour",
            "embedder",
            "toy",
            "seglens_toy_plugin:load_colour",
            needs_weights=False,
            needs_torch=False,
        ),
        Profile("toy", "toy-grid", "toy-colour", "A plugin's profile: grid cells scored by colour"),
    ]


def broken_models():
    """A plugin whose spec says nowhere where its weights come from."""
    return [ModelSpec("toy-broken", "proposer", "toy", "seglens_toy_plugin:load_grid")]
