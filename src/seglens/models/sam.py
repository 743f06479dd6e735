"""SAM-family backends (SAM, SAM-HQ, SAM 2/2.1) on Hugging Face transformers.

A backend does three things: `prepare` an image (resize + normalise, as the checkpoint's
image processor says), `encode_pixels` once per image, and `decode` batches of point or
box prompts against that embedding into low-resolution mask logits and predicted IoUs;
`upscale` turns logits into image-sized logits. Automatic mask generation (`amg.py`) and
interactive prompts are written once on top of these.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seglens.core.masks import encode_mask, mask_boxes_xyxy
from seglens.core.types import GenerationParams, PromptResult
from seglens.models.device import DeviceConfig
from seglens.models.protocols import ImageEmbedding, Proposal

__all__ = ["SamBackend", "load_sam", "load_sam2"]

_CPU_DECODER_CHUNK = 4


@dataclass
class Prepared:
    """`pixel_values` (1, 3, S, S) tensor; sizes are (height, width)."""

    pixel_values: Any
    original_hw: tuple[int, int]
    reshaped_hw: tuple[int, int]


class SamBackend:
    """A SAM-family model behind the `RegionProposer` protocol."""

    def __init__(
        self,
        model: Any,
        processor: Any,
        processor_config: dict[str, Any],
        family: str,
        device: DeviceConfig,
        model_id: str,
        meaningless: bool,
    ):
        self.model = model
        self.processor = processor
        self.family = family
        # The decoder repeats the image embedding once per prompt and is memory-bound: on a
        # CPU, prompts decoded a few at a time stay in cache and run about 1.8x faster than
        # a batch of 64 (benchmarks). On a GPU the whole batch goes at once.
        self.decoder_chunk = _CPU_DECODER_CHUNK if device.device == "cpu" else None
        self.device = device
        self.model_id = model_id
        self.meaningless = meaningless
        # Set by `loading.attach_backend`: an `OnnxSamRuntime` runs the encoder and the
        # multimask point decoder instead of PyTorch.
        self.runtime: Any = None
        self.backend_name = "torch"
        size = processor_config.get("size", {})
        if family == "sam2":
            self.input_size = int(size.get("height", 1024))
            self.square_resize = True
        else:
            self.input_size = int(size.get("longest_edge", 1024))
            self.square_resize = False
        self.pad_size = int(processor_config.get("pad_size", {}).get("height", self.input_size))
        self.mean = np.asarray(processor_config.get("image_mean", [0.485, 0.456, 0.406]), np.float32)
        self.std = np.asarray(processor_config.get("image_std", [0.229, 0.224, 0.225]), np.float32)

    # -- preprocess ---------------------------------------------------------------------
    def reshaped_size(self, original_hw: tuple[int, int]) -> tuple[int, int]:
        if self.square_resize:
            return (self.input_size, self.input_size)
        h, w = original_hw
        scale = self.input_size / max(h, w)
        return (int(h * scale + 0.5), int(w * scale + 0.5))

    def prepare(self, image: np.ndarray) -> Prepared:
        """Resize and normalise an (H, W, 3) uint8 image the way the checkpoint expects."""
        import torch

        original_hw = (int(image.shape[0]), int(image.shape[1]))
        if self.processor is not None:
            inputs = self.processor(images=image, return_tensors="pt")
            pixel_values = inputs["pixel_values"]
            reshaped = inputs.get("reshaped_input_sizes")
            reshaped_hw = (
                tuple(int(v) for v in reshaped[0])
                if reshaped is not None
                else self.reshaped_size(original_hw)
            )
        else:
            from PIL import Image

            reshaped_hw = self.reshaped_size(original_hw)
            resized = Image.fromarray(image).resize(
                (reshaped_hw[1], reshaped_hw[0]), Image.Resampling.BILINEAR
            )
            array = (np.asarray(resized, np.float32) / 255.0 - self.mean) / self.std
            canvas = np.zeros((self.pad_size, self.pad_size, 3), np.float32)
            canvas[: reshaped_hw[0], : reshaped_hw[1]] = array
            pixel_values = torch.from_numpy(canvas.transpose(2, 0, 1)[None].copy())
        pixel_values = pixel_values.to(self.device.device, self.device.torch_dtype())
        return Prepared(pixel_values, original_hw, (int(reshaped_hw[0]), int(reshaped_hw[1])))

    def to_input_coords(
        self, xy: np.ndarray, original_hw: tuple[int, int], reshaped_hw: tuple[int, int]
    ) -> np.ndarray:
        """Image pixel (x, y) → the model's input frame."""
        out = np.asarray(xy, np.float32).copy()
        out[..., 0] *= reshaped_hw[1] / original_hw[1]
        out[..., 1] *= reshaped_hw[0] / original_hw[0]
        return out

    # -- forward ------------------------------------------------------------------------
    def encode_pixels(self, pixel_values: Any) -> Any:
        import torch

        if self.runtime is not None and self.runtime.encoder is not None:
            return self.runtime.encode(pixel_values)
        with torch.inference_mode():
            return self.model.get_image_embeddings(pixel_values)

    def decode(
        self,
        payload: Any,
        points: Any,
        labels: Any,
        boxes: Any,
        multimask: bool,
        iou_floor: float | None = None,
    ) -> tuple[Any, Any]:
        """Prompts → ``(low_res_logits (P, M, h, w), iou (P, M))`` float32 tensors.

        `points` (1, P, N, 2) and `labels` (1, P, N) in the input frame, or None; `boxes`
        (1, P, 4) or None. With `iou_floor`, a prompt whose predicted IoUs are all at or below
        it may come back with zero logits (the ONNX runtime skips their upscaling).
        """
        import torch

        if self.runtime is not None and multimask and boxes is None:
            return self.runtime.decode(payload, points, labels, iou_floor)  # in its own chunks
        prompts = (points if points is not None else boxes).shape[1]
        chunk = self.decoder_chunk or prompts
        if prompts > chunk:
            parts = [
                self.decode(
                    payload,
                    None if points is None else points[:, start : start + chunk],
                    None if labels is None else labels[:, start : start + chunk],
                    None if boxes is None else boxes[:, start : start + chunk],
                    multimask,
                )
                for start in range(0, prompts, chunk)
            ]
            return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        kwargs: dict[str, Any] = {"multimask_output": multimask}
        if self.family == "sam-hq" and isinstance(payload, tuple):
            kwargs["image_embeddings"] = payload[0]
            kwargs["intermediate_embeddings"] = payload[1]
        else:
            kwargs["image_embeddings"] = payload
        if points is not None:
            kwargs["input_points"] = points.to(self.device.device, self.device.torch_dtype())
            kwargs["input_labels"] = labels.to(self.device.device)
        if boxes is not None:
            kwargs["input_boxes"] = boxes.to(self.device.device, self.device.torch_dtype())
        with torch.inference_mode():
            out = self.model(**kwargs)
        return out.pred_masks[0].float(), out.iou_scores[0].float()

    # -- postprocess --------------------------------------------------------------------
    def upscale(self, low_res: Any, original_hw: tuple[int, int], reshaped_hw: tuple[int, int]) -> Any:
        """(K, h, w) logits → (K, H, W) logits at the image size, exactly as the checkpoint's
        image processor post-processes them."""
        import torch.nn.functional as F

        x = low_res[:, None]
        if self.square_resize:
            x = F.interpolate(x, original_hw, mode="bilinear", align_corners=False)
        else:
            x = F.interpolate(x, (self.pad_size, self.pad_size), mode="bilinear", align_corners=False)
            x = x[..., : reshaped_hw[0], : reshaped_hw[1]]
            x = F.interpolate(x, original_hw, mode="bilinear", align_corners=False)
        return x[:, 0]

    # -- RegionProposer ----------------------------------------------------------------------
    def propose(self, image: np.ndarray, params: GenerationParams) -> Proposal:
        from seglens.models.amg import generate_regions

        return generate_regions(self, image, params)

    def encode(self, image: np.ndarray) -> ImageEmbedding:
        prepared = self.prepare(image)
        payload = self.encode_pixels(prepared.pixel_values)
        return ImageEmbedding(self.model_id, prepared.original_hw, (payload, prepared.reshaped_hw))

    def prompt(
        self,
        embedding: ImageEmbedding,
        points_xy: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        box_xyxy: np.ndarray | None = None,
    ) -> PromptResult:
        """Refine one mask from positive (label 1) / negative (label 0) points and/or a box.

        A single point is ambiguous, so three candidates are decoded and the one with the
        best predicted IoU wins; more prompts decode one mask."""
        import torch

        payload, reshaped_hw = embedding.payload
        original_hw = embedding.image_size_hw
        has_points = points_xy is not None and len(points_xy) > 0
        if not has_points and box_xyxy is None:
            raise ValueError("a prompt needs at least one point or a box")
        points = labels = boxes = None
        if has_points:
            assert points_xy is not None
            xy = np.asarray(points_xy, np.float32).reshape(-1, 2)
            lab = np.ones(len(xy), np.int64) if point_labels is None else np.asarray(point_labels, np.int64)
            if lab.shape != (len(xy),) or not np.isin(lab, (0, 1)).all():
                raise ValueError("point_labels must be one 0/1 label per point")
            h, w = original_hw
            if (xy[:, 0] < 0).any() or (xy[:, 0] >= w).any() or (xy[:, 1] < 0).any() or (xy[:, 1] >= h).any():
                raise ValueError(f"points must lie inside the {w}x{h} image")
            points = torch.from_numpy(self.to_input_coords(xy, original_hw, reshaped_hw))[None, None]
            labels = torch.from_numpy(lab)[None, None]
        if box_xyxy is not None:
            box = np.asarray(box_xyxy, np.float32).reshape(4)
            if box[2] <= box[0] or box[3] <= box[1]:
                raise ValueError("box must be [x0, y0, x1, y1] with x1 > x0 and y1 > y0")
            scaled = self.to_input_coords(box.reshape(2, 2), original_hw, reshaped_hw).reshape(4)
            boxes = torch.from_numpy(scaled)[None, None]
        single_point = has_points and points is not None and points.shape[2] == 1 and boxes is None
        low, iou = self.decode(payload, points, labels, boxes, multimask=single_point)
        best = int(torch.argmax(iou[0]))
        logits = self.upscale(low[0, best : best + 1], original_hw, reshaped_hw)
        mask = (logits[0] > 0.0).cpu().numpy()
        box_out = mask_boxes_xyxy(mask[None])[0]
        return PromptResult(
            rle=encode_mask(mask),
            score=float(iou[0, best]),
            bbox_xyxy=tuple(float(v) for v in box_out),  # type: ignore[arg-type]
            area=int(mask.sum()),
        )

    def embedding_to_arrays(self, embedding: ImageEmbedding) -> dict[str, np.ndarray]:
        payload, reshaped_hw = embedding.payload
        tensors = list(payload) if isinstance(payload, list | tuple) else [payload]
        arrays = {f"t{i}": t.float().cpu().numpy() for i, t in enumerate(tensors)}
        arrays["reshaped_hw"] = np.asarray(reshaped_hw, np.int64)
        arrays["kind"] = np.asarray(
            0 if not isinstance(payload, list | tuple) else (1 if isinstance(payload, list) else 2)
        )
        return arrays

    def embedding_from_arrays(
        self, arrays: dict[str, np.ndarray], image_size_hw: tuple[int, int]
    ) -> ImageEmbedding:
        import torch

        kind = int(arrays["kind"])
        keys = sorted((k for k in arrays if k.startswith("t")), key=lambda k: int(k[1:]))
        tensors = [
            torch.from_numpy(arrays[k]).to(self.device.device, self.device.torch_dtype()) for k in keys
        ]
        payload: Any = tensors[0] if kind == 0 else (tensors if kind == 1 else tuple(tensors))
        reshaped_hw = tuple(int(v) for v in arrays["reshaped_hw"])
        return ImageEmbedding(self.model_id, image_size_hw, (payload, reshaped_hw))


def _processor_config(path: Path) -> dict[str, Any]:
    config_file = path / "preprocessor_config.json"
    return json.loads(config_file.read_text()) if config_file.exists() else {}


def _load(
    path: Path, device: DeviceConfig, family: str, model_id: str | None, meaningless: bool
) -> SamBackend:
    from transformers import AutoImageProcessor, AutoModel

    started = time.perf_counter()
    model = AutoModel.from_pretrained(path, dtype=device.torch_dtype())
    model.to(device.device).eval()
    processor_config = _processor_config(path)
    processor: Any = None
    try:
        processor = AutoImageProcessor.from_pretrained(path)
    except (ImportError, ValueError, OSError):
        # SAM 2's image processor needs torchvision; the numpy path in `prepare` does the
        # same resize and normalisation from the checkpoint's preprocessor_config.json.
        processor = None
    backend = SamBackend(
        model, processor, processor_config, family, device, model_id or path.name, meaningless
    )
    backend.load_seconds = time.perf_counter() - started  # type: ignore[attr-defined]
    return backend


def load_sam(
    path: Path, device: DeviceConfig, *, model_id: str | None = None, meaningless: bool = False
) -> SamBackend:
    """Load SAM or SAM-HQ from a directory of `from_pretrained` files."""
    model_type = json.loads((path / "config.json").read_text()).get("model_type", "sam")
    family = "sam-hq" if model_type == "sam_hq" else "sam"
    return _load(path, device, family, model_id, meaningless)


def load_sam2(
    path: Path, device: DeviceConfig, *, model_id: str | None = None, meaningless: bool = False
) -> SamBackend:
    """Load SAM 2 / 2.1 from a directory of `from_pretrained` files."""
    return _load(path, device, "sam2", model_id, meaningless)
