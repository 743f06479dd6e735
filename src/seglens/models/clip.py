"""CLIP-family image-text embedders on Hugging Face transformers: CLIP, Chinese-CLIP, SigLIP
and SigLIP 2 (NaFlex), behind the `ImageTextEmbedder` protocol.

One class serves all four; what differs per family is data (`_FAMILIES`):

- scores: CLIP and Chinese-CLIP were trained with a softmax over classes (``score_kind``
  ``"softmax"``, `logit_bias` 0); SigLIP with an independent sigmoid per pair
  (``"sigmoid"``, ``sigmoid(logit_scale * cos + logit_bias)``).
- text: CLIP pools the EOS token under a causal mask and Chinese-CLIP the CLS token under
  the attention mask, so both pad to the longest text of a batch. SigLIP was trained on
  texts right-padded to 64 tokens with no attention mask and pools the last position, so
  its texts are right-padded to 64 and only ``input_ids`` reach the model (what the
  official conversion script configures its tokenizer to do).
- images: whatever `AutoImageProcessor` finds in the checkpoint; without torchvision
  transformers 5 picks the PIL backends (``CLIPImageProcessorPil``,
  ``ChineseCLIPImageProcessorPil``, ``SiglipImageProcessorPil``, ``Siglip2ImageProcessorPil``).

torch and transformers are imported only when a model is loaded or used.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from PIL import Image

from seglens.models.clip_prefix import PrefixCache
from seglens.models.device import DeviceConfig

if TYPE_CHECKING:
    import torch

__all__ = ["SIGLIP_TEXT_LENGTH", "SUPPORTED_MODEL_TYPES", "ClipEmbedder", "load_clip"]

ScoreKind = Literal["softmax", "sigmoid"]

# SigLIP and SigLIP 2 were trained on texts of exactly this many tokens.
SIGLIP_TEXT_LENGTH = 64

# A text vocabulary this large is a multilingual one (Gemma's 256k, mT5's 250k); the
# English SigLIP checkpoints use 32k.
_MULTILINGUAL_VOCAB_SIZE = 100_000

_RANDOM_MARKERS = ("SEGLENS_RANDOM_WEIGHTS", "SEGLENS_TINY")  # hub.RANDOM_WEIGHTS_MARKER, legacy


@dataclass(frozen=True)
class _Family:
    score_kind: ScoreKind
    language: str
    text_inputs: tuple[str, ...]  # tokenizer outputs the text tower receives
    pad_to_max_length: bool


_FAMILIES: dict[str, _Family] = {
    "clip": _Family("softmax", "en", ("input_ids", "attention_mask"), False),
    "chinese_clip": _Family("softmax", "zh", ("input_ids", "attention_mask", "token_type_ids"), False),
    "siglip": _Family("sigmoid", "en", ("input_ids",), True),
    "siglip2": _Family("sigmoid", "multi", ("input_ids",), True),
}

SUPPORTED_MODEL_TYPES: tuple[str, ...] = tuple(_FAMILIES)

# Image processor outputs the image towers accept (SigLIP 2 NaFlex adds the last two).
_IMAGE_INPUTS = ("pixel_values", "pixel_attention_mask", "spatial_shapes")


class ClipEmbedder:
    """A loaded CLIP-family model implementing `ImageTextEmbedder`.

    Attributes: `model_id`, `model_type` (config ``model_type``), `meaningless` (random
    weights: scores mean nothing), `logit_scale` (``exp`` of the model's learned log scale,
    e.g. 100.0 for OpenAI CLIP), `logit_bias` (SigLIP's learned bias, else 0.0),
    `score_kind`, `language` (``"en"``, ``"zh"`` or ``"multi"``), `dim` (embedding size D),
    `image_batch_size` / `text_batch_size` (items per forward pass; results do not depend
    on them beyond float rounding), `text_max_length` (tokens; longer texts are truncated).

    Not thread-safe: callers serialise access (one model, one forward pass at a time).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        image_processor: Any,
        *,
        model_type: str,
        device: DeviceConfig,
        model_id: str,
        meaningless: bool = False,
        language: str | None = None,
        image_batch_size: int = 32,
        text_batch_size: int = 256,
    ) -> None:
        if model_type not in _FAMILIES:
            raise ValueError(_unsupported(model_type))
        for name, value in (
            ("image_batch_size", image_batch_size),
            ("text_batch_size", text_batch_size),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        family = _FAMILIES[model_type]
        self.model = model
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.model_type = model_type
        self.device = device
        self.model_id = model_id
        self.meaningless = meaningless
        self.score_kind: ScoreKind = family.score_kind
        self.language = language or _default_language(model_type, tokenizer)
        self.image_batch_size = image_batch_size
        self.text_batch_size = text_batch_size
        self.logit_scale = _exp_parameter(getattr(model, "logit_scale", None), default=1.0)
        self.logit_bias = _parameter(getattr(model, "logit_bias", None), default=0.0)
        self._family = family
        self._dim = _embedding_dim(model.config, model_type)
        self.text_max_length = _text_max_length(model.config, tokenizer, family)
        if family.pad_to_max_length:
            # SigLIP was trained on right-padded texts and pools the last position; Gemma's
            # tokenizers default to left padding, which would shift every text.
            tokenizer.padding_side = "right"
        self.load_seconds = 0.0
        self.input_size = _input_size(image_processor)
        # Set by `loading.attach_backend`: an `OnnxClipRuntime` runs both towers' plain
        # forward passes instead of PyTorch (the shared-prefix text path stays on PyTorch).
        self.runtime: Any = None
        self.backend_name = "torch"
        self._prefix_cache = PrefixCache.attach(model, tokenizer, device.device, self.text_max_length)

    def share_prefixes(self, prefixes: Sequence[str]) -> None:
        """Texts that start with one of `prefixes` (prompt templates up to the keyword,
        e.g. ``"a photo of a"``) reuse that prefix's text-tower states, computed once:
        a new keyword then costs its own few tokens. Only CLIP's causal text tower can;
        elsewhere this does nothing. Embeddings do not change beyond float rounding."""
        if self._prefix_cache is None:
            return
        import torch

        with torch.inference_mode():
            self._prefix_cache.register(prefixes)

    @property
    def dim(self) -> int:
        """Embedding size D of both towers."""
        return self._dim

    def embed_images(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """Embed image crops: each (h, w, 3) uint8 RGB with h, w >= 1 (square-padded by the
        caller; the model's own preprocessing resizes it). Returns (N, D) float32 rows of
        unit L2 norm, in input order; (0, D) for no crops. Raises TypeError/ValueError for a
        crop of the wrong type, shape or dtype."""
        images = [_to_pil(crop, i) for i, crop in enumerate(crops)]
        out = np.zeros((len(images), self._dim), dtype=np.float32)
        if not images:
            return out
        import torch

        with torch.inference_mode():
            for start in range(0, len(images), self.image_batch_size):
                batch = images[start : start + self.image_batch_size]
                encoded = self.image_processor(images=batch, return_tensors="pt")
                inputs = self._on_device(encoded, _IMAGE_INPUTS)
                if self.runtime is not None:
                    features = self.runtime.image_features(inputs["pixel_values"])
                else:
                    features = _pooled(self.model.get_image_features(**inputs))
                out[start : start + len(batch)] = _unit_rows(features, self._dim)
        return out

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts as they are (prompt templates are the caller's business). Returns
        (N, D) float32 rows of unit L2 norm, in input order; (0, D) for no texts. Texts longer
        than `text_max_length` tokens are truncated. Raises TypeError if `texts` is a bare
        string or holds a non-string."""
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of strings, not a single string")
        items = list(texts)
        for i, text in enumerate(items):
            if not isinstance(text, str):
                raise TypeError(f"texts[{i}] is {type(text).__name__}, expected str")
        out = np.zeros((len(items), self._dim), dtype=np.float32)
        if not items:
            return out
        plain = list(range(len(items)))
        if self._prefix_cache is not None:
            plain = self._embed_with_prefixes(items, out)
        self._embed_plain([items[i] for i in plain], out, plain)
        return out

    def _embed_with_prefixes(self, items: list[str], out: np.ndarray) -> list[int]:
        """Fill `out` for the texts that start with a shared prefix; returns the indices
        left for the plain path. The first use checks the cached path against the plain
        one on a real text (and turns it off for good if they disagree)."""
        import torch

        cache = self._prefix_cache
        assert cache is not None
        chosen, rows = cache.split(items)
        with torch.inference_mode():
            for start in range(0, len(rows), self.text_batch_size):
                features = cache.embed(rows[start : start + self.text_batch_size])
                out[chosen[start : start + len(features)]] = _unit_rows(features, self._dim)
        if chosen and not cache.checked:
            first = chosen[0]
            reference = np.zeros((1, self._dim), dtype=np.float32)
            self._embed_plain([items[first]], reference, [0])
            if not cache.self_check(items[first], reference[0], out[first]):
                return list(range(len(items)))
        taken = set(chosen)
        return [i for i in range(len(items)) if i not in taken]

    def _embed_plain(self, texts: list[str], out: np.ndarray, rows: list[int]) -> None:
        """The model's own forward pass on `texts`, written to `out[rows]`."""
        import torch

        with torch.inference_mode():
            for start in range(0, len(texts), self.text_batch_size):
                batch = texts[start : start + self.text_batch_size]
                inputs = self._on_device(self.tokenize(batch), self._family.text_inputs)
                if self.runtime is not None:
                    features = self.runtime.text_features(inputs)
                else:
                    features = _pooled(self.model.get_text_features(**inputs))
                out[rows[start : start + len(batch)]] = _unit_rows(features, self._dim)

    @property
    def text_input_names(self) -> tuple[str, ...]:
        """The tokenizer outputs the text tower receives, in order."""
        return self._family.text_inputs

    def tokenize(self, texts: Sequence[str]) -> Any:
        """The tokenizer's torch tensors for `texts`, padded and truncated as the family's
        text tower expects."""
        padding: str | bool = "max_length" if self._family.pad_to_max_length else True
        return self.tokenizer(
            list(texts),
            padding=padding,
            truncation=True,
            max_length=self.text_max_length,
            return_tensors="pt",
        )

    def _on_device(self, encoded: Mapping[str, Any], keys: Sequence[str]) -> dict[str, Any]:
        import torch

        dtype = self.device.torch_dtype()
        inputs: dict[str, Any] = {}
        for key in keys:
            value = encoded.get(key)
            if value is None:
                continue
            if not isinstance(value, torch.Tensor):
                value = torch.as_tensor(np.asarray(value))
            if torch.is_floating_point(value):
                inputs[key] = value.to(self.device.device, dtype)
            else:
                inputs[key] = value.to(self.device.device)
        return inputs

    def __repr__(self) -> str:
        tiny = ", meaningless" if self.meaningless else ""
        return (
            f"ClipEmbedder({self.model_id!r}, {self.model_type}, dim={self._dim}, "
            f"{self.score_kind}, language={self.language!r}, device={self.device.device}{tiny})"
        )


def load_clip(
    path: Path,
    device: DeviceConfig,
    *,
    model_id: str | None = None,
    meaningless: bool = False,
    language: str | None = None,
    image_batch_size: int = 32,
) -> ClipEmbedder:
    """Load a CLIP, Chinese-CLIP, SigLIP or SigLIP 2 checkpoint from a directory of
    `from_pretrained` files (config.json, weights, tokenizer and image processor files).

    `model_id` defaults to the directory name. A directory carrying the ``SEGLENS_RANDOM_WEIGHTS``
    marker (random weights) is always `meaningless`. `language` overrides the family's default (``"zh"``
    for Chinese-CLIP, ``"multi"`` for SigLIP 2 and for SigLIP with a multilingual
    vocabulary, else ``"en"``). Raises FileNotFoundError when the directory has no
    config.json and ValueError for an unsupported ``model_type``.
    """
    path = Path(path)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{config_file} not found: {path} is not a model directory")
    model_type = json.loads(config_file.read_text()).get("model_type")
    if model_type not in _FAMILIES:
        raise ValueError(f"{path}: {_unsupported(model_type)}")

    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

    started = time.perf_counter()
    model = AutoModel.from_pretrained(path, dtype=device.torch_dtype())
    model.to(device.device).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    image_processor = AutoImageProcessor.from_pretrained(path)
    embedder = ClipEmbedder(
        model,
        tokenizer,
        image_processor,
        model_type=model_type,
        device=device,
        model_id=model_id or path.name,
        meaningless=meaningless or any((path / m).exists() for m in _RANDOM_MARKERS),
        language=language,
        image_batch_size=image_batch_size,
    )
    embedder.load_seconds = time.perf_counter() - started
    return embedder


def _unsupported(model_type: object) -> str:
    known = ", ".join(SUPPORTED_MODEL_TYPES)
    return f"model_type {model_type!r} is not a CLIP-family model this loader knows ({known})"


def _default_language(model_type: str, tokenizer: Any) -> str:
    language = _FAMILIES[model_type].language
    # SigLIP 2 fixed-resolution checkpoints say model_type "siglip"; their Gemma vocabulary
    # gives them away.
    if model_type == "siglip" and _vocab_size(tokenizer) >= _MULTILINGUAL_VOCAB_SIZE:
        return "multi"
    return language


def _vocab_size(tokenizer: Any) -> int:
    try:
        return len(tokenizer)
    except TypeError:
        return int(getattr(tokenizer, "vocab_size", 0) or 0)


def _embedding_dim(config: Any, model_type: str) -> int:
    if model_type in ("clip", "chinese_clip"):
        return int(config.projection_dim)
    text_dim = int(getattr(config.text_config, "projection_size", None) or config.text_config.hidden_size)
    image_dim = int(config.vision_config.hidden_size)
    if text_dim != image_dim:
        raise ValueError(f"text embeddings have {text_dim} dims but image embeddings {image_dim}")
    return text_dim


def _text_max_length(config: Any, tokenizer: Any, family: _Family) -> int:
    positions = int(config.text_config.max_position_embeddings)
    if family.pad_to_max_length:
        return min(SIGLIP_TEXT_LENGTH, positions)
    # Tokenizers without a saved limit report a huge sentinel (int(1e30)).
    declared = int(getattr(tokenizer, "model_max_length", positions) or positions)
    return min(declared, positions)


def _parameter(value: Any, default: float) -> float:
    if value is None:
        return default
    return float(value.detach().float().reshape(-1)[0].item())


def _exp_parameter(value: Any, default: float) -> float:
    if value is None:
        return default
    return float(value.detach().float().exp().reshape(-1)[0].item())


def _to_pil(crop: object, index: int) -> Image.Image:
    if not isinstance(crop, np.ndarray):
        raise TypeError(f"crops[{index}] is {type(crop).__name__}, expected a numpy array")
    if crop.ndim != 3 or crop.shape[2] != 3 or crop.shape[0] < 1 or crop.shape[1] < 1:
        raise ValueError(f"crops[{index}] has shape {crop.shape}, expected (h, w, 3) with h, w >= 1")
    if crop.dtype != np.uint8:
        raise ValueError(f"crops[{index}] has dtype {crop.dtype}, expected uint8")
    # PIL input leaves the processor nothing to guess (a (3, 3, 3) array is ambiguous).
    return Image.fromarray(np.ascontiguousarray(crop))


def _pooled(output: Any) -> torch.Tensor:
    """The (N, D) embeddings from ``get_image_features`` / ``get_text_features``:
    transformers 5 returns a `BaseModelOutputWithPooling` whose ``pooler_output`` holds the
    projected embeddings (a tuple ``(last_hidden_state, pooler_output, ...)`` with
    ``return_dict=False``); transformers 4 returned the tensor itself."""
    import torch

    if isinstance(output, torch.Tensor):
        return output
    pooled = getattr(output, "pooler_output", None)
    if isinstance(pooled, torch.Tensor):
        return pooled
    if isinstance(output, tuple) and len(output) > 1 and isinstance(output[1], torch.Tensor):
        return output[1]
    raise TypeError(f"cannot find pooled embeddings in a {type(output).__name__}")


def _unit_rows(features: torch.Tensor, dim: int) -> np.ndarray:
    if features.ndim != 2 or features.shape[1] != dim:
        raise RuntimeError(f"model returned embeddings of shape {tuple(features.shape)}, expected (N, {dim})")
    rows = features.float()
    rows = rows / rows.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return rows.cpu().numpy().astype(np.float32, copy=False)


def _input_size(image_processor: Any) -> int | None:
    """The square side the image tower sees (CLIP's crop size, SigLIP's size), so callers
    can prepare crops at that size instead of handing over full-resolution regions."""
    for attr in ("crop_size", "size"):
        size = getattr(image_processor, attr, None)
        if size is None:
            continue
        get = size.get if isinstance(size, Mapping) else lambda key, s=size: getattr(s, key, None)
        for key in ("height", "shortest_edge"):
            value = get(key)
            if isinstance(value, int) and value > 0:
                return value
    return None
