"""Load a profile's proposer and embedder (by name or directory) onto a device.

A loader is called as ``loader(path, device)`` (the registry's contract); a loader that
declares a keyword ``context`` gets a `LoadContext`, and the built-in loaders, which
declare ``model_id`` and ``meaningless`` keywords, get those. torch and transformers are
imported only for a model that needs them (``needs_torch``)."""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seglens.core.types import GenerationParams
from seglens.models.device import DeviceConfig, quiet_transformers, select_device
from seglens.models.hub import ResolvedModel, resolve_model
from seglens.models.progress import LOADS
from seglens.models.protocols import ImageTextEmbedder, RegionProposer
from seglens.models.registry import LoadContext, get_profile, resolve_callable
from seglens.models.runtime import ExportCache, resolve_backend

__all__ = ["LoadedModels", "attach_backend", "call_loader", "load_model", "load_models"]

log = logging.getLogger(__name__)

# transformers' from_pretrained swaps process-wide functions while it builds a model
# (`PreTrainedModel.tie_weights`, the torch.nn.init functions) and puts them back after.
# Two loads in two threads can interleave so that the stubs stay in place for good: every
# later model is left with untied, uninitialised (meta) weights. One load at a time.
_LOAD_LOCK = threading.RLock()
_PROTOCOLS: dict[str, type] = {"proposer": RegionProposer, "embedder": ImageTextEmbedder}


@dataclass
class LoadedModels:
    proposer: RegionProposer
    embedder: ImageTextEmbedder
    generation: GenerationParams


def call_loader(
    loader: Callable[..., Any], path: Path | None, device: DeviceConfig, context: LoadContext
) -> Any:
    """Call `loader` with the documented ``(path, device)`` and whichever of the keywords
    ``context``, ``model_id``, ``meaningless`` it declares (all of them if it takes
    ``**kwargs``)."""
    offered: dict[str, Any] = {
        "context": context,
        "model_id": context.model_id,
        "meaningless": context.meaningless,
    }
    try:
        parameters = inspect.signature(loader).parameters
    except (TypeError, ValueError):  # a builtin or C callable: the documented call only
        return loader(path, device)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return loader(path, device, **offered)
    accepted = {
        key: value
        for key, value in offered.items()
        if key in parameters
        and parameters[key].kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    }
    return loader(path, device, **accepted)


def _device_for(resolved: ResolvedModel, device: str | None, dtype: str | None) -> DeviceConfig:
    if resolved.needs_torch:
        quiet_transformers()
        return select_device(device, dtype)
    # No torch: the loader gets the request as given ("auto" when unset) and picks itself.
    return DeviceConfig(device=(device or "auto").lower(), dtype=(dtype or "auto").lower())


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
    Thread-safe: loads (and local builds) run one at a time in a process. Raises
    `ModelNotAvailableError` (missing weights), ValueError (wrong kind, bad device) or
    TypeError (the loader returned something that is not a proposer / embedder)."""
    with _LOAD_LOCK:
        resolved = resolve_model(name_or_path, models_dir, allow_download=allow_download)
        if expect and resolved.kind != expect:
            raise ValueError(f"{name_or_path!r} is a {resolved.kind}, not a {expect}")
        config = _device_for(resolved, device, dtype)
        context = LoadContext(
            resolved.name, resolved.model_id, resolved.meaningless, resolved.spec, resolved.path
        )
        LOADS.begin(resolved.name, "loading")
        try:
            model = call_loader(resolve_callable(resolved.loader), resolved.path, config, context)
        finally:
            LOADS.finish(resolved.name)
        if resolved.needs_torch:
            _with_backend(model, backend, config, models_dir)
    protocol = _PROTOCOLS.get(resolved.kind)
    if protocol is not None and not isinstance(model, protocol):
        missing = [m for m in _protocol_members(protocol) if not hasattr(model, m)]
        raise TypeError(
            f"loader {resolved.loader} returned {type(model).__name__}, which is not a "
            f"{protocol.__name__} (missing: {', '.join(missing) or '?'}); see seglens.models.protocols"
        )
    return model


def _protocol_members(protocol: type) -> list[str]:
    names = set(getattr(protocol, "__annotations__", {}))
    names |= {n for n, v in vars(protocol).items() if callable(v) and not n.startswith("_")}
    return sorted(names)


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


def attach_backend(model: Any, backend: str, device: str, models_dir: Path) -> str:
    """Give a loaded model (`SamBackend` or `ClipEmbedder`) the resolved `backend`
    (see `resolve_backend`) and return the one it runs on: ``onnx`` when its graphs were
    exported (or found cached) and passed the parity check, else ``torch``. Never raises
    for a failed export: the model stays on PyTorch and one warning line says why."""
    chosen = resolve_backend(backend, device)
    model.backend_name = "torch"
    if chosen == "torch":
        return "torch"
    from seglens.models.clip import ClipEmbedder
    from seglens.models.sam import SamBackend

    cache = ExportCache(models_dir, str(getattr(model, "model_id", "model")))
    try:
        if isinstance(model, SamBackend):
            from seglens.models.onnx_sam import OnnxSamRuntime

            model.runtime = OnnxSamRuntime.build(model, cache)
        elif isinstance(model, ClipEmbedder):
            from seglens.models.onnx_clip import OnnxClipRuntime

            model.runtime = OnnxClipRuntime.build(model, cache)
        else:
            raise TypeError(f"{type(model).__name__} has no ONNX export")
    except Exception as exc:
        log.warning(
            "ONNX export failed, running on PyTorch",
            extra={"fields": {"model": cache.model_id, "error": f"{type(exc).__name__}: {exc}"[:500]}},
        )
        return "torch"
    model.backend_name = "onnx"
    return "onnx"
