"""The SAM-family image encoder and point-prompt mask decoder on ONNX Runtime.

Exported from the loaded transformers model (SAM and SAM 2/2.1; SAM-HQ stays on PyTorch)
with the TorchScript-based ONNX exporter, checked against transformers' forward pass on a
sample input, and cached by `runtime.ExportCache`. The mask decoder is exported from
`prompt_batch.PromptBatchDecoder`, the same function laid out for a batch of prompts.
`SamBackend` routes `encode_pixels` and multimask point decoding (automatic mask
generation, a single click) here; box prompts and multi-point prompts (one mask each) keep
the PyTorch decoder, which is small.

The image encoder runs on ONNX Runtime only for the families in `ENCODER_ON_RUNTIME` (none
by default: on PyTorch it is as fast here and peaks lower, see there); the decoder always
does. When an encoder session is built, the PyTorch vision encoder's weights are released
(the session holds its own copy), so that both runtimes' copies are not kept in memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from seglens.models.prompt_batch import PromptBatchDecoder, image_inputs
from seglens.models.runtime import (
    ExportCache,
    export_module,
    release_weights,
    session,
    shrink_arena,
    trim_heap,
)

if TYPE_CHECKING:
    from seglens.models.sam import SamBackend

__all__ = ["DECODER_CHUNK", "OnnxSamRuntime"]

# Prompts per ONNX Runtime decoder call (PyTorch's CPU decoder takes 4). A call's
# activations grow with it; 8 is as fast as 16 (SAM 2.1 Hiera-T, cpu-fast: decoder 17.3 s
# vs 19.2 s side by side, docs/benchmarks.md "Inference backend", third pass) and 4 doubled
# the decoder time. The decoder session pools its activations between the calls of one
# `OnnxSamRuntime.decode` (fresh pages cost a page fault each: decoder 6.5-7.0 s pooled vs
# 7.8-9.0 s unpooled, fifth pass) and gives them back after the last, so the pool never
# outlives a batch of prompts.
DECODER_CHUNK = 8

# Which families' image encoders run on ONNX Runtime (the mask decoder always does); both
# stay on PyTorch, measured in docs/benchmarks.md ("Inference backend"):
# - SAM's ViT encoder: its global-attention layers (4096 x 4096 per head at 1024 px) made
#   ONNX Runtime's peak 3.0 GB above the loaded process against ~1.5 GB for PyTorch's
#   (SAM ViT-B: peak RSS 4358 MB vs 2643 MB).
# - SAM 2.1's Hiera encoder: as fast on PyTorch (cpu-fast, side by side: 3.9 s vs 4.0 s
#   on ONNX Runtime), and its activations on ONNX Runtime peaked ~220 MB higher (1818 vs
#   1596 MB during the encode). The export path stays for a family set to True here.
ENCODER_ON_RUNTIME = {"sam": False, "sam2": False}

# The decoder graph's per-image inputs (`prompt_batch.image_inputs`): SAM has the first.
_DECODER_INPUTS = ["image", "high_res_coarse", "high_res_fine"]

# An export is used only if it reproduces PyTorch on a sample input this closely.
_MAX_IOU_DIFF = 1e-3
_MIN_MASK_AGREEMENT = 0.99
_MAX_EMBEDDING_DIFF = 1e-3  # relative to the embedding's largest magnitude


def _encoder_module(model: Any) -> Any:
    """`get_image_embeddings` as a module returning a tuple of tensors."""
    import torch

    class Encoder(torch.nn.Module):
        def __init__(self, inner: Any):
            super().__init__()
            self.inner = inner

        def forward(self, pixel_values: Any) -> Any:
            out = self.inner.get_image_embeddings(pixel_values)
            return tuple(out) if isinstance(out, list | tuple) else (out,)

    return Encoder(model).eval()


def _decoder_module(model: Any, levels: int) -> Any:
    """The prompt encoder and mask decoder (multimask) as a module on plain tensors."""
    import torch

    class Decoder(torch.nn.Module):
        def __init__(self, inner: Any):
            super().__init__()
            self.inner = inner

        def forward(self, points: Any, labels: Any, *embeddings: Any) -> Any:
            image_embeddings = list(embeddings) if levels > 1 else embeddings[0]
            out = self.inner(
                image_embeddings=image_embeddings,
                input_points=points,
                input_labels=labels,
                multimask_output=True,
            )
            return out.pred_masks, out.iou_scores

    return Decoder(model).eval()


class OnnxSamRuntime:
    """ONNX Runtime sessions for one `SamBackend`: `encode(pixel_values)` returns the
    payload `SamBackend.encode_pixels` returns (a tensor, or a list of tensors for SAM 2),
    when `encoder` is not None (`ENCODER_ON_RUNTIME`);
    `decode(payload, points, labels)` returns ``(low_res_logits (P, 3, h, w), iou (P, 3))``
    torch tensors for multimask point prompts."""

    def __init__(self, encoder: Any, decoder: Any, levels: int, input_hw: tuple[int, int]):
        self.encoder = encoder
        self.decoder = decoder
        self.levels = levels
        self.input_hw = input_hw
        self.decoder_chunk = DECODER_CHUNK  # prompts per decoder call
        # The last image's payload and its decoder inputs (`prompt_batch.image_inputs`).
        self._prepared: tuple[Any, dict[str, np.ndarray]] = (None, {})

    @classmethod
    def build(cls, backend: SamBackend, cache: ExportCache) -> OnnxSamRuntime:
        """Export (or find cached) and open both sessions. Raises on anything that fails:
        an unsupported family, an export error or a parity check that does not pass."""
        import torch

        if backend.family not in ("sam", "sam2"):
            raise TypeError(f"no ONNX export for the {backend.family} family")
        model = backend.model
        side = backend.pad_size if backend.family == "sam" else backend.input_size
        pixels = torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(0))
        # PyTorch's encoder runs only when a graph has to be exported (the sample the
        # export traces and is checked on): with a cached export its weights are never
        # touched (they are memory-mapped, so they never become resident) nor its
        # activations allocated.
        sample: list[Any] = []

        def reference() -> list[Any]:
            if not sample:
                with torch.inference_mode():
                    out = backend.encode_pixels(pixels)
                sample.extend(list(out) if isinstance(out, list | tuple) else [out])
            return sample

        def export_encoder(path: Path) -> None:
            tensors = reference()
            names = [f"embedding{i}" for i in range(len(tensors))]
            export_module(_encoder_module(model), (pixels,), path, ["pixel_values"], names, {})
            got = session(path).run(None, {"pixel_values": pixels.numpy()})
            for want, have in zip(tensors, got, strict=True):
                scale = max(float(want.abs().max()), 1e-6)
                diff = float(np.abs(want.numpy() - have).max()) / scale
                if diff > _MAX_EMBEDDING_DIFF:
                    raise RuntimeError(f"exported image encoder differs from PyTorch by {diff:.2e}")

        def export_decoder(path: Path) -> None:
            tensors = reference()
            points = torch.rand(1, 5, 1, 2, generator=torch.Generator().manual_seed(1)) * (side - 1)
            labels = torch.ones(1, 5, 1, dtype=torch.int64)
            inputs = image_inputs(tensors if len(tensors) > 1 else tensors[0])
            names = _DECODER_INPUTS[: len(inputs)]
            dynamic = {"points": {1: "prompts", 2: "points"}, "labels": {1: "prompts", 2: "points"}}
            dynamic |= {"masks": {0: "prompts"}, "iou": {0: "prompts"}}
            every = torch.tensor([float("-inf")])  # no IoU floor: every prompt's masks
            with torch.inference_mode():  # transformers' own forward pass is the reference
                want_masks, want_iou = _decoder_module(model, len(tensors))(points, labels, *tensors)
            export_module(
                PromptBatchDecoder(model).eval(),
                (points, labels, every, *inputs),
                path,
                ["points", "labels", "iou_floor", *names],
                ["masks", "iou"],
                dynamic,
            )
            feed = {"points": points.numpy(), "labels": labels.numpy(), "iou_floor": every.numpy()}
            feed |= {name: t.numpy() for name, t in zip(names, inputs, strict=True)}
            masks, iou = session(path).run(None, feed)
            iou_diff = float(np.abs(want_iou[0].numpy() - iou).max())
            agreement = float(((want_masks[0].numpy() > 0) == (masks > 0)).mean())
            if iou_diff > _MAX_IOU_DIFF or agreement < _MIN_MASK_AGREEMENT:
                raise RuntimeError(
                    f"exported mask decoder differs from PyTorch (IoU {iou_diff:.2e}, masks {agreement:.4f})"
                )

        on_runtime = ENCODER_ON_RUNTIME.get(backend.family, False)
        encoder_path = cache.get("image_encoder", export_encoder) if on_runtime else None
        decoder_path = cache.get("mask_decoder", export_decoder)
        sample.clear()
        decoder = session(decoder_path, arena=True)
        levels = sum(1 for i in decoder.get_inputs() if i.name in _DECODER_INPUTS)
        encoder = session(encoder_path) if encoder_path is not None else None
        runtime = cls(encoder, decoder, levels, (side, side))
        if encoder is not None:
            release_weights(getattr(model, "vision_encoder", None))
        return runtime

    def encode(self, pixel_values: Any) -> Any:
        import torch

        array = pixel_values.detach().float().cpu().numpy()
        outputs = [torch.from_numpy(o) for o in self.encoder.run(None, {"pixel_values": array})]
        return outputs if self.levels > 1 else outputs[0]

    def decode(
        self, payload: Any, points: Any, labels: Any, iou_floor: float | None = None
    ) -> tuple[Any, Any]:
        """All the prompts of `points` (1, P, n, 2) / `labels` (1, P, n), `decoder_chunk` a
        call; the decoder's pooled activations are given back after the last call. A prompt
        whose three predicted IoUs are all at or below `iou_floor` gets zero logits (the
        graph skips its upscaling)."""
        import torch

        held, inputs = self._prepared
        if held is not payload:  # a new image: its decoder inputs, made once
            tensors = image_inputs(payload)
            names = _DECODER_INPUTS[: len(tensors)]
            inputs = {n: t.detach().float().cpu().numpy() for n, t in zip(names, tensors, strict=True)}
            self._prepared = (payload, inputs)
        points = points.detach().float().cpu().numpy()
        labels = labels.detach().to(torch.int64).cpu().numpy()
        prompts = points.shape[1]
        floor = np.asarray([-np.inf if iou_floor is None else iou_floor], np.float32)
        h, w = inputs[_DECODER_INPUTS[0]].shape[-2:]
        # The graph writes into these: no output is left in (and pins) the session's pool.
        masks = np.empty((prompts, 3, 4 * h, 4 * w), np.float32)
        iou = np.empty((prompts, 3), np.float32)
        for start in range(0, prompts, self.decoder_chunk):
            end = min(start + self.decoder_chunk, prompts)
            binding = self.decoder.io_binding()
            feed = {"points": points[:, start:end], "labels": labels[:, start:end], "iou_floor": floor}
            for name, array in (feed | inputs).items():
                binding.bind_cpu_input(name, np.ascontiguousarray(array))
            for name, out in (("masks", masks[start:end]), ("iou", iou[start:end])):
                binding.bind_output(name, "cpu", 0, np.float32, list(out.shape), out.ctypes.data)
            self.decoder.run_with_iobinding(binding, shrink_arena() if end == prompts else None)
        trim_heap()  # what the pool gave back (a few ms)
        return torch.from_numpy(masks), torch.from_numpy(iou)
