"""CLIP-family image and text towers on ONNX Runtime.

Exported from the loaded transformers model (``get_image_features`` on pixel values,
``get_text_features`` on the family's tokenizer outputs, both with dynamic batch and text
length), checked against the PyTorch forward pass on sample inputs, and cached by
`runtime.ExportCache`. SigLIP 2 NaFlex (variable patch grids) stays on PyTorch.

The shared-prefix text path (`clip_prefix.PrefixCache`) keeps running on PyTorch: it
feeds cached keys and values into the layers, which the exported tower does not take.
Once the image-tower session is built, the PyTorch vision tower's weights are released.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from seglens.models.runtime import ExportCache, export_module, release_weights, session

if TYPE_CHECKING:
    from seglens.models.clip import ClipEmbedder

__all__ = ["OnnxClipRuntime"]

_MIN_COSINE = 0.9999  # an export must reproduce PyTorch's embeddings this closely


def _tower(model: Any, which: str, inputs: tuple[str, ...]) -> Any:
    """``get_image_features`` / ``get_text_features`` as a module on positional tensors
    returning the pooled (N, D) features."""
    import torch

    from seglens.models.clip import _pooled

    class Tower(torch.nn.Module):
        def __init__(self, inner: Any):
            super().__init__()
            self.inner = inner

        def forward(self, *args: Any) -> Any:
            kwargs = dict(zip(inputs, args, strict=True))
            method = self.inner.get_image_features if which == "image" else self.inner.get_text_features
            return _pooled(method(**kwargs))

    return Tower(model).eval()


def _cosine_min(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return float((a * b).sum(axis=1).min())


class OnnxClipRuntime:
    """ONNX Runtime sessions for one `ClipEmbedder`: `image_features(pixel_values)` and
    `text_features(inputs)` return (N, D) float32 torch tensors (not normalised)."""

    def __init__(self, image: Any, text: Any, text_inputs: tuple[str, ...]):
        self.image = image
        self.text = text
        self.text_inputs = text_inputs

    @classmethod
    def build(cls, embedder: ClipEmbedder, cache: ExportCache) -> OnnxClipRuntime:
        """Export (or find cached) and open both towers' sessions. Raises on anything that
        fails: an unsupported family, an export error or a parity check that does not pass."""
        import torch

        if embedder.model_type == "siglip2":
            raise TypeError("no ONNX export for SigLIP 2 NaFlex (variable patch grids)")
        model = embedder.model
        side = embedder.input_size or 224
        pixels = torch.randn(2, 3, side, side, generator=torch.Generator().manual_seed(0))
        image_module = _tower(model, "image", ("pixel_values",))

        def export_image(path: Path) -> None:
            with torch.inference_mode():
                want = image_module(pixels).numpy()
            dynamic = {"pixel_values": {0: "batch"}, "features": {0: "batch"}}
            export_module(image_module, (pixels,), path, ["pixel_values"], ["features"], dynamic)
            got = session(path).run(None, {"pixel_values": pixels.numpy()})[0]
            _check(want, got, "image tower")

        text_inputs = embedder.text_input_names
        encoded = embedder.tokenize(["a photo of a cat.", "a dog"])
        sample = tuple(torch.as_tensor(np.asarray(encoded[k])) for k in text_inputs)
        text_module = _tower(model, "text", text_inputs)

        def export_text(path: Path) -> None:
            with torch.inference_mode():
                want = text_module(*sample).numpy()
            dynamic: dict[str, dict[int, str]] = {k: {0: "batch", 1: "tokens"} for k in text_inputs}
            dynamic["features"] = {0: "batch"}
            export_module(text_module, sample, path, list(text_inputs), ["features"], dynamic)
            feed = {k: t.numpy() for k, t in zip(text_inputs, sample, strict=True)}
            _check(want, session(path).run(None, feed)[0], "text tower")

        image_path = cache.get("image_tower", export_image)
        text_path = cache.get("text_tower", export_text)
        runtime = cls(session(image_path), session(text_path), text_inputs)
        release_weights(getattr(model, "vision_model", None))
        return runtime

    def image_features(self, pixel_values: Any) -> Any:
        import torch

        array = pixel_values.detach().float().cpu().numpy()
        return torch.from_numpy(self.image.run(None, {"pixel_values": array})[0])

    def text_features(self, inputs: dict[str, Any]) -> Any:
        import torch

        feed = {k: inputs[k].detach().to(torch.int64).cpu().numpy() for k in self.text_inputs if k in inputs}
        return torch.from_numpy(self.text.run(None, feed)[0])


def _check(want: np.ndarray, got: np.ndarray, what: str) -> None:
    cosine = _cosine_min(want, got)
    if not cosine >= _MIN_COSINE:
        raise RuntimeError(f"exported {what} differs from PyTorch (cosine {cosine:.6f})")
