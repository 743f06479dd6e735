"""Load a profile's proposer and embedder (by name or directory) onto a device."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from seglens.core.types import GenerationParams
from seglens.models.device import DeviceConfig, quiet_transformers, select_device
from seglens.models.hub import resolve_model
from seglens.models.protocols import ImageTextEmbedder, RegionProposer
from seglens.models.registry import get_profile, resolve_callable
from seglens.models.runtime import attach_backend, resolve_backend

__all__ = ["LoadedModels", "load_model", "load_models"]

# transformers' from_pretrained swaps process-wide functions while it builds a model
# (`PreTrainedModel.tie_weights`, the torch.nn.init functions) and puts them back after.
# Two loads in two threads can interleave so that the stubs stay in place for good: every
# later model is left with untied, uninitialised (meta) weights. One load at a time.
_LOAD_LOCK = threading.RLock()


@dataclass
class LoadedModels:
    proposer: RegionProposer
    embedder: ImageTextEmbedder
    generation: GenerationParams


def load_model(
    name_or_path: str,
    models_dir: Path,
    *,
    device: str | None = None,
    dtype: str | None = None,
    allow_download: bool = True,
    expect: str | None = None,
    backend: str = "torch",
) -> RegionProposer | ImageTextEmbedder:
    """Resolve and load one model; `expect` (``proposer``/``embedder``) guards mix-ups.
    `backend` (``torch``, ``onnx``, ``auto``; `runtime.resolve_backend`) is what runs its
    forward passes (``onnx`` exports on first use into ``models_dir/.onnx``).
    Thread-safe: loads (and tiny-model builds) run one at a time in a process."""
    quiet_transformers()
    with _LOAD_LOCK:
        resolved = resolve_model(name_or_path, models_dir, allow_download=allow_download)
        if expect and resolved.kind != expect:
            raise ValueError(f"{name_or_path!r} is a {resolved.kind}, not a {expect}")
        loader = resolve_callable(resolved.loader)
        chosen = select_device(device, dtype)
        model = loader(
            resolved.path,
            chosen,
            model_id=resolved.model_id,
            meaningless=resolved.meaningless,
        )
        _with_backend(model, backend, chosen, models_dir)
        return model


def _with_backend(model: object, backend: str, device: DeviceConfig, models_dir: Path) -> None:
    """Backend hook (issue 14): ONNX Runtime for the built-in SAM and CLIP classes on a
    CPU in float32; anything else (plugins, other dtypes) stays on PyTorch."""
    resolved = resolve_backend(backend, device.device)
    if resolved == "torch" or device.dtype != "float32":
        return
    from seglens.models.clip import ClipEmbedder
    from seglens.models.sam import SamBackend

    if isinstance(model, SamBackend | ClipEmbedder):
        attach_backend(model, resolved, device.device, models_dir)


def load_models(
    profile: str,
    *,
    models_dir: Path,
    device: str | None = None,
    dtype: str | None = None,
    proposer: str | None = None,
    embedder: str | None = None,
    allow_download: bool = True,
    backend: str = "torch",
) -> LoadedModels:
    spec = get_profile(profile)
    proposer_model = load_model(
        proposer or spec.proposer,
        models_dir,
        device=device,
        dtype=dtype,
        allow_download=allow_download,
        expect="proposer",
        backend=backend,
    )
    embedder_model = load_model(
        embedder or spec.embedder,
        models_dir,
        device=device,
        dtype=dtype,
        allow_download=allow_download,
        expect="embedder",
        backend=backend,
    )
    return LoadedModels(proposer_model, embedder_model, spec.generation)  # type: ignore[arg-type]
