"""Fakes at the model seams: a synthetic image whose right answer is known, a proposer that
returns its shapes, and an oracle embedder that "sees" colour names."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from seglens.core.masks import encode_mask, mask_boxes_xyxy, rle_areas
from seglens.core.types import GenerationParams, PromptResult, Regions
from seglens.models.protocols import ImageEmbedding, Proposal
from seglens.storage.jobs_repo import ClaimedItem

COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 200, 40),
    "blue": (30, 40, 220),
    "yellow": (230, 220, 30),
}
NAMES = ("red", "green", "blue", "yellow", "other", "background")


def shapes_scene(height: int = 120, width: int = 160, colours: Sequence[str] = ("red", "green", "blue")):
    """A white image with one shape per colour; returns (image, {colour: mask})."""
    image = np.full((height, width, 3), 255, np.uint8)
    masks: dict[str, np.ndarray] = {}
    yy, xx = np.mgrid[:height, :width]
    slots = [(10, 10, 50, 50), (60, 10, 100, 50), (10, 60, 60, 110), (70, 60, 110, 140)]
    for (y0, x0, y1, x1), colour in zip(slots, colours, strict=False):
        if colour == "green":
            cy, cx, r = (y0 + y1) / 2, (x0 + x1) / 2, (y1 - y0) / 2
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2
        else:
            mask = np.zeros((height, width), bool)
            mask[y0:y1, x0:x1] = True
        image[mask] = COLOURS[colour]
        masks[colour] = mask
    return image, masks


def regions_from_masks(masks: Sequence[np.ndarray]) -> Regions:
    rles = tuple(encode_mask(m) for m in masks)
    stack = np.stack(masks)
    return Regions(
        image_size_hw=masks[0].shape,
        rles=rles,
        boxes_xyxy=mask_boxes_xyxy(stack),
        areas=rle_areas(list(rles)),
        predicted_iou=np.linspace(0.99, 0.9, len(masks)).astype(np.float32),
        stability=np.full(len(masks), 0.97, np.float32),
        points_xy=np.zeros((len(masks), 2), np.float32),
    )


@dataclass
class FakeProposer:
    """Returns fixed masks for any image and counts the calls that touch pixels."""

    masks: list[np.ndarray]
    model_id: str = "fake-proposer@1"
    meaningless: bool = False
    calls: list[str] = field(default_factory=list)

    def propose(self, image: np.ndarray, params: GenerationParams) -> Proposal:
        self.calls.append("propose")
        embedding = ImageEmbedding(self.model_id, image.shape[:2], image.copy())
        regions = regions_from_masks(self.masks) if self.masks else Regions.empty(image.shape[:2])
        return Proposal(regions, embedding, {"image_encoder": 1.0, "mask_decoder": 1.0})

    def encode(self, image: np.ndarray) -> ImageEmbedding:
        self.calls.append("encode")
        return ImageEmbedding(self.model_id, image.shape[:2], image.copy())

    def prompt(self, embedding, points_xy=None, point_labels=None, box_xyxy=None) -> PromptResult:
        self.calls.append("prompt")
        h, w = embedding.image_size_hw
        mask = np.zeros((h, w), bool)
        if box_xyxy is not None:
            x0, y0, x1, y1 = (int(v) for v in box_xyxy)
            mask[y0:y1, x0:x1] = True
        else:
            x, y = (int(v) for v in points_xy[0])
            mask[max(0, y - 5) : y + 5, max(0, x - 5) : x + 5] = True
        box = tuple(float(v) for v in mask_boxes_xyxy(mask[None])[0])
        return PromptResult(encode_mask(mask), 0.9, box, int(mask.sum()))

    def embedding_to_arrays(self, embedding: ImageEmbedding) -> dict[str, np.ndarray]:
        return {"pixels": embedding.payload}

    def embedding_from_arrays(self, arrays, image_size_hw) -> ImageEmbedding:
        return ImageEmbedding(self.model_id, image_size_hw, arrays["pixels"])


def _colour_name(pixel: np.ndarray) -> str:
    best, best_d = "other", 1e9
    for name, rgb in COLOURS.items():
        d = float(np.abs(pixel.astype(float) - rgb).sum())
        if d < best_d:
            best, best_d = name, d
    return best if best_d < 90 else "other"


@dataclass
class OracleEmbedder:
    """Embeds a crop as the one-hot of its dominant non-grey, non-white colour, and a text
    as the one-hot of the colour word it contains ("background" prompts → background)."""

    model_id: str = "oracle@1"
    meaningless: bool = False
    logit_scale: float = 100.0
    logit_bias: float = 0.0
    score_kind: str = "softmax"
    language: str = "en"
    input_size: int | None = None
    image_batch_size: int = 32
    image_calls: int = 0
    text_calls: int = 0

    def _onehot(self, name: str) -> np.ndarray:
        v = np.full(len(NAMES), 0.02, np.float32)
        v[NAMES.index(name)] = 1.0
        return v / np.linalg.norm(v)

    def embed_images(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        self.image_calls += 1
        out = []
        for crop in crops:
            pixels = crop.reshape(-1, 3).astype(int)
            grey = np.abs(pixels - pixels.mean(axis=1, keepdims=True)).sum(axis=1) < 30
            coloured = pixels[~grey]
            if len(coloured) == 0:
                out.append(self._onehot("background"))
                continue
            names, counts = np.unique(
                [_colour_name(p) for p in coloured[:: max(1, len(coloured) // 200)]],
                return_counts=True,
            )
            out.append(self._onehot(str(names[np.argmax(counts)])))
        return np.stack(out) if out else np.zeros((0, len(NAMES)), np.float32)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        self.text_calls += 1
        out = []
        for text in texts:
            words = text.lower()
            name = next((n for n in COLOURS if n in words), None)
            if name is None:
                name = (
                    "background"
                    if any(w in words for w in ("background", "texture", "blurry", "part of", "an object"))
                    else "other"
                )
            out.append(self._onehot(name))
        return np.stack(out) if out else np.zeros((0, len(NAMES)), np.float32)


class ScriptedQueue:
    """Stands in for the job repository of a `Scheduler`: one job with `count` images."""

    def __init__(self, count: int):
        self.left = count

    def runnable(self):
        return [("job", 0)] if self.left else []

    def claim_next(self, job_id):
        if not self.left:
            return None
        self.left -= 1
        return ClaimedItem(job=None, item=None)  # type: ignore[arg-type]


class HeldRequests:
    """Interactive requests held open by hand, oldest first."""

    def __init__(self, scheduler: Any):
        self.scheduler = scheduler
        self.open: list = []

    def begin(self) -> None:
        block = self.scheduler.interactive()
        block.__enter__()
        self.open.append(block)

    def end_oldest(self) -> None:
        self.open.pop(0).__exit__(None, None, None)

    def end_all(self) -> None:
        while self.open:
            self.end_oldest()
