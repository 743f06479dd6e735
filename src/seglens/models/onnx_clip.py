"""CLIP-family image and text towers on ONNX Runtime.

Exported from the loaded transformers model (``get_image_features`` on pixel values,
``get_text_features`` on the family's tokenizer outputs, both with dynamic batch and text
length), checked against the PyTorch forward pass on sample inputs, and cached by
`runtime.ExportCache`. SigLIP 2 NaFlex (variable patch grids) stays on PyTorch.

The shared-prefix text path (`clip_prefix.PrefixCache`, what a new keyword costs) runs on
a third graph, `clip_prefix.suffix_module`: the text tower on the tokens after a cached
prefix, taking the prefix's keys and values as inputs. Once the sessions are built, the
PyTorch model's weights are released (nothing runs on them any more), so that the two
runtimes' copies are not both kept in memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from seglens.models.clip_prefix import suffix_shape
from seglens.models.runtime import ExportCache, export_module, release_weights, session

if TYPE_CHECKING:
    from seglens.models.clip import ClipEmbedder

__all__ = ["OnnxClipRuntime"]

_MIN_COSINE = 0.9999  # an export must reproduce PyTorch's embeddings this closely

# Whether the image tower's session pre-packs its weights. Off: it reads them from the
# memory-mapped data file, resident only once touched and reclaimable, as PyTorch's are,
# instead of holding 350 MB of packed copies from load on, and it is as fast (its products
# have ~50 rows per crop). The text tower (a few rows a call) and the mask decoder keep
# pre-packing: without it a new keyword took 26-30 ms instead of 10-14 ms, and the decoder
# ~4x as long. Measured in docs/benchmarks.md ("Inference backend", fourth pass).
IMAGE_TOWER_PREPACK = False


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
    `text_features(inputs)` return (N, D) float32 torch tensors (not normalised).

    The text tower is one of two graphs: for CLIP's causal tower (when the embedder has a
    `PrefixCache`) the suffix graph, which also runs whole texts (no prefix, offset 0),
    so that the tower's weights are held once; for the others the plain tower."""

    def __init__(
        self,
        image: Any,
        text: Any,
        text_inputs: tuple[str, ...],
        suffix: Any = None,
        shape: tuple[int, int, int] = (0, 0, 0),
    ):
        self.image = image
        self.text = text
        self.text_inputs = text_inputs
        self.suffix = suffix
        self.shape = shape  # the text tower's layers, heads, head size (suffix graph)

    @classmethod
    def build(cls, embedder: ClipEmbedder, cache: ExportCache) -> OnnxClipRuntime:
        """Export (or find cached) and open both towers' sessions, then release the
        PyTorch weights. Raises on anything that fails: an unsupported family, an export
        error or a parity check that does not pass (the weights are then kept)."""
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

        def want_text() -> np.ndarray:
            with torch.inference_mode():
                return np.asarray(text_module(*sample).numpy())

        def export_text(path: Path) -> None:
            want = want_text()
            dynamic: dict[str, dict[int, str]] = {k: {0: "batch", 1: "tokens"} for k in text_inputs}
            dynamic["features"] = {0: "batch"}
            export_module(text_module, sample, path, list(text_inputs), ["features"], dynamic)
            feed = {k: t.numpy() for k, t in zip(text_inputs, sample, strict=True)}
            _check(want, session(path).run(None, feed)[0], "text tower")

        image = session(cache.get("image_tower", export_image), prepack=IMAGE_TOWER_PREPACK)
        prefix_cache = embedder._prefix_cache
        if prefix_cache is None:
            runtime = cls(image, session(cache.get("text_tower", export_text)), text_inputs)
        else:

            def export_suffix(path: Path) -> None:
                _export_suffix(model, path)
                # Whole texts run through it too: check them against transformers' tower.
                probe = cls(None, None, text_inputs, session(path), suffix_shape(model))
                got = probe.text_features(dict(zip(text_inputs, sample, strict=True))).numpy()
                _check(want_text(), got, "text tower (whole texts)")

            suffix_path = cache.get("text_suffix", export_suffix)
            runtime = cls(image, None, text_inputs, session(suffix_path), suffix_shape(model))
            prefix_cache.use_runner(runtime.run_suffix)
        release_weights(model)
        return runtime

    def image_features(self, pixel_values: Any) -> Any:
        import torch

        array = pixel_values.detach().float().cpu().numpy()
        return torch.from_numpy(self.image.run(None, {"pixel_values": array})[0])

    def text_features(self, inputs: dict[str, Any]) -> Any:
        """Features of whole texts (the tokenizer's right-padded tensors)."""
        import torch

        feed = {k: inputs[k].detach().to(torch.int64).cpu().numpy() for k in self.text_inputs if k in inputs}
        if self.text is not None:
            return torch.from_numpy(self.text.run(None, feed)[0])
        ids = feed["input_ids"]
        rows = ids.shape[0]
        if "attention_mask" in feed:
            last = feed["attention_mask"].sum(axis=1).astype(np.int64) - 1
        else:
            last = np.full(rows, ids.shape[1] - 1, np.int64)
        layers, heads, head_dim = self.shape
        nothing = np.zeros((layers, rows, heads, 1, head_dim), np.float32)  # offset 0: not seen
        features, _, _ = self.run_suffix(ids, np.zeros(rows, np.int64), nothing, nothing, last)
        return torch.from_numpy(features)

    def run_suffix(self, *arrays: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The suffix graph (`clip_prefix.SuffixRunner`)."""
        names = ("ids", "offsets", "past_keys", "past_values", "last")
        features, keys, values = self.suffix.run(None, dict(zip(names, arrays, strict=True)))
        return features, keys, values


def _export_suffix(model: Any, path: Path) -> None:
    """Export `clip_prefix.suffix_module` and check it against its PyTorch forward pass on
    two rows after prefixes of different lengths (one row seeing no prefix)."""
    import torch

    from seglens.models.clip_prefix import suffix_module

    module = suffix_module(model)
    layers, heads, head_dim = suffix_shape(model)
    text = model.text_model
    generator = torch.Generator().manual_seed(2)
    sample = (
        torch.tensor([[320, 1125, 269, 49407], [1929, 49407, 0, 0]], dtype=torch.int64).clamp(
            max=text.embeddings.token_embedding.num_embeddings - 1
        ),
        torch.tensor([5, 0], dtype=torch.int64),
        torch.randn(layers, 2, heads, 6, head_dim, generator=generator),
        torch.randn(layers, 2, heads, 6, head_dim, generator=generator),
        torch.tensor([3, 1], dtype=torch.int64),
    )
    names = ["ids", "offsets", "past_keys", "past_values", "last"]
    dynamic = {"ids": {0: "batch", 1: "tokens"}, "offsets": {0: "batch"}, "last": {0: "batch"}}
    dynamic |= {k: {1: "batch", 3: "cached"} for k in ("past_keys", "past_values")}
    dynamic |= {"features": {0: "batch"}} | {k: {1: "batch", 3: "tokens"} for k in ("keys", "values")}
    with torch.inference_mode():
        want = [t.numpy() for t in module(*sample)]
    export_module(module, sample, path, names, ["features", "keys", "values"], dynamic)
    got = session(path).run(None, {n: t.numpy() for n, t in zip(names, sample, strict=True)})
    _check(want[0], got[0], "text tower (suffix)")
    diff = max(float(np.abs(w - g).max()) for w, g in zip(want[1:], got[1:], strict=True))
    if diff > 1e-3:
        raise RuntimeError(f"exported text tower (suffix) keys/values differ from PyTorch by {diff:.2e}")


def _check(want: np.ndarray, got: np.ndarray, what: str) -> None:
    cosine = _cosine_min(want, got)
    if not cosine >= _MIN_COSINE:
        raise RuntimeError(f"exported {what} differs from PyTorch (cosine {cosine:.6f})")
